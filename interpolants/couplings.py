r"""Couplings: the joint law of the end points (x0, x1) and what the fields are conditioned on
(stochastic interpolants with data-dependent couplings, Albergo, Goldstein, Boffi, Ranganath &
Vanden-Eijnden, arXiv 2310.03725).

Training draws a batch of rows of the data (:class:`~interpolants.data.DataBatch`: x1, their
labels and indices) and a coupling turns it into end points,

    sample(batch, generator) -> CouplingSample(x0, x1, cond),

x0 ~ rho(x0 | x1), with ``cond`` (None, or one row per x1) what the fields see besides
(t, x): ``net(t, x, cond=cond)``. A coupling goes wherever a base goes: ``si.fit(data,
base=coupling)``. The independent coupling rho(x0, x1) = rho_0(x0) rho_1(x1) is the default;
the others of 2310.03725 (inpainting x0 = m x1 + (1 - m) noise with cond = m x1,
super-resolution, a corruption x0 = f(x1), paired data x0 = x0_data[index] for forecasting,
labels as cond) are classes of the same shape.

Example:
    >>> import torch, interpolants as si
    >>> from interpolants.couplings import Independent
    >>> from interpolants.data import DataBatch
    >>> pair = Independent().sample(DataBatch(torch.ones(4, 2)), torch.Generator().manual_seed(0))
    >>> pair.x0.shape, pair.cond
    (torch.Size([4, 2]), None)
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .data import DataBatch, as_data
from .distributions import Distribution, Empirical, StandardNormal, as_distribution

__all__ = ["Coupling", "CouplingSample", "DataBatch", "Independent", "as_coupling"]


@dataclass(frozen=True)
class CouplingSample:
    """End points of a batch: x0 (n, *event), x1 (n, *event) and the conditioning ``cond``
    (None, or a tensor with one row per x1)."""

    x0: Tensor
    x1: Tensor
    cond: Tensor | None = None

    def to(self, device: torch.device | str) -> CouplingSample:
        cond = None if self.cond is None else self.cond.to(device)
        return CouplingSample(self.x0.to(device), self.x1.to(device), cond)


class Coupling(abc.ABC):
    """The joint law of (x0, x1) given draws of the data, and the conditioning of the fields.

    Subclasses implement :meth:`sample`; :meth:`bind` (once, before training) may fill in
    what depends on the data. ``base`` is the law of x0 that a model trained with this coupling
    samples from when x0 does not depend on the data (a distribution with ``sample(n,
    generator)`` and ``log_prob``), None where it does.
    """

    base: Distribution | None = None

    @abc.abstractmethod
    def sample(self, batch: DataBatch, generator: torch.Generator | None = None) -> CouplingSample:
        """End points (x0, x1, cond) for the rows ``batch`` of the data, drawn with
        ``generator``."""

    def bind(self, example: DataBatch) -> Coupling:
        """This coupling for data like ``example`` (a few rows): checks the shapes and fills
        in the defaults that depend on them. The default returns the coupling unchanged."""
        return self


class Independent(Coupling):
    r"""x0 drawn independently of x1: rho(x0, x1) = rho_0(x0) rho_1(x1), no conditioning
    (the coupling of arXiv 2303.08797, and :func:`~interpolants.fit`'s default).

    Arguments:
        base: rho_0: None for N(0, I) on the data's events and dtype (fixed by :meth:`bind`,
            or by the first batch), a Tensor / numpy array of x0 samples (drawn uniformly with
            replacement), a ``torch.distributions.Distribution``, or an object with
            ``sample(n, generator)``, ``log_prob(x)`` and ``event_shape``.
    """

    def __init__(self, base: Any = None):
        if isinstance(base, (Tensor, np.ndarray)):
            base = as_data(torch.as_tensor(base), "base")
        self.base = None if base is None else as_distribution(base)

    def bind(self, example: DataBatch) -> Independent:
        """The base on the data's events and dtype: samples are cast to it, a distribution of
        another floating dtype is refused (a ValueError naming ``base``)."""
        base = self._base_for(example.x1)
        dtype = example.x1.dtype
        if isinstance(base, Empirical) and base.samples.dtype != dtype:
            base = Empirical(base.samples.to(dtype))
        own = _dtype_of(base)
        if own is not None and own.is_floating_point and own != dtype:
            raise ValueError(
                f"base draws {str(own).removeprefix('torch.')}, the data are "
                f"{str(dtype).removeprefix('torch.')}: pass them in one dtype"
            )
        return Independent(base)

    def sample(self, batch: DataBatch, generator: torch.Generator | None = None) -> CouplingSample:
        x1 = batch.x1
        return CouplingSample(self._base_for(x1).sample(len(x1), generator), x1)

    def _base_for(self, x1: Tensor) -> Distribution:
        events = tuple(x1.shape[1:])
        base = StandardNormal(events, dtype=x1.dtype) if self.base is None else self.base
        if tuple(base.event_shape) != events:
            raise ValueError(
                f"base events {tuple(base.event_shape)} differ from data events {events}"
            )
        return base

    def __repr__(self) -> str:
        return f"Independent({'N(0, I)' if self.base is None else type(self.base).__name__})"


def _dtype_of(base: Any) -> torch.dtype | None:
    """The dtype a base draws in, read from its parameters where it shows them."""
    if isinstance(getattr(base, "dtype", None), torch.dtype):
        return base.dtype
    for name in ("mean", "means", "samples"):
        value = getattr(base, name, None)
        if isinstance(value, Tensor):
            return value.dtype
    return None


def as_coupling(base: Any) -> Coupling:
    """A coupling as given, or the independent coupling of a base given as None, samples or a
    distribution (:class:`Independent`)."""
    return base if isinstance(base, Coupling) else Independent(base)
