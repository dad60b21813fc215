"""Flow-map runs from YAML configs (``model: flow_map``): their section, training and evaluation.

A config trains a flow map (:func:`~interpolants.fit_flow_map`) instead of the fields with::

    model: flow_map
    flow_map: {method: lagrangian, diagonal: 0.75}   # method and FlowMapObjective's options;
                                                     # teacher: a trained run (method: distill)
    eval: {n: 20000, jumps: [1, 2, 4], nll_points: 2000}

Everything else (data, base, interpolant, net, the loop's options) is read as for ``si.fit``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..flowmaps import FlowMapModel, fit_flow_map
from ..flowmaps.objectives import METHODS, OPTIONS
from ..generative import load
from ..metrics import mmd2, sliced_w2

__all__ = [
    "FLOW_MAP_KEYS",
    "check_flow_map_config",
    "evaluate_flow_map",
    "flow_map_trainer",
    "jumps_setting",
]

FLOW_MAP_KEYS = ("method", "teacher", *OPTIONS)
"""The keys of a config's ``flow_map`` section."""

EXACT_NLL_DIMS = 16
"""The test NLL of a flow map uses exact Jacobians (d backward passes per point): up to this d."""


def check_flow_map_config(config: dict[str, Any], where: str) -> None:
    """``model`` is "generative" or "flow_map"; a flow map's section has known keys and a known
    method, and the config sets no ``fields`` or ``objective`` (the flow map is its own)."""
    model = config.get("model", "generative")
    if model not in ("generative", "flow_map"):
        raise ValueError(
            f"{where}: model must be 'generative', 'flow_map' or 'forecast', got {model!r}"
        )
    section = config.get("flow_map")
    if model == "generative":
        if section is not None:
            raise ValueError(f"{where}: a flow_map section needs model: flow_map")
        return
    if section is not None and not isinstance(section, dict):
        raise ValueError(f"{where}: flow_map must be a mapping, got {section!r}")
    unknown = sorted(set(section or {}) - set(FLOW_MAP_KEYS))
    if unknown:
        raise ValueError(f"{where}: flow_map: unknown key(s) {unknown}; known: {FLOW_MAP_KEYS}")
    method = (section or {}).get("method", "lagrangian")
    if method not in METHODS:
        raise ValueError(f"{where}: flow_map: method must be one of {tuple(METHODS)}")
    for key in ("fields", "objective"):
        if key in config:
            raise ValueError(f"{where}: {key} does not apply to model: flow_map")


def flow_map_trainer(config: dict[str, Any], folder: Path | None = None) -> Callable[..., Any]:
    """``fit_flow_map`` with the section's method and options bound (the teacher, a path
    relative to ``folder``, loaded with :func:`interpolants.load`)."""
    options = dict(config.get("flow_map") or {})
    teacher = options.pop("teacher", None)
    if teacher is not None:
        path = Path(teacher)
        options["teacher"] = load(path if path.is_absolute() or folder is None else folder / path)

    def train(data: Any, **loop: Any) -> FlowMapModel:
        return fit_flow_map(data, **options, **loop)

    return train


def jumps_setting(value: Any, where: str) -> list[int]:
    """The jump counts an evaluation reports, a non-empty list of positive integers."""
    value = [1, 2, 4] if value is None else value
    if not isinstance(value, list) or not value or not all(
        isinstance(k, int) and not isinstance(k, bool) and k >= 1 for k in value
    ):  # fmt: skip
        raise ValueError(f"{where}: jumps must be a list of positive integers, got {value!r}")
    return value


def evaluate_flow_map(
    model: FlowMapModel, test: Tensor, reference: Tensor, ev: dict[str, Any]
) -> tuple[dict[str, Any], dict[int, Tensor]]:
    """Sliced W2 and MMD^2 to the test points at each jump count (beside the floors between
    test and reference points), the round trip |X_{1,0}(X_{0,1}(x0)) - x0|, and for events of
    at most :data:`EXACT_NLL_DIMS` the few-step test NLL. Returns (metrics, samples by k)."""
    gen = torch.Generator().manual_seed(0)
    result: dict[str, Any] = {"sliced_w2_floor": sliced_w2(reference, test),
                              "mmd2_floor": mmd2(reference, test)}  # fmt: skip
    samples, dims = {}, test[0].numel()
    pts = test[: ev["nll_points"]]
    if model.base is None:
        raise ValueError("the flow map has no base to draw from")
    x0 = model.base.sample(len(pts), gen)
    for k in jumps_setting(ev.get("jumps"), "eval"):
        start = time.perf_counter()
        x = model.sample(len(test), steps=k, generator=gen)
        result[f"sample_seconds_{k}"] = time.perf_counter() - start
        result[f"sliced_w2_{k}"], result[f"mmd2_{k}"] = sliced_w2(x, test), mmd2(x, test)
        result[f"round_trip_{k}"] = float(model.round_trip(x0, steps=k).mean())
        if dims <= EXACT_NLL_DIMS:
            nll = -model.log_prob(pts, steps=k).detach()
            result[f"test_nll_{k}"] = float(nll.mean())
            result[f"test_nll_stderr_{k}"] = float(nll.std() / math.sqrt(len(nll)))
        samples[k] = x
    return result, samples
