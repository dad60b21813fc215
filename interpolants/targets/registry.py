"""The named targets of docs/benchmarks.md: ``get(name, **options)`` and ``names()``."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any

from .base import Target
from .funnel import Funnel
from .gmm import gaussian_mixture_family, gmm40
from .hierarchical import EightSchools
from .item_response import ItemResponse
from .many_well import ManyWell
from .particles import Particles
from .phi4 import Phi4, Phi4Chain
from .radial_velocity import RadialVelocity
from .regression import LogisticRegression
from .spins import Ising, Potts
from .state_space import LocalLevel

__all__ = ["get", "names"]

_TARGETS: dict[str, Callable[..., Target]] = {
    "eight_schools": EightSchools,
    "funnel": Funnel,
    "gmm40": gmm40,
    "ising": Ising,
    "item_response": ItemResponse,
    "local_level": LocalLevel,
    "logistic_regression": LogisticRegression,
    "many_well": ManyWell,
    "particles": Particles,
    "phi4": Phi4,
    "phi4_1d": Phi4Chain,
    "potts": Potts,
    "radial_velocity": RadialVelocity,
}
_FAMILY = re.compile(r"gmm-d([1-9]\d*)-k([1-9]\d*)")
_FAMILY_NAME = "gmm-d{d}-k{k}"


def names() -> list[str]:
    """The fixed target names, sorted; ``gmm-d{d}-k{k}`` (any d, k >= 1) is accepted too."""
    return sorted(_TARGETS)


def _check_options(name: str, factory: Callable[..., Target], options: dict[str, Any]) -> None:
    params = inspect.signature(factory).parameters
    allowed = [p for p in params if params[p].kind is not inspect.Parameter.VAR_KEYWORD]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for target {name!r}; options: {allowed}")


def get(name: str, **options: Any) -> Target:
    """The target called ``name`` (docs/benchmarks.md), built with ``options``.

    Arguments:
        name: one of :func:`names`, or ``gmm-d{d}-k{k}`` for the Gaussian-mixture family.
        options: keyword options of that target (e.g. ``L=16`` for ``phi4``, ``kT=0.2`` for
            ``particles``, ``dtype=torch.float64`` for any).

    Example:
        >>> get("gmm40").dim
        2
    """
    if not isinstance(name, str):
        raise ValueError(f"name must be a string, got {type(name).__name__}")
    family = _FAMILY.fullmatch(name)
    if family:
        _check_options(name, gaussian_mixture_family, {"d": 0, "k": 0, **options})
        if {"d", "k"} & set(options):
            raise ValueError(f"name {name!r} already sets d and k; do not pass them as options")
        return gaussian_mixture_family(int(family[1]), int(family[2]), **options)
    if name not in _TARGETS:
        known = ", ".join([*names(), _FAMILY_NAME])
        raise ValueError(f"unknown target name {name!r}; known: {known}")
    _check_options(name, _TARGETS[name], options)
    return _TARGETS[name](**options)
