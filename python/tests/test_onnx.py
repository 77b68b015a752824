"""ONNX export: a valid graph that onnxruntime runs to the probabilities `fedcare predict` writes,
for logistic regression, an MLP and gradient-boosted trees (an `ai.onnx.ml` tree ensemble);
`fedcare export` writes the same file."""

import json
import subprocess

import numpy as np
import onnx
import onnxruntime
import pytest

import fedcare

from test_model import cli_predict


@pytest.mark.parametrize("kind", ["logistic", "mlp", "gbdt"])
def test_onnxruntime_gives_fedcare_predicts_probabilities(kind, models, cohort, fedcare_bin, tmp_path):
    model = fedcare.Model.load(models[kind])
    path = tmp_path / "model.onnx"
    model.to_onnx(path)
    graph = onnx.load(path)
    onnx.checker.check_model(graph, full_check=True)
    ops = [node.op_type for node in graph.graph.node]
    if kind == "gbdt":
        assert model.kind == "gbdt" and model.trees >= 1 and model.parameters == 0
        assert ops[0] == "TreeEnsembleRegressor" and "Gemm" not in ops
    else:
        assert ops.count("Gemm") == len(model.hidden) + 1 and ops.count("Relu") == len(model.hidden)
    assert ops[-3:] == ["Mul", "Add", "Sigmoid"], "the Platt scaling before the sigmoid"

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = model.encode(cohort["new"])
    assert inputs.dtype == np.float32 and inputs.shape[1] == model.input_width
    (probabilities,) = session.run(["probability"], {"features": inputs})
    assert probabilities.shape == (len(inputs), 1)

    expected, _ = cli_predict(fedcare_bin, models[kind], cohort["new"], tmp_path)
    expected = np.array([expected[line] for line in sorted(expected)])
    worst = float(np.abs(probabilities[:, 0] - expected).max())
    # The same scores unrounded (fedcare predict's file holds six decimals, ±5e-7).
    unrounded = model.predict(cohort["new"])
    worst_unrounded = float(np.abs(probabilities[:, 0] - unrounded[~np.isnan(unrounded)]).max())
    print(
        f"{kind}: onnxruntime against fedcare predict, largest difference {worst:.2e} over {len(expected)} rows "
        f"({worst_unrounded:.2e} against the unrounded scores)"
    )
    assert worst <= 1e-5, worst


def test_the_metadata_says_how_to_encode_and_the_cli_writes_the_same_file(models, fedcare_bin, tmp_path):
    model = fedcare.Model.load(models["mlp"])
    graph = onnx.load_from_string(model.to_onnx())
    metadata = {entry.key: entry.value for entry in graph.metadata_props}
    assert metadata["fedcare.schema_id"] == model.schema_id
    assert json.loads(metadata["fedcare.input_names"]) == model.feature_names()
    assert json.loads(metadata["fedcare.feature_scaling"]) == model.feature_scaling
    assert json.loads(metadata["fedcare.calibration"]) == model.calibration
    assert graph.opset_import[0].version == 17 and graph.producer_name == "fedcare"

    out = tmp_path / "cli.onnx"
    subprocess.run([str(fedcare_bin), "export", str(models["mlp"]), "--onnx", str(out)], check=True, capture_output=True)
    assert out.read_bytes() == model.to_onnx()
