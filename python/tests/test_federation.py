"""`fedcare.simulate`, `read_metrics`, `synth` and `explore_local`: the one-machine federation and
the data tools, as their commands run them."""

import json

import pandas as pd
import pytest

import fedcare


def test_simulate_returns_as_many_evaluated_rounds_as_asked(tmp_path):
    seen = []
    metrics = fedcare.simulate(hospitals=3, rounds=4, rows=400, out=tmp_path, progress=seen.append, as_frame=False)
    kinds = [record["kind"] for record in metrics]
    assert kinds == ["setup", "train", "train", "train", "train", "evaluate"]
    # Every training round evaluated the model it started from, and the final session the last.
    evaluated = [record for record in metrics if record["auroc"] is not None]
    assert len(evaluated) == 4 + 1
    assert all(0.0 <= record["auroc"] <= 1.0 for record in evaluated)
    # The callable saw every session's record, and the file holds the same records.
    assert seen == metrics
    assert fedcare.read_metrics(tmp_path / "metrics.jsonl", as_frame=False) == metrics
    assert (tmp_path / "model.bin").is_file()


def test_metrics_are_a_dataframe_with_pandas(tmp_path, capsys):
    frame = fedcare.simulate(hospitals=2, rounds=1, rows=300, hidden=(), out=tmp_path)
    assert isinstance(frame, pd.DataFrame)
    assert list(frame["round"]) == [0, 1, 2]
    printed = capsys.readouterr().out
    assert "session 1 (train): 2 hospitals" in printed and "holds the best model" in printed
    assert fedcare.read_metrics(tmp_path / "metrics.jsonl").equals(frame)
    assert fedcare.Model.load(tmp_path / "model.bin").hidden == []


def test_bad_settings_raise_value_error_and_failures_federation_errors(tmp_path):
    with pytest.raises(ValueError, match="2 to 64"):
        fedcare.simulate(hospitals=1, out=tmp_path, progress=False)
    with pytest.raises(ValueError, match="fedavg"):
        fedcare.simulate(rule="fedsgd", out=tmp_path, progress=False)
    with pytest.raises(ValueError, match="lr"):
        fedcare.simulate(lr=0.0, out=tmp_path, progress=False)
    with pytest.raises(ValueError, match="test_fraction"):
        fedcare.simulate(test_fraction=1.0, out=tmp_path, progress=False)
    with pytest.raises(fedcare.FederationError, match="cannot read"):
        fedcare.simulate(data=tmp_path / "absent", out=tmp_path, progress=False)
    bad = tmp_path / "metrics.jsonl"
    bad.write_text("not json\n")
    with pytest.raises(fedcare.FederationError, match="not a fedcare metrics file"):
        fedcare.read_metrics(bad)
    with pytest.raises(ValueError, match="hospitals"):
        fedcare.synth(tmp_path / "none", hospitals=0)


def test_explore_local_shows_no_small_count_and_writes_the_report(cohort, tmp_path):
    report = fedcare.explore_local(cohort["new"], min_cell=10, out=tmp_path)
    assert report["hospitals"] == [cohort["new"].stem]
    assert report["min_cell"] == 10
    columns = {column["name"]: column for column in report["figures"]["columns"]}
    assert "age" in columns and "A1Cresult" in columns
    for column in columns.values():
        for cell in column["cells"]:
            for count in (cell["count"], cell["positives"]):
                assert count in ("< 10", "hidden") or count == 0 or count >= 10, (column["name"], cell)
    assert json.loads((tmp_path / "explore.json").read_text()) == report
    # A DataFrame is explored as its file.
    assert fedcare.explore_local(fedcare.read_csv(cohort["new"]))["figures"] == report["figures"]


def test_a_federated_exploration_pools_what_each_hospital_counts(cohort, tmp_path):
    report = fedcare.explore(data=cohort["sites"], out=tmp_path, progress=False)
    assert report["hospitals"] == ["hospital-01", "hospital-02", "hospital-03"]
    assert json.loads((tmp_path / "explore.json").read_text()) == report
    # Each hospital's own report has its figures beside the pooled ones, on the same bins.
    own = json.loads((tmp_path / "hospitals" / "hospital-01" / "explore.json").read_text())
    assert own["local"]["hospital"] == "hospital-01" and own["figures"] == report["figures"]
    rows = sum(len(fedcare.read_csv(f)) for f in sorted(cohort["sites"].glob("*.csv")))
    age = next(c for c in report["figures"]["columns"] if c["name"] == "age")
    assert age["present"] <= rows
    # The same through simulate's explore flag.
    again = fedcare.simulate(data=cohort["sites"], explore=True, out=tmp_path / "again", progress=False)
    assert again["figures"] == report["figures"]


def test_simulate_with_differential_privacy_reports_each_rounds_epsilon(tmp_path):
    # 1,000 rows a hospital: with 400, about one run in twenty had so few held-out rows under the
    # evaluation noise that the noisy score histogram left one class empty: no final AUROC.
    metrics = fedcare.simulate(hospitals=3, rounds=2, rows=1000, out=tmp_path, epsilon=8.0, progress=False,
                               as_frame=False)
    spent = [record["epsilon"] for record in metrics if record["kind"] == "train"]
    assert len(spent) == 2 and 0.0 < spent[0] < spent[1] <= 8.0, spent
    assert spent[1] > 7.9, "the noise is the least that keeps ε within the target"
    assert 0.0 < metrics[0]["epsilon"] < spent[0], "the setup's noisy pooled statistics spend a little"
    assert all(record["auroc"] is None for record in metrics if record["kind"] == "train"), \
        "with pooled noise the rounds are not evaluated"
    assert metrics[-1]["auroc"] is not None
    model = fedcare.Model.load(tmp_path / "model.bin")
    assert model.metrics["epsilon"] == metrics[-1]["epsilon"] == spent[-1]
    assert model.metrics["delta"] == 1e-6
    with pytest.raises(ValueError, match="target_epsilon"):
        fedcare.simulate(hospitals=2, rounds=1, rows=300, out=tmp_path / "tiny", epsilon=1e-9, progress=False)
