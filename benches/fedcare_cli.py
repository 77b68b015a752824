"""Running the `fedcare` binary from the benchmark scripts."""

import subprocess


def fedcare(binary: str, args: list, cwd: str) -> str:
    """`binary args…` in `cwd`; its standard output, or the script stops with both outputs."""
    done = subprocess.run([binary, *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"fedcare {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout
