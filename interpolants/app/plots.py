"""PNG plots (matplotlib, headless): samples over a density, a density heat map, curves.

Every plot names what it draws: axis labels with the coordinates shown (``x[0]``, ``x[1]``
of d, or names the caller passes) and ticks, a labelled colour bar wherever colour encodes a
value, and a title.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "INTERPOLANT_LOSS_NOTE",
    "class_grid",
    "completion_grid",
    "curves",
    "density_heatmap",
    "loss_plot",
    "plot_run",
    "pyplot",
    "samples_over_density",
]

INTERPOLANT_LOSS_NOTE = (
    "Why the loss is negative: E|b|² − 2 dx_t/dt·b = E|b − dx_t/dt|² − E|dx_t/dt|², the "
    "regression error less a constant, so its minimum (−E|E[dx_t/dt | x_t]|²) is below 0; "
    "only its decrease means anything (score/denoiser terms likewise)."
)
"""The note under an interpolant loss curve (see :func:`curves`)."""


def pyplot() -> Any:
    """matplotlib.pyplot on the headless Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | Path) -> Path:
    """Write ``fig`` to the PNG ``path`` (parents created) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    pyplot().close(fig)
    return path


def _coordinate_names(coords: tuple[int, int], labels: Sequence[str] | None) -> tuple[str, str]:
    """The names of coordinates ``coords``: the caller's (the two drawn, or one per coordinate),
    else ``x[i]``."""
    if labels is None:
        return f"x[{coords[0]}]", f"x[{coords[1]}]"
    if len(labels) == 2:
        return str(labels[0]), str(labels[1])
    return str(labels[coords[0]]), str(labels[coords[1]])


def samples_over_density(
    panels: dict[str, Tensor],
    path: str | Path,
    log_prob: Callable[[Tensor], Tensor] | None = None,
    limits: tuple[float, float] | tuple[tuple[float, float], tuple[float, float]] = (-6.0, 6.0),
    max_points: int = 5000,
    *,
    coords: tuple[int, int] = (0, 1),
    labels: Sequence[str] | None = None,
    density_label: str = "density exp(log_prob)",
    title: str | None = None,
) -> Path:
    """Scatter sample sets side by side in the plane of two coordinates, over ``log_prob``.

    Each panel is titled by its key and the number of points drawn; the figure title says
    which coordinates are shown ("x[0] vs x[1] of 32" for 32-dimensional samples). With
    ``log_prob`` the density exp(log_prob) is drawn as filled contours with a colour bar.

    Arguments:
        panels: title -> (n, d) samples, d >= 2 (coordinates ``coords`` are drawn).
        path: where to write the PNG (parents are created).
        log_prob: a callable (m, 2) -> (m,) on the plane drawn, shown as filled contours of
            exp(log_prob) (only meaningful when d = 2).
        limits: the square window (low, high) of both axes (equal aspect), or one window
            per axis ((x_low, x_high), (y_low, y_high)), for coordinates of different scales.
        max_points: at most this many points per panel.
        coords: the two coordinates drawn.
        labels: names of the coordinates, either the two drawn or one per coordinate; the
            default is ``x[i]``.
        density_label: the colour bar's label (what exp(log_prob) is, with its units).
        title: the figure title; by default "samples: x[i] vs x[j] (of d)".
    """
    plt = pyplot()
    dims = {int(x.shape[1]) for x in panels.values()}
    dim = max(dims) if dims else 2
    xlabel, ylabel = _coordinate_names(coords, labels)
    if title is None:
        of = f" of {dim} coordinates" if dim > 2 else ""
        over = ", over the density contours" if log_prob is not None else ""
        title = f"samples: {xlabel} vs {ylabel}{of}{over}"
    n = len(panels)
    fig, axes = plt.subplots(
        1,
        n,
        figsize=(4 * n + (1.0 if log_prob is not None else 0.0), 4.6),
        squeeze=False,
        layout="constrained",
    )
    contours = None
    square = not isinstance(limits[0], (tuple, list))
    xlim, ylim = (limits, limits) if square else limits
    if log_prob is not None:
        u = torch.linspace(*xlim, 200, dtype=torch.float64)  # type: ignore[misc]
        v = torch.linspace(*ylim, 200, dtype=torch.float64)  # type: ignore[misc]
        gx, gy = torch.meshgrid(u, v, indexing="xy")
        with torch.no_grad():
            dens = log_prob(torch.stack([gx.flatten(), gy.flatten()], 1)).exp().reshape(200, 200)
        grid = (gx.numpy(), gy.numpy(), dens.double().cpu().numpy())
    for ax, (name, x) in zip(axes[0], panels.items(), strict=True):
        if log_prob is not None:
            contours = ax.contourf(*grid, levels=20, cmap="Blues")
        pts = x[:max_points].detach().cpu().double().numpy()
        ax.scatter(
            pts[:, coords[0]], pts[:, coords[1]], s=1.5, c="crimson", alpha=0.5, linewidths=0
        )
        shown = f"{len(pts)} of {len(x)}" if len(pts) < len(x) else f"{len(pts)}"
        ax.set(xlim=xlim, ylim=ylim, aspect="equal" if square else "auto", xlabel=xlabel,
               ylabel=ylabel)  # fmt: skip
        ax.set_title(f"{name} ({shown} points)", fontsize=10)
    if contours is not None:
        bar = fig.colorbar(contours, ax=list(axes[0]), shrink=0.85)
        bar.set_label(density_label)
    fig.suptitle(title)
    return save_figure(fig, path)


def curves(
    series: dict[str, tuple[list[float], list[float]]],
    path: str | Path,
    xlabel: str = "step",
    log_y: bool = False,
    *,
    ylabel: str | None = None,
    title: str | None = None,
    note: str | None = None,
) -> Path:
    """Line plot of named (x, y) series, e.g. the training loss against the step.

    Arguments:
        series: legend name -> (x values, y values).
        path: the PNG to write (parents are created).
        xlabel: the x-axis label.
        log_y: a logarithmic y axis (positive values only).
        ylabel: the y-axis label (what y is, with its units); by default the name of the one
            series, or "value" for several.
        title: the plot title; by default "<ylabel> against <xlabel>".
        note: a short text shown under the title, e.g. how to read the values.

    The interpolant's velocity loss (:func:`interpolants.losses.velocity_loss`) is
    E|b|² − 2 dx_t/dt·b = E|b − dx_t/dt|² − E|dx_t/dt|²: the regression error less a constant
    that does not depend on b, so its minimum, −E|E[dx_t/dt | x_t]|², is negative and only its
    decrease is meaningful, not its sign or level (the score and denoiser losses likewise).
    :data:`INTERPOLANT_LOSS_NOTE` says this in a line to pass as ``note``.
    """
    plt = pyplot()
    if ylabel is None:
        ylabel = next(iter(series)) if len(series) == 1 else "value"
    fig, ax = plt.subplots(figsize=(7, 4.6 if note else 4.2), layout="constrained")
    for name, (x, y) in series.items():
        ax.plot(x, y, label=name)
    ax.set(xlabel=xlabel, ylabel=ylabel)
    if log_y:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    if len(series) > 1:
        ax.legend()
    fig.suptitle(title if title is not None else f"{ylabel} against {xlabel}")
    if note:
        ax.set_title(textwrap.fill(note, 100), fontsize=8, loc="left", color="0.3")
    return save_figure(fig, path)


def density_heatmap(
    log_prob: Callable[[Tensor], Tensor],
    path: str | Path,
    limits: tuple[float, float] = (-5.0, 5.0),
    resolution: int = 80,
    *,
    log: bool = False,
    labels: Sequence[str] = ("x[0]", "x[1]"),
    label: str | None = None,
    title: str | None = None,
) -> Path:
    """Heat map of the model's density exp(log_prob) (or log_prob) on a 2D grid.

    Arguments:
        log_prob: a callable (m, 2) -> (m,), the model's log density in nats.
        path: the PNG to write (parents are created).
        limits: the square window (low, high) of both axes.
        resolution: grid points per axis.
        log: draw log_prob (nats; shows the tails) instead of the density.
        labels: the names of the two coordinates.
        label: the colour bar's label; by default "model density p(x)" or
            "model log density (nats)".
        title: the plot title; by default says what is drawn and on which grid.
    """
    plt = pyplot()
    u = torch.linspace(*limits, resolution)
    gx, gy = torch.meshgrid(u, u, indexing="xy")
    lp = log_prob(torch.stack([gx.flatten(), gy.flatten()], 1)).reshape(resolution, resolution)
    lp = lp.detach().double().cpu()
    values = lp if log else lp.exp()
    if label is None:
        label = "model log density log p(x) (nats)" if log else "model density p(x)"
    if title is None:
        what = "log density" if log else "density"
        title = f"model {what} on a {resolution}x{resolution} grid"
    fig, ax = plt.subplots(figsize=(5.4, 4.6), layout="constrained")
    image = ax.imshow(
        values.numpy(), origin="lower", extent=(*limits, *limits), cmap="magma", aspect="equal"
    )
    ax.set(xlabel=labels[0], ylabel=labels[1], title=title)
    bar = fig.colorbar(image, ax=ax, shrink=0.85)
    bar.set_label(label)
    return save_figure(fig, path)


def loss_plot(
    metrics_log: str | Path, path: str | Path, objective: str = "interpolant"
) -> Path | None:
    """The training loss of a run's metrics.jsonl against the step (None when it is empty).

    ``objective``: "interpolant" (the quadratic objectives, whose level is negative: see
    :data:`INTERPOLANT_LOSS_NOTE`) or "max_likelihood" (the training NLL in nats).
    """
    import json

    lines = Path(metrics_log).read_text().splitlines() if Path(metrics_log).exists() else []
    rows = []
    for line in lines:
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut by a crash
            continue
    rows = [r for r in rows if isinstance(r, dict) and "step" in r and "loss" in r]
    if not rows:
        return None
    nll = objective == "max_likelihood"
    return curves(
        {"loss": ([r["step"] for r in rows], [r["loss"] for r in rows])},
        path,
        xlabel="training step",
        ylabel="training NLL (nats)" if nll else "interpolant loss (sum over fields)",
        title="training loss (mean over each logging window)",
        note=None if nll else INTERPOLANT_LOSS_NOTE,
    )


def plot_run(model: Any, folder: str | Path | None) -> list[Path]:
    """The plots of a finished training run (``si.fit(..., out=...)``'s default ``on_end``):
    loss.png from its metrics.jsonl and, for 2-D data, samples.png of 2000 model samples.

    A plot that fails is a warning, not an error: the run is saved already."""
    import warnings

    import yaml

    from interpolants.run_folder import CONFIG, METRICS_LOG  # absolute: this module may move

    if folder is None:
        raise ValueError("plot_run writes into the run's folder: pass out= to fit")
    folder = Path(folder)
    config = yaml.safe_load((folder / CONFIG).read_text()) if (folder / CONFIG).exists() else {}
    paths = []
    try:
        loss = loss_plot(
            folder / METRICS_LOG, folder / "loss.png", config.get("objective", "interpolant")
        )
        paths += [] if loss is None else [loss]
        base = getattr(model, "base", None)  # a ForecastModel has none
        if base is not None and tuple(base.event_shape) == (2,):
            x = model.sample(2000, steps=50, generator=torch.Generator().manual_seed(0))
            paths.append(samples_over_density({"model samples (2000)": x}, folder / "samples.png"))
    except Exception as err:  # the run is saved; say why a plot is missing
        warnings.warn(f"plots of {folder} not written: {err}", stacklevel=2)
    return paths


def _image(ax: Any, img: Tensor, limits: tuple[float, float]) -> Any:
    """One image (C, H, W) on ``ax``: grey for one channel, RGB (clipped) for three; NaN
    entries (hidden by an in-painting) drawn in red."""
    import numpy as np

    plt = pyplot()
    arr = img.detach().double().cpu()
    ax.set_xticks([])
    ax.set_yticks([])
    if arr.shape[0] == 3:
        rgb = ((arr - limits[0]) / (limits[1] - limits[0])).clamp(0, 1).permute(1, 2, 0)
        rgb = torch.where(torch.isnan(rgb), torch.tensor([1.0, 0.0, 0.0]).double(), rgb)
        return ax.imshow(rgb.numpy(), interpolation="nearest")
    cmap = plt.get_cmap("gray").with_extremes(bad="red")
    data = np.ma.masked_invalid(arr[0].numpy())
    return ax.imshow(data, cmap=cmap, vmin=limits[0], vmax=limits[1], interpolation="nearest")


def _limits(*images: Tensor) -> tuple[float, float]:
    values = torch.cat([x.detach().flatten().double().cpu() for x in images])
    values = values[torch.isfinite(values)]
    low, high = (float(values.min()), float(values.max())) if len(values) else (0.0, 1.0)
    return (low, high if high > low else low + 1.0)


def completion_grid(
    observations: Tensor, samples: Tensor, truth: Tensor, path: str | Path, columns: int = 8
) -> Path:
    """Rows of images of a conditional model: the observation (hidden entries red, or a
    low-resolution image), the model's sample given it, and the true image; ``columns``
    examples side by side, on one grey scale with a colour bar."""
    plt = pyplot()
    k = min(columns, len(samples))
    rows = (("observation", observations), ("model sample", samples), ("truth", truth))
    limits = _limits(truth[:k])
    fig, axes = plt.subplots(3, k, figsize=(1.3 * k + 1.4, 4.4), squeeze=False)
    shown = None
    for r, (name, images) in enumerate(rows):
        for c in range(k):
            shown = _image(axes[r][c], images[c], limits)
        axes[r][0].set_ylabel(name, fontsize=9)
    for c in range(k):
        axes[0][c].set_title(f"test row {c}", fontsize=8)
    if shown is not None and samples.shape[1] == 1:
        bar = fig.colorbar(shown, ax=axes.ravel().tolist(), shrink=0.8)
        bar.set_label("pixel value (red: hidden)")
    fig.suptitle("completions: observation, model sample given it, true image")
    return save_figure(fig, path)


def class_grid(samples: Tensor, labels: Tensor, path: str | Path, per_class: int = 8) -> Path:
    """Images of a label model: one row per class (up to ``per_class`` samples drawn with that
    label), labelled with the class, on one grey scale with a colour bar."""
    plt = pyplot()
    classes = sorted({int(v) for v in labels.tolist()})
    limits = _limits(samples)
    fig, axes = plt.subplots(
        len(classes), per_class, figsize=(1.1 * per_class + 1.4, 1.1 * len(classes) + 0.8),
        squeeze=False,
    )  # fmt: skip
    shown = None
    for r, label in enumerate(classes):
        picked = samples[labels == label][:per_class]
        for c in range(per_class):
            if c < len(picked):
                shown = _image(axes[r][c], picked[c], limits)
            else:
                axes[r][c].set_xticks([])
                axes[r][c].set_yticks([])
        axes[r][0].set_ylabel(f"label {label}", fontsize=8)
    if shown is not None and samples.shape[1] == 1:
        bar = fig.colorbar(shown, ax=axes.ravel().tolist(), shrink=0.8)
        bar.set_label("pixel value")
    fig.suptitle("model samples by the label they were drawn with")
    return save_figure(fig, path)
