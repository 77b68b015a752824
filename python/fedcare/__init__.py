"""fedcare for Python: federated readmission-risk models across hospitals.

The Rust crates the ``fedcare`` binary is made of, wrapped (``fedcare._native``): nothing here
re-implements them, so a model scores a file or a DataFrame exactly as ``fedcare predict`` does.

>>> import fedcare
>>> model = fedcare.Model.load("fedcare-sim/model.bin")
>>> risk = model.predict("patients.csv")          # one probability per row (NaN: not scored)

Also: ``fedcare.simulate`` (a whole federation on this machine), ``fedcare.explore`` (the
federated exploration), ``fedcare.read_metrics``, ``fedcare.synth`` (a synthetic cohort),
``fedcare.explore_local`` (one file's exploration report), ``Model.encode`` / ``Model.evaluate`` / ``Model.to_onnx``, and ``fedcare.read_csv``.
Every error is a ``fedcare.FedcareError``: ``SchemaError``, ``ModelFileError``, ``DataError``,
``FederationError``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Union

from ._native import (
    DataError,
    FedcareError,
    FederationError,
    Model,
    ModelFileError,
    SchemaError,
    __version__,
    explore,
    explore_local,
    read_metrics,
    simulate,
    synth,
)

if TYPE_CHECKING:
    import pandas

__all__ = [
    "DataError",
    "FedcareError",
    "FederationError",
    "Model",
    "ModelFileError",
    "SchemaError",
    "__version__",
    "explore",
    "explore_local",
    "read_csv",
    "read_metrics",
    "simulate",
    "synth",
]


def read_csv(path: Union[str, os.PathLike]) -> "pandas.DataFrame":
    """A CSV file as a DataFrame of its cells' text, as fedcare reads files.

    ``pandas.read_csv`` turns texts such as ``None`` and ``NA`` into NaN, and ids into numbers;
    in the Diabetes-130 file ``A1Cresult = None`` is a value of its own (no test was made), not a
    missing one. This keeps every cell as written, so ``Model.predict`` gives the DataFrame the
    same scores as the file. Needs pandas.
    """
    import pandas

    return pandas.read_csv(path, dtype=str, keep_default_na=False)
