r"""PNG plots of a :class:`~interpolants.samplers.SampleResult` (matplotlib, headless Agg backend).

- :func:`plot_samples`: the samples in the plane of the first two coordinates, over the
  contours of the target density rho*(x) ∝ exp(log_prob(x)) when dim = 2, beside exact draws
  when the target has them; weighted samples are also shown resampled by their weights.
- :func:`plot_log_weights`: the histogram of the normalised log weights
  log W_i = log w_i - log mean_j exp(log w_j) (0 is the mean weight; a long left tail and
  ESS / N = (sum w)^2 / (N sum w^2) far below 1 mean a few walkers carry the estimate).
- :func:`plot_lattice`: a spin model's configurations as images, its magnetisation and
  LEAPS's loss.
- :func:`plot_traces`: per chain, log rho*(x_t) over all iterations (warm-up shaded) and the
  first coordinates after warm-up: chains that disagree have not mixed.

:func:`plot_result` writes whichever of these apply and returns their paths.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..samplers import SampleResult
from .plots import pyplot, samples_over_density

__all__ = [
    "plot_flow_mcmc",
    "plot_lattice",
    "plot_log_weights",
    "plot_result",
    "plot_samples",
    "plot_traces",
]

MAX_CHAINS = 8  # chains drawn in a trace plot


def _resample(samples: Tensor, log_weights: Tensor, seed: int = 0) -> Tensor:
    """n draws with replacement, walker i with probability W_i (multinomial resampling)."""
    w = torch.softmax(log_weights.detach().double().cpu().flatten(), 0)
    generator = torch.Generator().manual_seed(seed)
    idx = torch.multinomial(w, samples.shape[0], replacement=True, generator=generator)
    return samples.detach().cpu()[idx]


def _limits(
    *sets: Tensor, margin: float = 0.1, columns: slice = slice(0, 2)
) -> tuple[float, float]:
    """A window holding the central 99% of every point set in its ``columns`` (the first
    two: a square window for both axes)."""
    pts = torch.cat([s.detach().cpu().double()[:, columns].flatten() for s in sets])
    pts = pts[torch.isfinite(pts)]
    if pts.numel() == 0:
        return (-1.0, 1.0)
    lo, hi = float(torch.quantile(pts, 0.005)), float(torch.quantile(pts, 0.995))
    pad = margin * max(hi - lo, 1e-6)
    return (lo - pad, hi + pad)


def _normalised_density(log_prob: Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
    """x -> log_prob(x) - max over the grid, so that exp() neither overflows nor is all 0."""

    def shifted(x: Tensor) -> Tensor:
        lp = torch.nan_to_num(log_prob(x).double(), nan=-math.inf, posinf=-math.inf)
        top = lp.max()
        return lp - top if torch.isfinite(top) else torch.full_like(lp, -math.inf)

    return shifted


def plot_samples(
    result: SampleResult,
    target: Any,
    path: str | Path,
    max_points: int = 5000,
    seed: int = 0,
    labels: list[str] | None = None,
) -> Path:
    """Samples in the (x_0, x_1) plane; over the target's density contours when dim = 2.

    Panels: the samples as returned; for weighted samples (AIS, SMC) the same resampled by
    their weights (what the weighted set represents); exact draws of the target when its
    ``sample`` exists. For dim > 2 the panels show the first two coordinates, without contours.

    Arguments:
        result: a :class:`~interpolants.samplers.SampleResult`.
        target: the target it sampled (``log_prob``, ``dim``, optionally ``sample``).
        path: the PNG to write (parent folders are created).
        max_points: at most this many points per panel.
        seed: seeds the resampling and the exact draws (the picture is reproducible).
        labels: names of the coordinates (one per coordinate, or the two drawn); by default
            the target's ``coordinate_names`` when it has them, else ``x[0]``, ``x[1]``.

    The title says which coordinates are drawn and of how many ("x[0] vs x[1] of 32
    coordinates"); the colour bar of the contours (dim = 2) is rho*(x) / max rho* on the grid,
    so the unknown normalising constant does not matter.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    samples = result.samples.detach().cpu()
    dim = samples.shape[1]
    if labels is None:
        labels = getattr(target, "coordinate_names", None)
    panels: dict[str, Tensor] = {f"{result.method} samples": samples}
    if result.log_weights is not None:
        panels[f"{result.method} resampled by weight"] = _resample(
            samples, result.log_weights, seed
        )
    try:
        exact = target.sample(
            min(samples.shape[0], max_points), torch.Generator().manual_seed(seed)
        )
        panels["exact samples"] = exact.detach().cpu()
    except (NotImplementedError, AttributeError, TypeError):
        pass
    if dim == 1:
        panels = {k: torch.cat([v, torch.zeros_like(v)], 1) for k, v in panels.items()}
        labels = [labels[0] if labels else "x[0]", "0 (the target is 1D)"]
    log_prob = None
    if dim == 2:
        log_prob = _normalised_density(
            lambda x: target.log_prob(x.to(samples.dtype)).detach().cpu()
        )
    # dim 2: one square window (the density's contours at equal scales); above, coordinates
    # of different scales (a log-scale beside a location) get a window each
    limits: Any = _limits(*panels.values())
    if dim > 2:
        limits = tuple(_limits(*panels.values(), columns=slice(j, j + 1)) for j in (0, 1))
    first, second = labels[:2] if labels is not None else ("x[0]", "x[1]")
    of = f" of {dim} coordinates" if dim > 2 else ""
    over = ", over target density contours" if log_prob is not None else ""
    shown = f"{first} (1D target, drawn on the line 0)" if dim == 1 else f"{first} vs {second}"
    return samples_over_density(
        panels,
        path,
        log_prob,
        limits=limits,
        max_points=max_points,
        labels=labels,
        density_label="target density / its max on the grid (no units)",
        title=f"{result.method}: {shown}{of}{over}",
    )


def plot_log_weights(result: SampleResult, path: str | Path, bins: int = 50) -> Path:
    """Histogram of log W_i = log w_i - log mean exp(log w) for weighted samples.

    Arguments:
        result: a weighted :class:`~interpolants.samplers.SampleResult` (``log_weights`` not None).
        path: the PNG to write.
        bins: histogram bins.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    if result.log_weights is None:
        raise ValueError(f"result of method {result.method!r} has no log_weights to plot")
    lw = result.log_weights.detach().double().cpu().flatten()
    lw = lw - (torch.logsumexp(lw, 0) - math.log(lw.numel()))
    finite = lw[torch.isfinite(lw)]
    plt = pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist(finite.numpy(), bins=bins, color="steelblue")
    ax.axvline(0.0, color="crimson", lw=1, label="mean weight")
    ess = "" if result.ess is None else f", ESS/N = {result.ess:.3f}"
    dropped = lw.numel() - finite.numel()
    extra = f" ({dropped} non-finite left out)" if dropped else ""
    ax.set(
        xlabel="normalised log weight log w - log mean w (nats)",
        ylabel="walkers (count)",
        title=f"{result.method}: normalised log weights{ess}{extra}",
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_traces(result: SampleResult, path: str | Path, coordinates: int = 2) -> Path:
    """Per-chain traces: log rho*(x_t) with the warm-up shaded, then the first coordinates.

    Arguments:
        result: an MCMC :class:`~interpolants.samplers.SampleResult` (``log_prob_trace`` not None).
        path: the PNG to write.
        coordinates: how many leading coordinates of ``chain_samples`` to trace.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    if result.log_prob_trace is None:
        raise ValueError(f"result of method {result.method!r} has no log_prob_trace to plot")
    trace = result.log_prob_trace.detach().double().cpu()[:, :MAX_CHAINS]
    chains = result.chain_samples
    k = 0 if chains is None else min(coordinates, chains.shape[2])
    plt = pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1 + k, 1, figsize=(8, 2.4 * (1 + k)), squeeze=False)
    ax = axes[0, 0]
    ax.plot(trace.numpy(), lw=0.6)
    warmup = int(result.info.get("warmup", 0) or 0)
    if 0 < warmup < trace.shape[0]:
        ax.axvspan(0, warmup, color="0.9", zorder=0, label="warm-up")
        ax.legend(loc="lower right")
    total = result.log_prob_trace.shape[1]
    drawn = f"{trace.shape[1]} of {total} chains" if total > trace.shape[1] else f"{total} chain(s)"
    ax.set(
        xlabel="iteration (warm-up included)",
        ylabel="log rho*(x) (unnormalised)",
        title=f"{result.method}: target log density per chain, {drawn} (one colour each)",
    )
    dim = 0 if chains is None else chains.shape[2]
    for j in range(k):
        ax = axes[1 + j, 0]
        ax.plot(chains[:, :MAX_CHAINS, j].detach().double().cpu().numpy(), lw=0.6)
        ax.set(
            xlabel="draw after warm-up and thinning",
            ylabel=f"x[{j}]",
            title=f"coordinate x[{j}] of {dim} per chain",
        )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_flow_mcmc(result: SampleResult, path: str | Path) -> Path:
    """Flow-MCMC diagnostics: the global-move acceptance over the training rounds (the map
    learning) and over production (frozen map), and the number of global moves each chain
    accepted in production.

    Arguments:
        result: a flow-MCMC :class:`~interpolants.SampleResult` (``info["training_acceptance"]``).
        path: the PNG to write.
    """
    info = result.info
    if "training_acceptance" not in info:
        raise ValueError(f"result of method {result.method!r} has no flow-MCMC diagnostics")
    train = info["training_acceptance"].double().cpu()
    prod = info.get("global_acceptance_trace")
    plt = pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    ax = axes[0]
    ax.plot(range(len(train)), train.numpy(), lw=0.8, label="training (map learning)")
    if prod is not None and len(prod):
        x = range(len(train), len(train) + len(prod))
        ax.plot(x, prod.double().cpu().numpy(), lw=0.8, label="production (frozen map)")
    ax.set(xlabel="training round, then production iteration", ylim=(0, 1))
    ax.set_ylabel("global-move acceptance (fraction)")
    ax.set_title(
        f"{result.method}: global acceptance; training stopped by {info.get('stopped_by')} "
        f"after {info.get('training_rounds')} rounds",
        fontsize=10,
    )
    ax.legend(loc="upper right")
    accepted = info.get("global_accepted")
    if accepted is not None:
        axes[1].hist(accepted.double().sum(0).cpu().numpy(), bins=20)
        axes[1].set(
            xlabel="accepted global moves per chain (production)",
            ylabel="chains (count)",
            title="global moves accepted per chain",
        )
    else:
        axes[1].axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_lattice(result: SampleResult, target: Any, path: str | Path, shown: int = 8) -> Path:
    """A lattice target's states: ``shown`` configurations (resampled by their weights) as
    L x L images, the histogram of the magnetisation m, and LEAPS's training loss."""
    plt = pyplot()
    x = result.samples.detach().cpu()
    if result.log_weights is not None:
        x = _resample(x, result.log_weights)
    side = target.L
    panels = 2 + ("loss_history" in result.info and len(result.info["loss_history"]) > 0)
    fig = plt.figure(figsize=(2.0 * shown / 2 + 4 * (panels - 1), 4.2))
    grid = fig.add_gridspec(2, shown // 2 + panels - 1)
    values = target.values
    for k in range(min(shown, x.shape[0])):
        ax = fig.add_subplot(grid[k % 2, k // 2])
        ax.imshow(x[k].reshape(side, side), cmap="coolwarm", vmin=float(values.min()),
                  vmax=float(values.max()), interpolation="nearest")  # fmt: skip
        ax.set_xticks([])
        ax.set_yticks([])
    ax = fig.add_subplot(grid[:, shown // 2])
    ax.hist(target.magnetisation(x).numpy(), bins=40, density=True, color="tab:blue")
    ax.set_xlabel("magnetisation m")
    ax.set_ylabel("density (resampled)")
    ax.set_title(f"{result.method}: {x.shape[0]} states")
    if panels == 3:
        ax = fig.add_subplot(grid[:, shown // 2 + 1])
        ax.semilogy(result.info["loss_history"].numpy())
        ax.set_xlabel("Adam step")
        ax.set_ylabel("LEAPS loss (variance of a_t)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def plot_result(result: SampleResult, target: Any, out: str | Path) -> list[Path]:
    """Write every plot that applies to ``result`` into the folder ``out``.

    ``samples.png`` always; ``log_weights.png`` for weighted samples; ``traces.png`` for
    Markov chains; ``flow_mcmc.png`` (global acceptance) for flow-MCMC and flow IS;
    ``lattice.png`` for the spin models (configurations, magnetisation, LEAPS's loss).

    Returns:
        The paths written.
    """
    out = Path(out)
    paths = [plot_samples(result, target, out / "samples.png")]
    if result.log_weights is not None:
        paths.append(plot_log_weights(result, out / "log_weights.png"))
    if result.log_prob_trace is not None:
        paths.append(plot_traces(result, out / "traces.png"))
    if "training_acceptance" in result.info:
        paths.append(plot_flow_mcmc(result, out / "flow_mcmc.png"))
    if hasattr(target, "magnetisation") and isinstance(getattr(target, "L", None), int):
        paths.append(plot_lattice(result, target, out / "lattice.png"))
    return paths
