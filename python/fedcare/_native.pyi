"""Type stubs of the fedcare extension module (the Rust crates, through PyO3)."""

import os
import pathlib
from typing import Any, Callable, Dict, List, Literal, Optional, Sequence, Union, overload

import numpy as np
import numpy.typing as npt
import pandas

__version__: str

PathLike = Union[str, "os.PathLike[str]"]
# A CSV file's path, or a pandas DataFrame with the file's columns (see fedcare.read_csv).
Data = Union[PathLike, Any]

class FedcareError(Exception):
    """Every error of the fedcare package."""

class SchemaError(FedcareError):
    """A schema that is not valid, or data or a model that does not fit the schema."""

class ModelFileError(FedcareError):
    """A file that is not a usable fedcare model file."""

class DataError(FedcareError):
    """Data that cannot be used: a file that cannot be read, too many bad rows, no usable rows."""

class FederationError(FedcareError):
    """A simulated federation that failed."""

class Model:
    """A trained fedcare model (a ``model.bin``)."""

    @staticmethod
    def load(path: PathLike) -> "Model":
        """Loads a model file; raises ModelFileError for a file that is not one."""
    @property
    def schema_id(self) -> str:
        """The id of the feature schema the model was trained on (``diabetes130/v2``)."""
    @property
    def input_width(self) -> int:
        """Encoded inputs per row."""
    @property
    def hidden(self) -> List[int]:
        """Hidden layer widths (empty: logistic regression)."""
    @property
    def parameters(self) -> int:
        """Parameters in all."""
    @property
    def architecture(self) -> str:
        """Layer widths, input to output (``359-32-16-1``)."""
    @property
    def metrics(self) -> Dict[str, float]:
        """The federation's metrics of the model (``auroc``, ``round``, ...)."""
    @property
    def feature_scaling(self) -> List[Dict[str, float]]:
        """``{"mean", "std"}`` of each numeric input (the first inputs), from the federation."""
    @property
    def calibration(self) -> Optional[Dict[str, float]]:
        """The Platt scaling ``{"a", "b"}`` of the scores (probability ``σ(a·z + b)``), or None."""
    def feature_names(self, schema: str = "diabetes130", top_k_key: Optional[PathLike] = None) -> List[str]:
        """The name of every encoded input, in order; ``schema`` must be the model's."""
    def predict(
        self, data: Data, schema: str = "diabetes130", bad_rows_limit: int = 100, top_k_key: Optional[PathLike] = None
    ) -> npt.NDArray[np.float64]:
        """The probability of the positive label for every row of ``data``, in order.

        ``data`` is a CSV file's path or a pandas DataFrame of the file's columns. A row the
        schema drops (diabetes130: death or hospice) or a bad row skipped gets NaN. The numbers
        are ``fedcare predict``'s. ``schema``: ``diabetes130``, ``diabetes130-all`` or a schema
        TOML path. ``top_k_key``: the file of the consortium's top_k key, for a model trained
        under one (its schema id ends in ``+top_k-key:FINGERPRINT``). Raises SchemaError for a
        missing column, a model of another schema or another top_k key.
        """
    def encode(
        self, data: Data, schema: str = "diabetes130", bad_rows_limit: int = 100, top_k_key: Optional[PathLike] = None
    ) -> npt.NDArray[np.float32]:
        """The encoded inputs (rows × input_width) of the rows ``predict`` scores, in order."""
    @overload
    def evaluate(
        self,
        data: Data,
        schema: str = "diabetes130",
        bad_rows_limit: int = 100,
        top_k_key: Optional[PathLike] = None,
        subgroups: None = None,
        min_cell: int = 10,
    ) -> Dict[str, Any]: ...
    @overload
    def evaluate(
        self,
        data: Data,
        schema: str = "diabetes130",
        bad_rows_limit: int = 100,
        top_k_key: Optional[PathLike] = None,
        *,
        subgroups: Union[Sequence[str], bool],
        min_cell: int = 10,
    ) -> "pandas.DataFrame": ...
    def evaluate(
        self,
        data: Data,
        schema: str = "diabetes130",
        bad_rows_limit: int = 100,
        top_k_key: Optional[PathLike] = None,
        subgroups: Union[Sequence[str], bool, None] = None,
        min_cell: int = 10,
    ) -> Union[Dict[str, Any], "pandas.DataFrame"]:
        """Metrics on the labels of ``data``: rows, positives, auroc, auprc, log_loss, brier,
        accuracy, expected_calibration_error and the ten calibration bins.

        With ``subgroups`` (column names, or ``True`` for the model file's own subgroup columns),
        what ``fedcare evaluate`` measures instead, as a pandas DataFrame: a row for all rows and
        one per subgroup of each column (``column``, ``subgroup``, ``too_small``, ``rows``,
        ``positives``, ``positive_rate``, ``auroc``, ``auroc_bound``, ``auprc``, ``ece``, ``tpr``,
        ``auroc_gap``, ``tpr_gap``); a subgroup under ``min_cell`` rows, positives or negatives
        has ``too_small`` set and no figure. Raises SchemaError for a column the schema lacks."""
    @overload
    def to_onnx(self, path: None = None, schema: str = "diabetes130", top_k_key: Optional[PathLike] = None) -> bytes: ...
    @overload
    def to_onnx(self, path: PathLike, schema: str = "diabetes130", top_k_key: Optional[PathLike] = None) -> None: ...
    def to_onnx(
        self, path: Optional[PathLike] = None, schema: str = "diabetes130", top_k_key: Optional[PathLike] = None
    ) -> Optional[bytes]:
        """The model as an ONNX graph on its encoded inputs (input ``features``, output
        ``probability``), with the schema, input names and feature scaling in its metadata:
        written to ``path`` when given, else returned."""

def read_metrics(path: PathLike, as_frame: Optional[bool] = None) -> Any:
    """A ``metrics.jsonl`` as a list of dicts (one per session), or a pandas DataFrame when
    ``as_frame`` is true, or is None and pandas is installed."""

def simulate(
    *,
    hospitals: int = 5,
    rounds: int = 5,
    patience: Optional[int] = None,
    rows: int = 3000,
    data: Optional[PathLike] = None,
    schema: Optional[str] = None,
    top_k_key: Optional[PathLike] = None,
    model: Literal["mlp", "gbdt"] = "mlp",
    hidden: Sequence[int] = (32, 16),
    trees: Optional[int] = None,
    depth: Optional[int] = None,
    eta: Optional[float] = None,
    min_child_weight: Optional[float] = None,
    subsample: Optional[float] = None,
    epochs: int = 1,
    lr: float = 0.01,
    batch_size: int = 256,
    test_fraction: float = 0.2,
    rule: Literal["fedavg", "fedprox", "fedadam"] = "fedavg",
    server_lr: Optional[float] = None,
    seed: int = 7,
    out: PathLike = "fedcare-sim",
    trainer: Literal["cpu", "gpu", "auto"] = "cpu",
    explore: bool = False,
    epsilon: Optional[float] = None,
    noise_multiplier: Optional[float] = None,
    clip_norm: float = 5.0,
    sampling_rate: float = 0.02,
    delta: float = 1e-6,
    pooled_noise: float = 50.0,
    subgroups: Optional[Sequence[str]] = None,
    mlflow: Optional[str] = None,
    tensorboard: Optional[PathLike] = None,
    progress: Union[None, bool, Callable[[Dict[str, Any]], None]] = None,
    as_frame: Optional[bool] = None,
) -> Any:
    """Runs a whole federation on this machine, as ``fedcare simulate`` does (an aggregator and
    N hospitals over gRPC with mTLS and threshold encryption, on the synthetic cohort or on
    ``data``, one ``*.csv`` per hospital), writes ``out/metrics.jsonl`` and ``out/model.bin``, and
    returns the metrics as ``read_metrics`` does. ``hidden=()`` trains logistic regression;
    ``model="gbdt"`` grows gradient-boosted trees from summed histograms instead (``trees``,
    ``depth``, ``eta``, ``min_child_weight``, ``subsample``; default 150, 4, 0.15, 5, 1; ``rounds``
    and the training options then do not apply; with ``epsilon`` the histograms get
    ``pooled_noise`` and a federation over that ε is refused). ``test_fraction``: each
    hospital's share of patients held out of training for the federation's evaluation, which
    picks the best model and calibrates it.
    ``progress``: a line printed per session (the default, or True), nothing (False), or a
    callable given each session's record. Ctrl-C stops it (KeyboardInterrupt). With
    ``explore=True`` it explores the data instead and returns what ``explore`` returns.
    ``epsilon`` (or ``noise_multiplier``) trains with patient-level DP-SGD: each record's
    ``epsilon`` is a patient's ε at ``delta`` so far, the pooled statistics' discrete Gaussian
    noise (``pooled_noise``; 0: exact, not protected) included. ``top_k_key``: the file of a top_k key
    (``fedcare top-k-key``) the hospitals hash their top_k columns under; the model then needs
    it to score (``Model.predict(..., top_k_key=...)``). ``subgroups``: the final evaluation's
    subgroup columns (default: the schema's; ``[]`` for none). ``mlflow``: an MLflow tracking
    server (``http://host:5000``) that gets a run with the parameters, every session's metrics,
    ``model.bin`` and ``metrics.jsonl`` (a server that is down never stops the federation);
    ``tensorboard``: a folder for TensorBoard event files."""

def explore(
    *,
    hospitals: int = 5,
    rows: int = 3000,
    data: Optional[PathLike] = None,
    schema: Optional[str] = None,
    seed: int = 7,
    min_cell: int = 10,
    out: PathLike = "fedcare-explore",
    progress: Union[None, bool, Callable[[Dict[str, Any]], None]] = None,
) -> Dict[str, Any]:
    """Explores the data across hospitals on this machine, as ``fedcare explore`` does: every
    column's counts pooled under the threshold encryption. Returns the pooled report (no count
    below ``min_cell``), also written as ``out/explore.json``; each hospital's own report, its
    figures beside the pooled ones, goes to ``out/hospitals/NAME/explore.json``."""

def synth(out: PathLike, hospitals: int = 5, patients: int = 2000, seed: int = 0) -> List[pathlib.Path]:
    """Writes a synthetic cohort in the Diabetes-130 schema, one CSV per hospital; returns the
    paths."""

def explore_local(
    data: Data,
    schema: str = "diabetes130",
    min_cell: int = 10,
    bad_rows_limit: int = 100,
    out: Optional[PathLike] = None,
) -> Dict[str, Any]:
    """One file's or DataFrame's exploration report (what ``explore.json`` holds; no count below
    ``min_cell``); also written as ``out/explore.json`` when ``out`` is given."""
