#!/usr/bin/env python3
"""Patient-level DP-SGD on the real Diabetes-130 file: held-out AUROC at ε = 1, 3 and 8 (δ = 1e-6)
against the same federation without differential privacy, same rounds, one split, one run.

    cargo build --release --bin fedcare
    python3 benches/dp_utility.py [--zip PATH] [--rounds 10] [--sites 5] [-- extra simulate flags]

The published zip (default `../shared/data/diabetes130/dataset_diabetes.zip`) is split with
`fedcare split --sites 5 --holdout 0.2` (seed 0). Each row is `fedcare simulate --data sites`
(the MLP [32, 16] by default, `--hidden ''` for logistic regression; schema `diabetes130/v2`)
for `--rounds` rounds, without DP or with
`--epsilon E` (the noise chosen so that a patient's ε after all rounds is at most E), then
`fedcare predict` on the held-out patients. Flags after `--` go to every DP run (for example
`--clip-norm 2 --lr 0.003`). Standard library only; not a cargo test; prints the CPU model.
"""

import argparse
import os
import re
import tempfile
import time
import zipfile

from fedcare_cli import fedcare
from machine import cpu

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--zip", default=os.path.join(ROOT, "..", "shared", "data", "diabetes130", "dataset_diabetes.zip"))
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--sites", type=int, default=5)
    parser.add_argument("--epsilons", default="1,3,8")
    parser.add_argument("--hidden", default="32,16", help="hidden widths of every run ('' : logistic regression)")
    parser.add_argument("--fedcare", default=os.path.join(ROOT, "target", "release", "fedcare"))
    parser.add_argument("extra", nargs="*", help="flags for every DP run (after --)")
    args = parser.parse_args()

    model = f"MLP [{args.hidden}]" if args.hidden else "logistic regression"
    print(f"machine: {cpu()}; {args.sites} sites, {args.rounds} rounds of {model}; "
          f"DP runs with {' '.join(args.extra) or 'the default DP settings'}")
    rows = []
    with tempfile.TemporaryDirectory() as work:
        with zipfile.ZipFile(args.zip) as archive:
            archive.extract("dataset_diabetes/diabetic_data.csv", work)
        data = os.path.join(work, "dataset_diabetes", "diabetic_data.csv")
        fedcare(args.fedcare, ["split", "--data", data, "--sites", str(args.sites), "--holdout", "0.2", "--out", "split"],
                work)
        runs = [("no differential privacy", [])]
        runs += [(f"ε = {e}, δ = 1e-6", ["--epsilon", e, *args.extra]) for e in args.epsilons.split(",")]
        for name, flags in runs:
            start = time.perf_counter()
            said = fedcare(args.fedcare, ["simulate", "--data", "split/sites", "--rounds", str(args.rounds),
                                          "--hidden", args.hidden, "--out", "run", *flags], work)
            seconds = time.perf_counter() - start
            spent = re.search(r"ε after every training round is ([0-9.]+)", said)
            scored = fedcare(args.fedcare, ["predict", "--model", "run/model.bin", "--data", "split/holdout.csv",
                                            "--out", "scores.csv"], work)
            figure = lambda text, name: float(re.search(rf"{name} ([0-9.]+)", text).group(1))
            rows.append((name, spent.group(1) if spent else "-", figure(scored, "AUROC"), figure(scored, "AUPRC"),
                         figure(scored, "expected calibration error"), seconds))
    baseline = rows[0][2]
    print(f"{'federation':<26} {'ε spent':>8} {'AUROC':>7} {'Δ AUROC':>8} {'AUPRC':>7} {'ECE':>7} {'run s':>6}")
    for name, spent, auroc, auprc, calibration, seconds in rows:
        print(f"{name:<26} {spent:>8} {auroc:>7.4f} {auroc - baseline:>+8.4f} {auprc:>7.4f} {calibration:>7.4f} "
              f"{seconds:>6.1f}")


if __name__ == "__main__":
    main()
