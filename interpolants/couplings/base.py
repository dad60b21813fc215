"""The coupling interface, the law of x0 given an observation (:class:`Source`) and the
independent coupling (with labels); the observing couplings are in :mod:`.observed`."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..checks import positive_int
from ..data import DataBatch, as_data
from ..distributions import LOG_2PI, Distribution, Empirical, StandardNormal, as_distribution

__all__ = ["Coupling", "CouplingSample", "DataBatch", "Independent", "Source", "as_coupling"]

LABEL_FEATURES = 32
"""Size of the label embedding of a default network conditioned on labels."""


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


class Source:
    r"""rho_0(x0 | y) for given observations y: draws of x0, their log density, the
    conditioning ``cond`` of the fields and the entries ``keep`` (a boolean tensor like x0, or
    None) that a sample keeps at their observed values: the velocity is zero there.

    This class is the Gaussian case x0 = mean + scale * zeta, entrywise; ``log_prob`` is the
    density of the entries with scale > 0 (the kept ones are fixed and left out; a point mass
    elsewhere has no density and is a ValueError).
    """

    def __init__(
        self, mean: Tensor, scale: Tensor | float, cond: Tensor | None, keep: Tensor | None = None
    ):
        self.mean, self.cond, self.keep = mean, cond, keep
        self.scale = torch.as_tensor(scale, dtype=mean.dtype, device=mean.device).expand_as(mean)

    def __len__(self) -> int:
        return len(self.mean)

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        """x0 = mean + scale * zeta, one row per observation."""
        zeta = torch.randn(self.mean.shape, generator=generator, dtype=self.mean.dtype)
        return self.mean + self.scale * zeta.to(self.mean.device)

    def log_prob(self, x0: Tensor) -> Tensor:
        """log rho_0(x0 | y) over the entries that are not kept, shape (n,)."""
        free = self.scale > 0
        fixed = ~free if self.keep is None else ~free & ~self.keep
        if bool(fixed.any()):
            raise ValueError(
                "log_prob needs a density of x0 given the observation: this coupling puts x0 "
                "at the observation (noise=0); train with noise > 0 for likelihoods"
            )
        safe = torch.where(free, self.scale, torch.ones_like(self.scale))
        per = -0.5 * ((x0 - self.mean) / safe) ** 2 - torch.log(safe) - 0.5 * LOG_2PI
        return torch.where(free, per, torch.zeros_like(per)).flatten(1).sum(1)

    def project(self, b: Tensor) -> Tensor:
        """The velocity with its kept entries set to zero."""
        return b if self.keep is None else b.masked_fill(self.keep, 0.0)

    def repeat(self, n: int) -> Source:
        """The source of one observation, repeated n times (an ensemble of one condition)."""

        def rep(v: Tensor | None) -> Tensor | None:
            return None if v is None else v.expand(n, *v.shape[1:])

        return Source(rep(self.mean), rep(self.scale), rep(self.cond), rep(self.keep))  # type: ignore[arg-type]


class _DrawnSource(Source):
    """rho_0(x0 | label) = a base distribution whatever the label (independent coupling)."""

    def __init__(self, base: Distribution, n: int, cond: Tensor | None):
        self.base, self.n, self.cond, self.keep = base, n, cond, None

    def __len__(self) -> int:
        return self.n

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        return self.base.sample(self.n, generator)

    def log_prob(self, x0: Tensor) -> Tensor:
        return self.base.log_prob(x0)

    def repeat(self, n: int) -> Source:
        cond = None if self.cond is None else self.cond.expand(n, *self.cond.shape[1:])
        return _DrawnSource(self.base, n, cond)


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

    def net_options(self, event_shape: tuple[int, ...]) -> dict[str, int]:
        """What a default network (:func:`~interpolants.nn.default_net`) needs to take this
        coupling's ``cond``: {} for none, ``cond_channels`` for images, ``cond_features``
        (and ``classes``) for vectors and labels."""
        return {}

    def spec(self) -> dict[str, Any] | None:
        """The coupling as plain data and tensors for a saved model (None: the independent
        coupling, saved as its base); :func:`coupling_from_spec` inverts it."""
        return None


class Independent(Coupling):
    r"""x0 drawn independently of x1: rho(x0, x1) = rho_0(x0) rho_1(x1) (the coupling of
    arXiv 2303.08797, and :func:`~interpolants.fit`'s default), conditioned on the data's
    labels when ``classes`` > 0.

    Arguments:
        base: rho_0: None for N(0, I) on the data's events and dtype (fixed by :meth:`bind`,
            or by the first batch), a Tensor / numpy array of x0 samples (drawn uniformly with
            replacement), a ``torch.distributions.Distribution``, or an object with
            ``sample(n, generator)``, ``log_prob(x)`` and ``event_shape``.
        classes: K > 0: the fields are conditioned on labels in [0, K) (cond = the label);
            :func:`~interpolants.fit` sets it for data that come with labels.
        label_dropout: the probability that a training row's label is replaced by the null
            label K, so that one network learns the unconditional field as well (classifier-
            free guidance, Ho & Salimans, arXiv 2207.12598).
    """

    def __init__(self, base: Any = None, *, classes: int = 0, label_dropout: float = 0.0):
        if isinstance(base, (Tensor, np.ndarray)):
            base = as_data(torch.as_tensor(base), "base")
        self.base = None if base is None else as_distribution(base)
        if classes:
            positive_int("classes", classes)
        self.classes = int(classes)
        if not isinstance(label_dropout, (int, float)) or not 0 <= label_dropout < 1:
            raise ValueError(f"label_dropout must be a number in [0, 1), got {label_dropout!r}")
        self.label_dropout = float(label_dropout)

    @property
    def null_label(self) -> int | None:
        """The label of the unconditional field (K), or None without label dropout."""
        return self.classes if self.classes and self.label_dropout > 0 else None

    def with_labels(self, classes: int, label_dropout: float) -> Independent:
        """This coupling conditioned on labels in [0, classes)."""
        return Independent(self.base, classes=classes, label_dropout=label_dropout)

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
        if self.classes and example.label is None:
            raise ValueError(f"classes={self.classes} needs data with labels: pass (x, labels)")
        return Independent(base, classes=self.classes, label_dropout=self.label_dropout)

    def sample(self, batch: DataBatch, generator: torch.Generator | None = None) -> CouplingSample:
        x1 = batch.x1
        x0 = self._base_for(x1).sample(len(x1), generator)
        if not self.classes:
            return CouplingSample(x0, x1)
        labels = self.check_labels(batch.label, "labels")
        if self.label_dropout > 0:
            drop = torch.rand(len(labels), generator=generator) < self.label_dropout
            labels = labels.masked_fill(drop.to(labels.device), self.classes)
        return CouplingSample(x0, x1, labels)

    def check_labels(self, labels: Tensor | None, name: str, null: bool = False) -> Tensor:
        """Integer labels in [0, classes) (with ``null``, the null label as well) of shape
        (n,), as int64; a ValueError naming ``name`` otherwise."""
        top = self.classes + (null and self.null_label is not None)
        if labels is None:
            raise ValueError(f"{name} are required: the model is conditioned on labels")
        labels = torch.as_tensor(labels)
        if labels.is_floating_point():
            whole = bool((labels == labels.round()).all())
            if not whole:
                raise ValueError(f"{name} must be integers in [0, {top})")
            labels = labels.long()
        if labels.ndim != 1 or labels.dtype == torch.bool or labels.is_complex():
            raise ValueError(
                f"{name} must be integer labels of shape (n,), got {tuple(labels.shape)} "
                f"{labels.dtype}"
            )
        if len(labels) and not 0 <= int(labels.min()) <= int(labels.max()) < top:
            raise ValueError(
                f"{name} must lie in [0, {top}), got [{int(labels.min())}, {int(labels.max())}]"
            )
        return labels.long()

    def given(self, labels: Tensor) -> Source:
        """x0 ~ rho_0 for each label (the base's draws), cond = the labels (the null label K
        for the unconditional field of a model trained with label dropout)."""
        labels = self.check_labels(labels, "cond", null=True)
        if self.base is None:
            raise ValueError("the base is not bound to the data's events yet")
        return _DrawnSource(self.base, len(labels), labels)

    def net_options(self, event_shape: tuple[int, ...]) -> dict[str, int]:
        if not self.classes:
            return {}
        return {"classes": self.classes + (self.null_label is not None),
                "cond_features": LABEL_FEATURES}  # fmt: skip

    def _base_for(self, x1: Tensor) -> Distribution:
        events = tuple(x1.shape[1:])
        base = StandardNormal(events, dtype=x1.dtype) if self.base is None else self.base
        if tuple(base.event_shape) != events:
            raise ValueError(
                f"base events {tuple(base.event_shape)} differ from data events {events}"
            )
        return base

    def __repr__(self) -> str:
        base = "N(0, I)" if self.base is None else type(self.base).__name__
        labels = f", classes={self.classes}" if self.classes else ""
        return f"Independent({base}{labels})"


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
