"""Writes rdp_epsilon.csv: ε of the Poisson-subsampled Gaussian mechanism over a grid of
(sampling rate q, noise multiplier σ, steps, δ), computed by Google's dp-accounting (RdpAccountant
with its default orders). `core/tests/privacy.rs` checks fedcare's accountant against it.

    python3 -m venv /tmp/dpa && /tmp/dpa/bin/pip install dp-accounting==0.6.0
    /tmp/dpa/bin/python core/tests/golden/make_rdp_golden.py > core/tests/golden/rdp_epsilon.csv
"""

import itertools
import math

import dp_accounting
from absl import logging
from dp_accounting.rdp import rdp_privacy_accountant

# Orders whose series does not converge are left out, with a warning each: as fedcare does.
logging.set_verbosity(logging.ERROR)


def epsilon(q: float, sigma: float, steps: int, delta: float) -> float:
    accountant = rdp_privacy_accountant.RdpAccountant()
    step = dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma))
    accountant.compose(dp_accounting.SelfComposedDpEvent(step, steps))
    return float(accountant.get_epsilon(delta))


print("# dp-accounting 0.6.0: RdpAccountant with its default orders, add-or-remove-one neighbours")
print("q,sigma,steps,delta,epsilon")
for q, sigma, steps, delta in itertools.product(
    (0.001, 0.01, 0.05, 0.2, 1.0), (0.5, 0.8, 1.0, 1.5, 3.0, 10.0), (1, 10, 100, 1000, 10000), (1e-5, 1e-6)
):
    value = epsilon(q, sigma, steps, delta)
    if math.isfinite(value):
        print(f"{q},{sigma},{steps},{delta},{value!r}")
