"""PNG plots of probabilistic forecasts (matplotlib, headless): forecast fans against the
truth, rank histograms, and the scores against the lag."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from .plots import pyplot, save_figure

__all__ = ["forecast_fans", "lag_scores", "rank_histograms"]


def forecast_fans(
    paths: Tensor,
    truth: Tensor,
    start: Tensor,
    path: str | Path,
    *,
    states: int = 3,
    coordinates: int = 3,
    labels: Sequence[str] | None = None,
) -> Path:
    """Fans of a rollout against the truth: one panel per (state, coordinate) for the first
    ``states`` rows and ``coordinates`` entries; the 5-95 % and 25-75 % bands and the median of
    the members over lags 0..L, the true trajectory (black) from the same current state.

    ``paths`` (lags, members, rows, dim), ``truth`` (lags, rows, dim) or None, ``start``
    (rows, dim): the current states (lag 0)."""
    plt = pyplot()
    lags, _, rows, dim = paths.shape
    ns, nc = min(states, rows), min(coordinates, dim)
    fig, axes = plt.subplots(ns, nc, figsize=(3.6 * nc, 2.6 * ns), squeeze=False)
    x = torch.arange(lags + 1)
    full = torch.cat([start[None, None].expand(1, paths.shape[1], rows, dim).to(paths), paths])
    q = torch.quantile(full.double(), torch.tensor([0.05, 0.25, 0.5, 0.75, 0.95]).double(), dim=1)
    for i in range(ns):
        for j in range(nc):
            ax = axes[i][j]
            ax.fill_between(x, q[0, :, i, j], q[4, :, i, j], color="C0", alpha=0.2,
                            label="forecast 5-95 %")  # fmt: skip
            ax.fill_between(x, q[1, :, i, j], q[3, :, i, j], color="C0", alpha=0.4,
                            label="forecast 25-75 %")  # fmt: skip
            ax.plot(x, q[2, :, i, j], color="C0", label="forecast median")
            if truth is not None:
                true = torch.cat([start[None, i, j].to(truth), truth[:, i, j]])
                ax.plot(x, true, "k.-", label="truth")
            name = labels[j] if labels is not None else f"x[{j}]"
            ax.set_xlabel("lag")
            ax.set_ylabel(name)
            ax.set_title(f"state {i}, {name}", fontsize=9)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"forecast ensembles ({paths.shape[1]} members) over {lags} lags")
    fig.tight_layout()
    return save_figure(fig, path)


def rank_histograms(histograms: dict[str, Sequence[float]], path: str | Path) -> Path:
    """Rank histograms side by side (frequency of each rank 0..m of the truth among m
    members), the flat 1 / (m + 1) of a calibrated ensemble dashed."""
    plt = pyplot()
    n = len(histograms)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.2), squeeze=False)
    for ax, (name, hist) in zip(axes[0], histograms.items(), strict=True):
        ranks = range(len(hist))
        ax.bar(ranks, hist, width=1.0, color="C0", edgecolor="white", linewidth=0.3)
        ax.axhline(1 / len(hist), color="k", linestyle="--", label="calibrated")
        ax.set_xlabel(f"rank of the truth among {len(hist) - 1} members")
        ax.set_ylabel("frequency")
        ax.set_title(name, fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle("rank histograms (flat: calibrated; U: too narrow; dome: too wide)")
    fig.tight_layout()
    return save_figure(fig, path)


def lag_scores(
    crps: Sequence[float],
    spread_skill: Sequence[float],
    path: str | Path,
    *,
    references: dict[str, float | Sequence[float]] | None = None,
) -> Path:
    """CRPS and the spread-skill ratio of a rollout against the lag (1..L); ``references``:
    CRPS of other forecasts (a number: a horizontal line; a sequence: one per lag)."""
    plt = pyplot()
    lags = list(range(1, len(crps) + 1))
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.4))
    a.plot(lags, crps, "o-", label="model")
    for k, (name, value) in enumerate((references or {}).items()):
        if isinstance(value, (int, float)):
            a.axhline(value, color=f"C{k + 1}", linestyle="--", label=name)
        else:
            a.plot(lags, list(value), "s--", color=f"C{k + 1}", label=name)
    a.set_xlabel("lag")
    a.set_ylabel("CRPS (mean over states and coordinates)")
    a.set_yscale("log")
    a.legend(fontsize=7)
    a.set_title("CRPS (lower is better)", fontsize=9)
    b.plot(lags, spread_skill, "o-")
    b.axhline(1.0, color="k", linestyle="--", label="calibrated (1)")
    b.set_xlabel("lag")
    b.set_ylabel("spread / skill")
    b.set_title("spread-skill ratio (< 1 over-confident)", fontsize=9)
    b.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)
