"""``si.fit_flow_map``: a flow map trained by :func:`~interpolants.fit`'s one loop."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data import as_data, batch_sampler
from ..interpolant import Interpolant
from ..nn import FlowMapMLP
from ..train import fit
from .model import FlowMapModel
from .objectives import OPTIONS, flow_map_objective

__all__ = ["default_flow_map_net", "fit_flow_map"]


def default_flow_map_net(data: Any, seed: int, **options: Any) -> nn.Module:
    """A :class:`~interpolants.nn.FlowMapMLP` for the data's vector events, its weights drawn
    from ``seed``; ``options`` are its keyword arguments (width, depth, time_features, ...)."""
    example = batch_sampler(as_data(data))(1, torch.Generator().manual_seed(0)).x1
    if example.ndim != 2:
        raise ValueError(
            f"the default flow-map network takes vectors; events of shape "
            f"{tuple(example.shape[1:])} need net= (a module net(s, t, x))"
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return FlowMapMLP(example.shape[1], **options)


def _interpolant(interpolant: Interpolant | None, teacher: Any) -> Interpolant:
    """The given interpolant, else the teacher's, else the linear one; a teacher of another
    interpolant is refused."""
    own = getattr(teacher, "interpolant", None)
    if interpolant is None:
        return own if isinstance(own, Interpolant) else Interpolant("linear")
    if isinstance(own, Interpolant) and repr(own) != repr(interpolant):
        raise ValueError(
            f"teacher was trained with {own!r}, not the interpolant given ({interpolant!r})"
        )
    return interpolant


def fit_flow_map(
    data: Any,
    interpolant: Interpolant | None = None,
    method: str = "lagrangian",
    steps: int = 5000,
    batch_size: int = 1024,
    seed: int = 0,
    teacher: Any = None,
    net: nn.Module | None = None,
    out: str | Path | None = None,
    **options: Any,
) -> FlowMapModel:
    r"""Learn the flow map X_{s,t}(x) = x + (t - s) v_{s,t}(x) of an interpolant's ODE from
    samples of rho_1, for generation in any number of jumps (arXiv 2406.07507, 2505.18825).

    Arguments:
        data: as :func:`~interpolants.fit`'s.
        interpolant: the interpolant (default: the teacher's, else linear).
        method: "lagrangian", "eulerian", "progressive" (self-distillation), "distill" (a
            residual against ``teacher``'s velocity), "meanflow" (arXiv 2505.13447) or
            "shortcut" (arXiv 2410.12557); :data:`~interpolants.flowmaps.METHODS`.
        steps, batch_size, seed: the optimisation, as ``fit``'s.
        teacher: the trained velocity of ``method="distill"`` (a GenerativeModel).
        net: None for a :class:`~interpolants.nn.FlowMapMLP` (``net_options=`` its keywords),
            or a module ``net(s, t, x)`` returning v_{s,t}(x) shaped like x.
        out: a run folder, as ``fit``'s (config.yaml, metrics.jsonl with the raw residuals
            ``diagonal`` and ``residual`` beside the loss, checkpoint.safetensors, plots).
        options: the objective's (:class:`~interpolants.flowmaps.FlowMapObjective`: residual,
            diagonal, pairs, backward, intermediate, time_distribution, weighting, stopgrad,
            velocity, ...) and ``fit``'s (base, lr, warmup, ema, resume, overwrite, ...).

    Returns:
        A :class:`~interpolants.flowmaps.FlowMapModel` of the EMA network.

    Example:
        >>> fm = fit_flow_map(torch.randn(256, 2) + 3, steps=2, batch_size=32,
        ...                   net_options={"width": 16, "depth": 1})
        >>> fm.sample(5, steps=2).shape
        torch.Size([5, 2])
    """
    chosen = {k: options.pop(k) for k in list(options) if k in OPTIONS}
    objective = flow_map_objective(method, teacher, **chosen)
    I = _interpolant(interpolant, teacher)
    if net is None:
        net = default_flow_map_net(data, seed, **options.get("net_options", {}))
    model = fit(
        data, interpolant=I, fields=("flow_map",), steps=steps, batch_size=batch_size,
        seed=seed, net=net, out=out, objective=objective, **options,
    )  # fmt: skip
    if not isinstance(model, FlowMapModel):
        raise TypeError(f"fit returned {type(model).__name__}, not a FlowMapModel")
    return model
