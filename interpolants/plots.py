"""PNG plots (matplotlib, headless): samples over a density, curves."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

__all__ = ["curves", "density_heatmap", "samples_over_density"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def samples_over_density(
    panels: dict[str, Tensor],
    path: str | Path,
    log_prob: Callable[[Tensor], Tensor] | None = None,
    limits: tuple[float, float] = (-6.0, 6.0),
    max_points: int = 5000,
) -> Path:
    """Scatter 2D sample sets side by side, over the contours of ``log_prob`` when given.

    Arguments:
        panels: title -> (n, 2) samples.
        path: where to write the PNG (parents are created).
        log_prob: a callable (m, 2) -> (m,), drawn as filled contours of the density.
    """
    plt = _pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4.3), squeeze=False)
    grid = None
    if log_prob is not None:
        u = torch.linspace(*limits, 200, dtype=torch.float64)
        gx, gy = torch.meshgrid(u, u, indexing="xy")
        with torch.no_grad():
            dens = log_prob(torch.stack([gx.flatten(), gy.flatten()], 1)).exp().reshape(200, 200)
        grid = (gx.numpy(), gy.numpy(), dens.numpy())
    for ax, (title, x) in zip(axes[0], panels.items(), strict=True):
        if grid is not None:
            ax.contourf(*grid, levels=20, cmap="Blues")
        pts = x[:max_points].detach().cpu().double().numpy()
        ax.scatter(pts[:, 0], pts[:, 1], s=1.5, c="crimson", alpha=0.5, linewidths=0)
        ax.set(xlim=limits, ylim=limits, title=title, aspect="equal")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def curves(
    series: dict[str, tuple[list[float], list[float]]],
    path: str | Path,
    xlabel: str = "step",
    log_y: bool = False,
) -> Path:
    """Line plot of named (x, y) series, e.g. the loss against the training step."""
    plt = _pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, (x, y) in series.items():
        ax.plot(x, y, label=name)
    ax.set(xlabel=xlabel)
    if log_y:
        ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def density_heatmap(
    log_prob: Callable[[Tensor], Tensor],
    path: str | Path,
    limits: tuple[float, float] = (-5.0, 5.0),
    resolution: int = 80,
) -> Path:
    """Heat map of exp(log_prob) on a 2D grid (the model's density)."""
    plt = _pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    u = torch.linspace(*limits, resolution)
    gx, gy = torch.meshgrid(u, u, indexing="xy")
    dens = (
        log_prob(torch.stack([gx.flatten(), gy.flatten()], 1)).exp().reshape(resolution, resolution)
    )
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.imshow(dens.detach().numpy(), origin="lower", extent=(*limits, *limits), cmap="magma")
    ax.set(title="model density", xticks=[], yticks=[])
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
