"""Shared fixtures: a small synthetic cohort, three federations trained on it (logistic regression,
an MLP and gradient-boosted trees), and the `fedcare` binary whose `predict` the package must agree with."""

import os
import shutil
from pathlib import Path

import pytest

import fedcare

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def fedcare_bin() -> Path:
    """The `fedcare` binary: FEDCARE_BIN (which must then exist), else the workspace's build."""
    given = os.environ.get("FEDCARE_BIN")
    if given:
        path = Path(given)
        if not path.is_file():
            pytest.fail(f"FEDCARE_BIN={given} is not a file")
        return path
    for profile in ("release", "debug"):
        path = REPO / "target" / profile / "fedcare"
        if path.is_file():
            return path
    found = shutil.which("fedcare")
    if found:
        return Path(found)
    pytest.skip("SKIPPED: no fedcare binary (cargo build --release --bin fedcare, or set FEDCARE_BIN)")


@pytest.fixture(scope="session")
def cohort(tmp_path_factory) -> dict:
    """Four hospitals of the synthetic cohort: three federate, the fourth is new patients."""
    root = tmp_path_factory.mktemp("cohort")
    files = [Path(p) for p in fedcare.synth(root / "all", hospitals=4, patients=600, seed=3)]
    sites = root / "sites"
    sites.mkdir()
    for file in files[:3]:
        shutil.copy(file, sites / file.name)
    return {"sites": sites, "new": files[3], "root": root}


def _train(cohort: dict, name: str, hidden, **boosting) -> Path:
    out = cohort["root"] / name
    fedcare.simulate(
        data=cohort["sites"], hidden=hidden, rounds=3, out=out, progress=False, as_frame=False, **boosting
    )
    return out / "model.bin"


@pytest.fixture(scope="session")
def models(cohort) -> dict:
    """`model.bin` of a logistic regression, an MLP and gradient-boosted trees trained by a
    simulated federation."""
    return {
        "logistic": _train(cohort, "logistic", ()),
        "mlp": _train(cohort, "mlp", (16, 8)),
        "gbdt": _train(cohort, "gbdt", (), model="gbdt", trees=6, depth=3, min_child_weight=1.0),
    }
