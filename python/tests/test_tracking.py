"""A federation tracked in a real MLflow tracking server (`mlflow server` on loopback, its runs in
SQLite) and in TensorBoard event files: the run is read back through MLflow's REST API
(parameters, every metric's history, the artifacts), the events through TensorBoard's own
reader; a server killed in the middle of a federation does not stop it, and what was logged
meanwhile arrives once the server is back, or its loss is reported.

Without mlflow (or tensorboard) installed the tests say so and are skipped, unless
FEDCARE_REQUIRE_MLFLOW is set (CI sets it)."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import warnings
from contextlib import contextmanager
from pathlib import Path

import pytest

import fedcare


def executable(name: str) -> str:
    found = Path(sys.executable).parent / name
    if found.is_file():
        return str(found)
    found = shutil.which(name)
    if found:
        return found
    if os.environ.get("FEDCARE_REQUIRE_MLFLOW"):
        pytest.fail(f"FEDCARE_REQUIRE_MLFLOW is set but there is no {name} (pip install './python[tracking]')")
    pytest.skip(f"SKIPPED: no {name} installed (pip install './python[tracking]'); tracking not checked against it")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(folder: Path, port: int) -> subprocess.Popen:
    """`mlflow server` on 127.0.0.1:`port`, its runs and artifacts in `folder`, once it answers."""
    log = open(folder / f"server-{time.monotonic_ns()}.log", "w")
    process = subprocess.Popen(
        [
            executable("mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
            "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
            "--artifacts-destination", str(folder / "artifacts"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    return process


def wait_until_up(url: str, process: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "mlflow server exited"
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"mlflow server at {url} did not answer within {timeout} s")


@contextmanager
def mlflow_server(folder: Path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = start_server(folder, port)
    try:
        wait_until_up(url, process)
        yield url, port, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def rest(url: str, path: str, **query) -> dict:
    with urllib.request.urlopen(f"{url}/api/2.0/mlflow/{path}?{urllib.parse.urlencode(query)}", timeout=10) as r:
        return json.load(r)


def the_run(url: str, experiment: str) -> dict:
    experiment_id = rest(url, "experiments/get-by-name", experiment_name=experiment)["experiment"]["experiment_id"]
    request = urllib.request.Request(
        f"{url}/api/2.0/mlflow/runs/search",
        data=json.dumps({"experiment_ids": [experiment_id]}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as r:
        runs = json.load(r)["runs"]
    assert len(runs) == 1, runs
    return runs[0]


def history(url: str, run_id: str, key: str) -> list:
    return [(m["step"], m["value"]) for m in rest(url, "metrics/get-history", run_id=run_id, metric_key=key)["metrics"]]


def test_a_federation_is_read_back_from_mlflow_and_tensorboard(tmp_path, fedcare_bin):
    with mlflow_server(tmp_path) as (url, _, _):
        out = tmp_path / "sim"
        run = subprocess.run(
            [str(fedcare_bin), "simulate", "--hospitals", "3", "--rounds", "2", "--rows", "600", "--hidden", "8",
             "--out", str(out), "--mlflow", url, "--tensorboard", str(tmp_path / "tb")],
            check=True,
            capture_output=True,
            text=True,
        )
        assert "parameters, metrics and artifacts sent" in run.stdout, run.stdout
        found = the_run(url, "fedcare-simulation")
        run_id = found["info"]["run_id"]
        assert found["info"]["status"] == "FINISHED"
        params = {p["key"]: p["value"] for p in found["data"]["params"]}
        assert (params["rounds"], params["hospitals"], params["rule"]) == ("2", "3", "fedavg (lr 1)")
        assert params["model"].startswith("MLP 359-8-1")
        # Every session's metrics, the round as the step, as metrics.jsonl has them.
        records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        expected = [(r["round"], r["auroc"]) for r in records if r["auroc"] is not None]
        assert [(step, round(value, 12)) for step, value in history(url, run_id, "auroc")] == [
            (step, round(value, 12)) for step, value in expected
        ]
        assert [step for step, _ in history(url, run_id, "bytes_up")] == [r["round"] for r in records]
        assert history(url, run_id, "subgroup/gender/Female/auroc"), "the final evaluation's subgroups"
        files = {f["path"] for f in rest(url, "artifacts/list", run_id=run_id)["files"]}
        assert {"model.bin", "metrics.jsonl", "report.html", "card.html", "card.md"} <= files, files

    # The same metrics in TensorBoard's own reader.
    accumulator_module = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator",
        reason="SKIPPED: tensorboard is not installed (pip install './python[tracking]')",
    )
    accumulator = accumulator_module.EventAccumulator(str(tmp_path / "tb"))
    accumulator.Reload()
    board = [(e.step, e.value) for e in accumulator.Scalars("auroc")]
    assert [step for step, _ in board] == [step for step, _ in expected]
    assert all(abs(a - b) < 1e-6 for (_, a), (_, b) in zip(board, expected))


def test_a_server_killed_mid_run_neither_stops_the_federation_nor_loses_a_record_silently(tmp_path):
    executable("mlflow")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(tmp_path, port)
    restarted = []
    try:
        wait_until_up(url, server)

        def progress(record):
            # After the first training round: the server goes away, and is started again.
            if record["round"] == 1 and record["kind"] == "train":
                server.kill()
                server.wait()
                restarted.append(start_server(tmp_path, port))

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            metrics = fedcare.simulate(
                hospitals=3, rounds=4, rows=600, hidden=(8,), out=tmp_path / "sim", mlflow=url, progress=progress,
                as_frame=False,
            )
        assert [r["kind"] for r in metrics][-1] == "evaluate", "the federation finished"
        lost = [str(w.message) for w in caught if "MLflow: never sent" in str(w.message)]
        wait_until_up(url, restarted[0])
        run_id = the_run(url, "fedcare-simulation")["info"]["run_id"]
        steps = [step for step, _ in history(url, run_id, "bytes_up")]
        # Every record arrived once the server was back, or what did not was reported.
        # (A request the server took just before it was killed may arrive twice.)
        assert sorted(set(steps)) == [r["round"] for r in metrics] or lost, (steps, lost)
    finally:
        for process in [server, *restarted]:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
