"""`fedcare.Model`: the same scores as `fedcare predict`, from a file or a DataFrame, and clear
exceptions for data or files that cannot be used."""

import csv
import json
import subprocess
import threading
import time
import warnings

import numpy as np
import pandas as pd
import pytest

import fedcare


def cli_predict(fedcare_bin, model, data, tmp_path):
    """`fedcare predict`'s scores of `data`: {file line: probability}, and the metrics line."""
    out = tmp_path / "scores.csv"
    run = subprocess.run(
        [str(fedcare_bin), "predict", "--model", str(model), "--data", str(data), "--out", str(out)],
        check=True,
        capture_output=True,
        text=True,
    )
    with open(out, newline="") as f:
        return {int(row["line"]): float(row["probability"]) for row in csv.DictReader(f)}, run.stdout


@pytest.mark.parametrize("kind", ["logistic", "mlp", "gbdt"])
def test_predict_gives_fedcare_predicts_numbers_for_a_file_and_a_dataframe(kind, models, cohort, fedcare_bin, tmp_path):
    model = fedcare.Model.load(models[kind])
    expected, _ = cli_predict(fedcare_bin, models[kind], cohort["new"], tmp_path)
    probabilities = model.predict(cohort["new"])
    frame = fedcare.read_csv(cohort["new"])
    assert probabilities.shape == (len(frame),) and probabilities.dtype == np.float64
    # One value per data row: the file's line L is row L - 2 (the header is line 1).
    scored = {index + 2: p for index, p in enumerate(probabilities) if not np.isnan(p)}
    assert scored.keys() == expected.keys()
    assert len(scored) < len(frame), "death and hospice encounters are not scored (NaN)"
    # The file holds six decimals: the same numbers to 1e-6.
    worst = max(abs(scored[line] - p) for line, p in expected.items())
    assert worst <= 1e-6, worst
    # A DataFrame of the file's cells is scored exactly as the file.
    np.testing.assert_array_equal(model.predict(frame), probabilities)
    assert np.isnan(model.predict(frame)).sum() == len(frame) - len(expected)


def test_metrics_and_description_agree_with_the_cli(models, cohort, fedcare_bin, tmp_path):
    model = fedcare.Model.load(models["mlp"])
    _, printed = cli_predict(fedcare_bin, models["mlp"], cohort["new"], tmp_path)
    metrics = model.evaluate(cohort["new"])
    assert f"AUROC {metrics['auroc']:.4f}" in printed
    assert f"expected calibration error {metrics['expected_calibration_error']:.4f}" in printed
    assert metrics["rows"] == np.count_nonzero(~np.isnan(model.predict(cohort["new"])))
    assert model.schema_id == "diabetes130/v2"
    assert model.architecture == f"{model.input_width}-16-8-1"
    assert model.hidden == [16, 8]
    assert model.parameters == model.input_width * 16 + 16 + 16 * 8 + 8 + 8 + 1
    assert len(model.feature_names()) == model.input_width
    assert len(model.feature_scaling) == 10 and all(s["std"] > 0 for s in model.feature_scaling)
    assert model.calibration is not None and model.calibration["a"] > 0
    assert "auroc" in model.metrics
    assert "359-16-8-1" in repr(model)


def test_a_dataframe_without_a_column_raises_schema_error_naming_it(models, cohort):
    model = fedcare.Model.load(models["logistic"])
    frame = fedcare.read_csv(cohort["new"]).drop(columns=["num_medications"])
    with pytest.raises(fedcare.SchemaError, match="num_medications"):
        model.predict(frame)
    with pytest.raises(fedcare.FedcareError, match="num_medications"):
        model.encode(frame)


def test_pandas_defaults_are_warned_about(models, cohort):
    # pandas.read_csv turns A1Cresult's "None" into NaN: scored as missing, so it warns.
    model = fedcare.Model.load(models["logistic"])
    with pytest.warns(UserWarning, match="fedcare.read_csv"):
        model.predict(pd.read_csv(cohort["new"]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.predict(fedcare.read_csv(cohort["new"]))


def test_bad_rows_become_nan_with_a_warning_or_refuse_the_file(models, cohort):
    model = fedcare.Model.load(models["logistic"])
    frame = fedcare.read_csv(cohort["new"])
    frame.loc[4, "num_lab_procedures"] = "lots"
    with pytest.warns(UserWarning, match="1 bad rows skipped, first at line 6"):
        probabilities = model.predict(frame)
    assert np.isnan(probabilities[4])
    with pytest.raises(fedcare.DataError, match=r"DataFrame:6: .*num_lab_procedures.*lots"):
        model.predict(frame, bad_rows_limit=0)


@pytest.mark.parametrize("keep", [0, 7, 100, -1])
def test_a_truncated_model_file_raises_model_file_error(keep, models, tmp_path):
    data = models["mlp"].read_bytes()
    cut = tmp_path / "cut.bin"
    cut.write_bytes(data[: len(data) + keep if keep < 0 else keep])
    with pytest.raises(fedcare.ModelFileError, match="cut.bin is not a usable model file"):
        fedcare.Model.load(cut)


def test_other_mistakes_get_python_exceptions(models, cohort, tmp_path):
    with pytest.raises(fedcare.DataError, match="cannot read"):
        fedcare.Model.load(tmp_path / "absent.bin")
    model = fedcare.Model.load(models["logistic"])
    with pytest.raises(fedcare.DataError, match="absent.csv"):
        model.predict(tmp_path / "absent.csv")
    with pytest.raises(TypeError, match="CSV file's path or a pandas DataFrame, not int"):
        model.predict(42)
    schema = tmp_path / "schema.toml"
    schema.write_text('id = "x"\nlabel = { column = "y", positive = ["1"] }\n[[numeric]]\nname = "a"\n')
    with pytest.raises(fedcare.SchemaError, match="trained on schema"):
        model.predict(cohort["new"], schema=str(schema))
    schema.write_text("id = ")
    with pytest.raises(fedcare.SchemaError, match="invalid schema"):
        model.predict(cohort["new"], schema=str(schema))


def test_scoring_releases_the_gil(models, cohort, tmp_path):
    # While a large file is read and scored in Rust, another Python thread runs: with the GIL
    # held, no timestamp could be taken strictly inside the call.
    model = fedcare.Model.load(models["mlp"])
    big = tmp_path / "big.csv"
    pd.concat([fedcare.read_csv(cohort["new"])] * 60, ignore_index=True).to_csv(big, index=False)
    span = {}

    def work():
        span["start"] = time.perf_counter()
        model.predict(big)
        span["end"] = time.perf_counter()

    stamps = []
    worker = threading.Thread(target=work)
    worker.start()
    while worker.is_alive():
        stamps.append(time.perf_counter())
    worker.join()
    margin = 0.02
    assert span["end"] - span["start"] > 4 * margin, "the call is too short to tell"
    inside = [t for t in stamps if span["start"] + margin < t < span["end"] - margin]
    assert len(inside) > 100, (len(inside), span)


def test_a_model_trained_under_a_top_k_key_scores_only_with_that_key(cohort, fedcare_bin, tmp_path):
    key = tmp_path / "top_k.key"
    subprocess.run([str(fedcare_bin), "top-k-key", "--out", str(key)], check=True, capture_output=True)
    out = tmp_path / "keyed"
    fedcare.simulate(data=cohort["sites"], top_k_key=key, hidden=(), rounds=1, out=out, progress=False, as_frame=False)
    model = fedcare.Model.load(out / "model.bin")
    assert "+top_k-key:" in model.schema_id
    with pytest.raises(fedcare.SchemaError, match="give that key"):
        model.predict(cohort["new"])
    scores = model.predict(cohort["new"], top_k_key=key)
    assert np.isfinite(scores).sum() > 100
    other = tmp_path / "other.key"
    other.write_text("ab" * 32)
    with pytest.raises(fedcare.SchemaError, match="another consortium's key"):
        model.predict(cohort["new"], top_k_key=other)
    other.write_text("not a key")
    with pytest.raises(ValueError, match="64 hex digits"):
        model.predict(cohort["new"], top_k_key=other)


def test_evaluate_per_subgroup_gives_fedcare_evaluates_figures_within_the_bound_of_sklearns(
    models, cohort, fedcare_bin, tmp_path
):
    roc_auc_score = pytest.importorskip(
        "sklearn.metrics", reason="SKIPPED: scikit-learn is not installed (pip install './python[test]')"
    ).roc_auc_score
    model = fedcare.Model.load(models["mlp"])
    frame = fedcare.read_csv(cohort["new"])
    table = model.evaluate(frame, subgroups=["gender", "race"], min_cell=5)
    assert isinstance(table, pd.DataFrame)
    assert list(table.columns[:4]) == ["column", "subgroup", "too_small", "rows"]
    assert set(table["column"]) == {"gender", "race"}
    # The same figures as `fedcare evaluate` on the same file.
    out = tmp_path / "validation"
    subprocess.run(
        [str(fedcare_bin), "evaluate", "--model", str(models["mlp"]), "--data", str(cohort["new"]),
         "--subgroups", "gender,race", "--min-cell", "5", "--out", str(out)],
        check=True,
        capture_output=True,
    )
    with open(out / "evaluate.json") as f:
        report = json.load(f)
    for column in report["subgroups"]["columns"]:
        for subgroup in column["subgroups"]:
            row = table[(table["column"] == column["name"]) & (table["subgroup"] == subgroup["label"])].iloc[0]
            if subgroup["figures"] == "too_small":
                assert row["too_small"] and pd.isna(row["auroc"]) and pd.isna(row["rows"])
            else:
                shown = subgroup["figures"]["shown"]
                assert not row["too_small"] and row["rows"] == shown["rows"]
                assert row["auroc"] == pytest.approx(shown["auroc"], abs=1e-12)
    # Each shown subgroup of a named category: its AUROC is within its binning bound of
    # scikit-learn's on the same rows.
    probabilities = model.predict(frame)
    labels = (frame["readmitted"] == "<30").to_numpy()
    scored = ~np.isnan(probabilities)
    checked = 0
    for _, row in table[~table["too_small"]].iterrows():
        if row["subgroup"] in ("all rows", "other", "missing"):
            continue
        rows = scored & (frame[row["column"]] == row["subgroup"]).to_numpy()
        exact = roc_auc_score(labels[rows], probabilities[rows])
        assert abs(row["auroc"] - exact) <= row["auroc_bound"] + 1e-9, (row["subgroup"], row["auroc"], exact)
        checked += 1
    assert checked >= 2
    with pytest.raises(fedcare.SchemaError, match="nope"):
        model.evaluate(frame, subgroups=["nope"])
