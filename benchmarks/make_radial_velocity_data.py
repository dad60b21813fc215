"""Make the radial-velocity data set shipped as interpolants/targets/radial_velocity.csv.

Run once: ``python benchmarks/make_radial_velocity_data.py``. It draws, with
``numpy.random.default_rng(SEED)``:

- the epochs: N_OBS distinct nights out of the first SEASON days, each observed at a time of
  night drawn from N(0, 0.08^2) days (so the window function has strong one-day aliases);
- the error bars sigma_j ~ U(1.5, 3.5) m/s;
- the velocities v_j = v(t_j; TRUE_PARAMETERS) + sigma_j * z_j, z_j ~ N(0, 1) (no jitter),

with v the Keplerian model of interpolants.targets.radial_velocity, t_ref the middle of the
time span, and writes times (days), velocities and errors (m/s) rounded to 4 decimals. It
then prints the best circular-orbit fits (a generalised Lomb-Scargle periodogram,
chi^2 minimised over K cos lambda, K sin lambda and gamma on a grid in frequency), to show
the period aliases that make the posterior multimodal.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from interpolants.targets.radial_velocity import (
    TRUE_PARAMETERS,
    OrbitParameters,
    radial_velocity_model,
)

SEED = 20170101
N_OBS = 16
SEASON = 200
OUT = Path(__file__).resolve().parents[1] / "interpolants" / "targets" / "radial_velocity.csv"


def draw_data(seed: int = SEED) -> np.ndarray:
    """(N_OBS, 3) array of time, rv, rv_err."""
    rng = np.random.default_rng(seed)
    nights = np.sort(rng.choice(SEASON, size=N_OBS, replace=False)).astype(float)
    time = np.round(nights + rng.normal(0.0, 0.08, N_OBS), 4)
    err = np.round(rng.uniform(1.5, 3.5, N_OBS), 4)
    t_ref = 0.5 * (time.min() + time.max())
    truth = OrbitParameters(
        *(
            torch.tensor([float(TRUE_PARAMETERS[k])], dtype=torch.float64)
            for k in OrbitParameters._fields
        )
    )
    model = radial_velocity_model(truth, torch.from_numpy(time), t_ref)[0].numpy()
    rv = np.round(model + err * rng.normal(size=N_OBS), 4)
    return np.stack([time, rv, err], axis=1)


def circular_periodogram(table: np.ndarray, periods: np.ndarray) -> np.ndarray:
    """Minimum chi^2 of gamma + A cos(2 pi t / P) + B sin(2 pi t / P) at every period."""
    t, v, s = table.T
    chi2 = np.empty(len(periods))
    for i, P in enumerate(periods):
        X = np.stack([np.ones_like(t), np.cos(2 * np.pi * t / P), np.sin(2 * np.pi * t / P)], 1)
        coef, *_ = np.linalg.lstsq(X / s[:, None], v / s, rcond=None)
        chi2[i] = np.sum(((v - X @ coef) / s) ** 2)
    return chi2


def report_peaks(table: np.ndarray, top: int = 6) -> None:
    span = table[:, 0].max() - table[:, 0].min()
    freq = np.arange(1 / 1000, 1.0, 1 / (20 * span))  # periods from 1 to 1000 days
    chi2 = circular_periodogram(table, 1 / freq)
    is_min = (chi2[1:-1] < chi2[:-2]) & (chi2[1:-1] < chi2[2:])
    idx = np.flatnonzero(is_min) + 1
    idx = idx[np.argsort(chi2[idx])][:top]
    print(f"circular fits, best {top} local minima of chi^2 over P in [1, 1000] d:")
    for i in idx:
        print(f"  P = {1 / freq[i]:9.4f} d  chi^2 = {chi2[i]:8.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--dry-run", action="store_true", help="print only, write nothing")
    args = parser.parse_args()
    table = draw_data()
    t_ref = 0.5 * (table[:, 0].min() + table[:, 0].max())
    print(f"{len(table)} epochs over {np.ptp(table[:, 0]):.1f} days, t_ref = {t_ref}")
    report_peaks(table)
    if not args.dry_run:
        header = (
            "synthetic one-planet radial velocities from benchmarks/make_radial_velocity_data.py\n"
            f"seed {SEED}; truth {TRUE_PARAMETERS} (phase = mean longitude at t_ref = {t_ref})\n"
            "time [d], rv [m/s], rv_err [m/s]"
        )
        np.savetxt(args.out, table, fmt="%.4f", delimiter=",", header=header)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
