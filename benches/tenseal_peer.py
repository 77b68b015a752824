#!/usr/bin/env python3
"""The encrypted path of fedcare against TenSEAL CKKS with NVIDIA FLARE's settings, in one run.

    python3 -m venv /tmp/he && /tmp/he/bin/pip install tenseal
    cargo build --release --bin fedcare
    /tmp/he/bin/python benches/tenseal_peer.py --values 1000000 --parties 10 [--threads 2]

TenSEAL (NVFlare's HE filters): CKKS, poly modulus degree 8192, coefficient moduli [60, 40, 40],
global scale 2^40, symmetric encryption, `n_threads` threads. Each figure is the median of
`--repeats` runs on this machine, with fedcare's `bench-crypto` run the same number of times in the
same call, both on `--threads` threads (fedcare's `bench-crypto --threads`, TenSEAL's
`n_threads`); the ratios are TenSEAL's time over fedcare's (above 1: fedcare is faster). Not a
cargo test; prints the CPU model and whether it has AVX-512.
"""

import argparse
import os
import re
import statistics
import subprocess
import time

from machine import cpu


def tenseal_once(values: int, parties: int, threads: int) -> dict:
    import numpy as np
    import tenseal as ts

    context = ts.context(
        ts.SCHEME_TYPE.CKKS,
        poly_modulus_degree=8192,
        coeff_mod_bit_sizes=[60, 40, 40],
        encryption_type=ts.ENCRYPTION_TYPE.SYMMETRIC,
        n_threads=threads,
    )
    context.global_scale = 2**40
    rng = np.random.default_rng(0)
    updates = [rng.normal(0.0, 0.01, values) for _ in range(parties)]

    start = time.perf_counter()
    first = ts.ckks_vector(context, updates[0])
    encrypt = time.perf_counter() - start
    start = time.perf_counter()
    wire = first.serialize()
    serialize = time.perf_counter() - start
    blobs = [wire] + [ts.ckks_vector(context, u).serialize() for u in updates[1:]]

    start = time.perf_counter()
    total = ts.ckks_vector_from(context, blobs[0])
    for blob in blobs[1:]:
        total += ts.ckks_vector_from(context, blob)
    aggregate = time.perf_counter() - start

    start = time.perf_counter()
    decrypted = np.array(total.decrypt())
    decrypt = time.perf_counter() - start
    error = float(np.max(np.abs(decrypted - np.sum(updates, axis=0))))
    return {
        "encrypt (per party)": encrypt,
        "serialize (per party)": serialize,
        "aggregate all ciphertexts (deserialize + add)": aggregate,
        "decrypt the sum (one key holder)": decrypt,
        "bytes per value": len(wire) / values,
        "max error of the sum": error,
    }


FEDCARE_ROWS = {
    "encrypt (per party)": "encrypt (per party)",
    "aggregate all ciphertexts (aggregator)": "aggregate all ciphertexts (aggregator)",
    "mask check + decryption share (per party)": "mask check + decryption share (per party)",
    "combine + decode (aggregator)": "combine + decode (aggregator)",
}


def fedcare_once(binary: str, values: int, parties: int, threads: int) -> dict:
    out = subprocess.run(
        [binary, "bench-crypto", "--values", str(values), "--parties", str(parties), "--threads", str(threads)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    figures = {}
    for line in out.splitlines():
        match = re.match(r"^(.*?)\s{2,}([0-9.]+) (ms|B/value)$", line)
        if match:
            name, value, unit = match.groups()
            figures[name.strip()] = float(value) / 1000 if unit == "ms" else float(value)
    return figures


def medians(runs: list) -> dict:
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--values", type=int, default=1_000_000)
    parser.add_argument("--parties", type=int, default=10)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fedcare", default="target/release/fedcare", help="the fedcare binary")
    args = parser.parse_args()

    print(f"machine: {cpu()}")
    print(f"{args.values} values, {args.parties} parties, medians of {args.repeats} runs\n")
    ours = medians([fedcare_once(args.fedcare, args.values, args.parties, args.threads) for _ in range(args.repeats)])
    peer = medians([tenseal_once(args.values, args.parties, args.threads) for _ in range(args.repeats)])

    threads = f"{args.threads} thread{'s' if args.threads != 1 else ''}"
    print(f"fedcare bench-crypto (threshold RLWE, {threads})")
    for name, value in ours.items():
        shown = f"{value * 1000:10.2f} ms" if "B/value" not in name and "on the wire" not in name else f"{value:10.2f} B/value"
        print(f"  {name:<48} {shown}")
    print(f"\nTenSEAL CKKS, NVFlare settings (N = 8192, [60, 40, 40], 2^40, symmetric, {threads})")
    for name, value in peer.items():
        if name == "bytes per value":
            shown = f"{value:10.2f} B/value"
        elif name == "max error of the sum":
            shown = f"{value:10.2e}"
        else:
            shown = f"{value * 1000:10.2f} ms"
        print(f"  {name:<48} {shown}")

    print("\nratios (TenSEAL / fedcare; above 1: fedcare is faster or smaller)")
    encrypt_peer = peer["encrypt (per party)"] + peer["serialize (per party)"]
    rows = [
        ("encrypt, with serialization", encrypt_peer, ours["encrypt (per party)"]),
        ("aggregate", peer["aggregate all ciphertexts (deserialize + add)"], ours["aggregate all ciphertexts (aggregator)"]),
        (
            "decrypt (TenSEAL: one key holder; fedcare: a share + combine)",
            peer["decrypt the sum (one key holder)"],
            ours["mask check + decryption share (per party)"] + ours["combine + decode (aggregator)"],
        ),
        ("bytes per value on the wire", peer["bytes per value"], ours["ciphertext on the wire (per party)"]),
    ]
    for name, theirs, mine in rows:
        print(f"  {name:<62} {theirs / mine:8.2f}x")


if __name__ == "__main__":
    main()
