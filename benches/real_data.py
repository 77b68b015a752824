#!/usr/bin/env python3
"""fedcare on the real Diabetes-130 file against centralized scikit-learn and XGBoost, on one split, in one run.

    python3 -m venv /tmp/skl && /tmp/skl/bin/pip install scikit-learn pandas xgboost
    cargo build --release --bin fedcare
    /tmp/skl/bin/python benches/real_data.py [--zip PATH] [--rounds 10] [--sites 3,5,10] [--test-fraction 0.1]

The published zip (default `../shared/data/diabetes130/dataset_diabetes.zip`) is split with
`fedcare split` (seed 0, 20 % of the patients held out: the same held-out patients for every row
below). fedcare rows: 3, 5 and 10 sites, alike (`--by patient`) and skewed (`--by
admission_source_id`: 80 % of each value's patients at its home site); `fedcare simulate --data`
with the defaults but `--test-fraction` (default 0.1: each hospital holds out 10 % of its patients
for the federation's own evaluation, which picks the best model and calibrates it, as
HistGradientBoosting's early stopping holds out 10 % of the pooled rows), the MLP (MLP [32, 16], schema `diabetes130/v2`) for `--rounds` rounds and the
gradient-boosted trees (`--model gbdt`, `[boosting]`'s defaults), then `fedcare predict` on the
held-out patients, whose AUROC, AUPRC and expected calibration error (10 equal-width bins) it
prints; the wall time of the whole federation and the bytes each hospital sent and received
(`metrics.jsonl`). Baselines, trained on all the sites' rows pooled and scored on the
same held-out patients: scikit-learn's LogisticRegression (class-balanced) and
HistGradientBoostingClassifier, each on two sets of inputs, and XGBoost's `hist` method (its
defaults) on fedcare's inputs when `xgboost` is installed (encounters ending in death or hospice
dropped, numeric columns standardised, age bands as midpoints, categorical columns one-hot with
"other or missing"): the reference features of the data's README (diagnoses as ICD-9 chapter
groups, ten specialties) and fedcare's built-in schema's (also the patient's earlier encounters,
the 30 most frequent specialties, the 20 most frequent codes of each diagnosis, the payer). Not a
cargo test; prints the CPU model. Flower's FedXgbBagging is not in the table: it needs Flower's
simulation engine (Ray), which is not installed here.
"""

import argparse
import json
import os
import re
import tempfile
import time
import zipfile

from fedcare_cli import fedcare
from machine import cpu

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUMERIC = [
    "time_in_hospital", "num_lab_procedures", "num_procedures", "num_medications", "number_outpatient",
    "number_emergency", "number_inpatient", "number_diagnoses",
]
MEDICATIONS = [
    "metformin", "repaglinide", "nateglinide", "chlorpropamide", "glimepiride", "acetohexamide", "glipizide",
    "glyburide", "tolbutamide", "pioglitazone", "rosiglitazone", "acarbose", "miglitol", "troglitazone",
    "tolazamide", "examide", "citoglipton", "insulin", "glyburide-metformin", "glipizide-metformin",
    "glimepiride-pioglitazone", "metformin-rosiglitazone", "metformin-pioglitazone",
]
VOCABULARIES = {
    "race": ["Caucasian", "AfricanAmerican", "Hispanic", "Asian", "Other"],
    "gender": ["Female", "Male"],
    "admission_type_id": [str(i) for i in range(1, 9)],
    "discharge_disposition_id": [str(i) for i in range(1, 31)],
    "admission_source_id": [str(i) for i in range(1, 27)],
    "medical_specialty": [
        "InternalMedicine", "Emergency/Trauma", "Family/GeneralPractice", "Cardiology", "Surgery-General",
        "Nephrology", "Orthopedics", "Radiologist", "Pulmonology", "Psychiatry",
    ],
    "max_glu_serum": ["None", "Norm", ">200", ">300"],
    "A1Cresult": ["None", "Norm", ">7", ">8"],
    **{m: ["No", "Steady", "Up", "Down"] for m in MEDICATIONS},
    "change": ["No", "Ch"],
    "diabetesMed": ["No", "Yes"],
}
PAYERS = ["MC", "HM", "SP", "BC", "MD", "CP", "UN", "CM", "OG", "PO", "DM", "CH", "WC", "OT", "MP", "SI", "FR"]
GROUPS = ["circulatory", "respiratory", "digestive", "diabetes", "injury", "musculoskeletal", "genitourinary",
          "neoplasms", "other"]
NOT_READMITTABLE = {"11", "13", "14", "19", "20", "21"}


def icd9_group(code: str) -> str:
    code = code.strip()
    if not code or code == "?":
        return "missing"
    if code[0] in "VE":
        return "other"
    try:
        whole = int(float(code))
    except ValueError:
        return "missing"
    if whole == 250:
        return "diabetes"
    if 390 <= whole <= 459 or whole == 785:
        return "circulatory"
    if 460 <= whole <= 519 or whole == 786:
        return "respiratory"
    if 520 <= whole <= 579 or whole == 787:
        return "digestive"
    if 800 <= whole <= 999:
        return "injury"
    if 710 <= whole <= 739:
        return "musculoskeletal"
    if 580 <= whole <= 629 or whole == 788:
        return "genitourinary"
    if 140 <= whole <= 239:
        return "neoplasms"
    return "other"


def kept(frame):
    """The encounters the schema keeps (those ending in death or hospice dropped)."""
    return frame[~frame["discharge_disposition_id"].astype(str).isin(NOT_READMITTABLE)]


def top_values(frame, column: str, k: int) -> list:
    """The `k` most frequent present values of a column (what a `top_k` column's slots hold)."""
    counts = frame[column].astype(str)
    return list(counts[~counts.isin(["?", ""])].value_counts().index[:k])


def features(frame, top=None):
    """Model inputs of a raw frame (numerics not yet standardised) and its labels.

    `top=None`: the reference features (the v1 schema of docs/design.md §7, the figures in the
    data's README: diagnoses as chapter groups only, ten specialties). Otherwise fedcare's built-in schema
    `diabetes130/v2`, with `top` the `top_k` columns' values chosen on the training rows: the
    patient's earlier encounters in the file as ln(1 + n), the 30 most frequent specialties, each
    diagnosis's 20 most frequent codes besides its group, and the payer.
    """
    import numpy as np
    import pandas as pd

    frame = kept(frame)
    columns = {}
    for name in NUMERIC:
        columns[name] = pd.to_numeric(frame[name], errors="coerce")
    columns["age"] = frame["age"].str.extract(r"\[(\d+)-(\d+)\)").astype(float).mean(axis=1)
    vocabularies = dict(VOCABULARIES)
    if top is not None:
        order = pd.to_numeric(frame["encounter_id"])
        earlier = order.groupby(frame["patient_nbr"]).rank(method="min") - 1
        columns["earlier_encounters"] = np.log1p(earlier)
        vocabularies["medical_specialty"] = top["medical_specialty"]
        vocabularies["payer_code"] = PAYERS
    for name, vocabulary in vocabularies.items():
        values = frame[name].astype(str)
        for value in vocabulary:
            columns[f"{name}={value}"] = (values == value).astype(float)
        columns[f"{name}=other"] = (~values.isin(vocabulary)).astype(float)
    for name in ["diag_1", "diag_2", "diag_3"]:
        groups = frame[name].astype(str).map(icd9_group)
        for group in GROUPS:
            columns[f"{name}={group}"] = (groups == group).astype(float)
        columns[f"{name}=other"] = (groups == "missing").astype(float)
        if top is not None:
            codes = frame[name].astype(str)
            for code in top[name]:
                columns[f"{name}=={code}"] = (codes == code).astype(float)
            columns[f"{name}==other"] = (~codes.isin(top[name])).astype(float)
    x = pd.DataFrame(columns)
    y = (frame["readmitted"] == "<30").astype(int).to_numpy()
    return x, y


def ece(probabilities, labels, bins=10) -> float:
    import numpy as np

    index = np.minimum((probabilities * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        rows = index == b
        if rows.any():
            total += rows.sum() * abs(probabilities[rows].mean() - labels[rows].mean())
    return total / len(labels)


def bytes_per_hospital(metrics: str) -> float:
    """MB each hospital sent and received over a federation (`metrics.jsonl`'s totals over its
    hospitals)."""
    total = 0.0
    with open(metrics) as f:
        for line in f:
            record = json.loads(line)
            total += (record["bytes_up"] + record["bytes_down"]) / record["hospitals"]
    return total / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--zip", default=os.path.join(ROOT, "..", "shared", "data", "diabetes130", "dataset_diabetes.zip"))
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--sites", default="3,5,10")
    parser.add_argument("--test-fraction", default="0.1",
                        help="each hospital's share held out for the federation's own evaluation")
    parser.add_argument("--fedcare", default=os.path.join(ROOT, "target", "release", "fedcare"))
    args = parser.parse_args()

    import numpy as np
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import average_precision_score, roc_auc_score

    print(f"machine: {cpu()}; fedcare: {args.rounds} rounds of the default MLP [32, 16], and --model gbdt's defaults, "
          f"{args.test_fraction} of each hospital's patients held out for its evaluation")
    rows = []
    with tempfile.TemporaryDirectory() as work:
        with zipfile.ZipFile(args.zip) as archive:
            archive.extract("dataset_diabetes/diabetic_data.csv", work)
        data = os.path.join(work, "dataset_diabetes", "diabetic_data.csv")
        site_counts = [int(n) for n in args.sites.split(",")]
        for sites in site_counts:
            for by in ("patient", "admission_source_id"):
                out = f"split-{sites}-{by}"
                fedcare(args.fedcare, ["split", "--data", data, "--sites", str(sites), "--holdout", "0.2",
                                       "--by", by, "--out", out], work)
                kind = "alike" if by == "patient" else "skewed by admission source"
                for model, extra in [("MLP", ["--rounds", str(args.rounds)]), ("GBDT", ["--model", "gbdt"])]:
                    run = f"{out}/{model.lower()}"
                    start = time.perf_counter()
                    fedcare(args.fedcare, ["simulate", "--data", f"{out}/sites", "--test-fraction", args.test_fraction,
                                           *extra, "--out", run], work)
                    seconds = time.perf_counter() - start
                    said = fedcare(args.fedcare, ["predict", "--model", f"{run}/model.bin", "--data",
                                                  f"{out}/holdout.csv", "--out", f"{run}/scores.csv"], work)
                    figure = lambda name: float(re.search(rf"{name} ([0-9.]+)", said).group(1))
                    megabytes = bytes_per_hospital(os.path.join(work, run, "metrics.jsonl"))
                    rows.append((f"fedcare federated {model}, {sites} sites {kind}", figure("AUROC"),
                                 figure("AUPRC"), figure("expected calibration error"), seconds, megabytes))
        # Centralized baselines: every site's rows pooled (the first split's sites hold them all),
        # on the reference features and on fedcare's.
        first = os.path.join(work, f"split-{site_counts[0]}-patient")
        frames = [pd.read_csv(os.path.join(first, "sites", f"site-{i}.csv"), dtype=str,
                              keep_default_na=False) for i in range(1, site_counts[0] + 1)]
        pooled = pd.concat(frames, ignore_index=True)
        holdout = pd.read_csv(os.path.join(first, "holdout.csv"), dtype=str, keep_default_na=False)
        top = {"medical_specialty": top_values(kept(pooled), "medical_specialty", 30),
               **{d: top_values(kept(pooled), d, 20) for d in ("diag_1", "diag_2", "diag_3")}}
        for inputs, chosen in [("reference features", None), ("fedcare's features", top)]:
            train_x, train_y = features(pooled, chosen)
            test_x, test_y = features(holdout, chosen)
            numeric = [c for c in train_x.columns if "=" not in c]
            mean, std = train_x[numeric].mean(), train_x[numeric].std().replace(0, 1)
            for x in (train_x, test_x):
                x[numeric] = ((x[numeric] - mean) / std).fillna(0.0)
            baselines = [
                ("LogisticRegression (class-balanced)", LogisticRegression(class_weight="balanced", max_iter=2000)),
                ("HistGradientBoostingClassifier", HistGradientBoostingClassifier(random_state=0)),
            ]
            if chosen is not None:
                try:
                    import xgboost

                    baselines.append(("XGBoost (hist, defaults)", xgboost.XGBClassifier(tree_method="hist", random_state=0)))
                except ImportError:
                    print("xgboost is not installed: no XGBoost row (pip install xgboost)")
            for name, model in baselines:
                start = time.perf_counter()
                model.fit(train_x.to_numpy(), train_y)
                seconds = time.perf_counter() - start
                p = model.predict_proba(test_x.to_numpy())[:, 1]
                rows.append((f"centralized {name}, {inputs}", roc_auc_score(test_y, p),
                             average_precision_score(test_y, p), ece(p, test_y.astype(float)), seconds, None))
    print(f"held-out patients: {len(test_y)} encounters, {int(test_y.sum())} readmitted <30")
    print(f"{'model':<76} {'AUROC':>7} {'AUPRC':>7} {'ECE':>7} {'train s':>8} {'MB/hospital':>12}")
    for name, auroc, auprc, calibration, seconds, megabytes in rows:
        wire = "-" if megabytes is None else f"{megabytes:.0f}"
        print(f"{name:<76} {auroc:>7.4f} {auprc:>7.4f} {calibration:>7.4f} {seconds:>8.1f} {wire:>12}")


if __name__ == "__main__":
    main()
