"""Couplings through an observation y = m(x1) of the data (arXiv 2310.03725): in-painting,
super-resolution, a user's corruption, blur, and paired data; x0 and the conditioning are
built from y alone (:meth:`Conditioned.given`)."""

from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..checks import fraction, positive_int
from ..data import DataBatch, as_data
from .base import Coupling, CouplingSample, Source

__all__ = [
    "COUPLINGS",
    "MASKS",
    "STARTS",
    "Blur",
    "CentreMask",
    "Conditioned",
    "Corruption",
    "Increment",
    "Inpainting",
    "MaskSampler",
    "Paired",
    "RandomMask",
    "SuperResolution",
    "centre_mask",
    "coupling_from_spec",
    "gaussian_blur",
    "random_mask",
]


STARTS = ("coupled", "noise")


class Conditioned(Coupling):
    r"""A coupling through an observation y = m(x1): x0 = mean(y) + scale(y) zeta and cond =
    c(y) (:meth:`given`), or x0 = zeta with ``start="noise"`` (the independent-base baseline
    of arXiv 2310.03725, conditioned alike). Subclasses define :meth:`observe` and
    :meth:`_law`.

    Arguments:
        noise: sigma, the scale of the Gaussian noise added to the observation in x0.
        start: "coupled" (x0 built from y) or "noise" (x0 ~ N(0, I)).
    """

    kind: str = ""

    def __init__(self, noise: float, start: str = "coupled"):
        noise = float(noise)
        if not noise >= 0 or not math.isfinite(noise):
            raise ValueError(f"noise must be a non-negative number, got {noise!r}")
        if start not in STARTS:
            raise ValueError(f"start must be one of {STARTS}, got {start!r}")
        self.noise, self.start = noise, start

    @abc.abstractmethod
    def observe(self, x1: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The observations y = m(x1) of data rows x1 (what ``model.sample(cond=...)`` takes)."""

    @abc.abstractmethod
    def _law(self, y: Tensor) -> Source:
        """The coupled source of observations y (checked)."""

    def _observe_batch(self, batch: DataBatch, generator: torch.Generator | None) -> Tensor:
        return self.observe(batch.x1, generator)

    def given(self, y: Tensor) -> Source:
        """rho_0(x0 | y) and the conditioning, for observations y (one row each)."""
        if not isinstance(y, Tensor):
            raise TypeError(f"cond must be a tensor of observations, got {type(y).__name__}")
        if not y.is_floating_point():
            raise TypeError(f"cond must hold floating-point observations, got {y.dtype}")
        if y.ndim < 2 or len(y) == 0:
            raise ValueError(f"cond must have shape (n, ...) with n >= 1, got {tuple(y.shape)}")
        law = self._law(y)
        if self.start == "noise":
            return Source(torch.zeros_like(law.mean), 1.0, law.cond)
        return law

    def sample(self, batch: DataBatch, generator: torch.Generator | None = None) -> CouplingSample:
        y = self._observe_batch(batch, generator)
        source = self.given(y)
        return CouplingSample(source.sample(generator), self._end(y, batch.x1), source.cond)

    def _end(self, y: Tensor, x1: Tensor) -> Tensor:
        """The end point x1 trained towards for data rows x1 observed as y (x1 itself;
        :class:`Increment` makes it the scaled increment)."""
        return x1

    def bind(self, example: DataBatch) -> Conditioned:
        self.sample(example, torch.Generator().manual_seed(0))  # shapes checked on two rows
        return self

    def net_options(self, event_shape: tuple[int, ...]) -> dict[str, int]:
        shape = self._cond_shape(tuple(event_shape))
        if len(event_shape) == 3:
            return {"cond_channels": shape[0]}
        return {"cond_features": math.prod(shape)}

    def _cond_shape(self, event_shape: tuple[int, ...]) -> tuple[int, ...]:
        return event_shape

    def spec(self) -> dict[str, Any]:
        return {"kind": self.kind, "noise": self.noise, "start": self.start}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(noise={self.noise}, start={self.start!r})"


MaskSampler = Callable[[int, torch.Size, torch.Generator | None], Tensor]


@dataclass(frozen=True)
class RandomMask:
    """A mask sampler: every entry visible with probability ``keep``, independently (the
    channels of a pixel together for images). Called as ``(n, event_shape, generator) -> (n,
    *event)`` booleans, True = visible."""

    keep: float = 0.5

    def __post_init__(self) -> None:
        fraction("keep", self.keep)

    def __call__(self, n: int, event: torch.Size, generator: torch.Generator | None) -> Tensor:
        shape = (n, 1, *event[1:]) if len(event) == 3 else (n, *event)
        return (torch.rand(shape, generator=generator) < self.keep).expand(n, *event)


@dataclass(frozen=True)
class CentreMask:
    """A mask sampler: a centred square (images) or segment (vectors) hidden, of ``size``
    entries a side (an int) or that fraction of each side (a float); the rest visible."""

    size: int | float = 0.5

    def __post_init__(self) -> None:
        if isinstance(self.size, bool) or not isinstance(self.size, (int, float)):
            raise ValueError(f"size must be a number of entries or a fraction, got {self.size!r}")

    def __call__(self, n: int, event: torch.Size, generator: torch.Generator | None) -> Tensor:
        sides = event[1:] if len(event) == 3 else event
        mask = torch.ones(event, dtype=torch.bool)
        box = []
        for side in sides:
            k = self.size if isinstance(self.size, int) else round(float(self.size) * side)
            if not 0 < k <= side:
                raise ValueError(
                    f"size must give between 1 and {side} hidden entries, got {self.size}"
                )
            lo = (side - k) // 2
            box.append(slice(lo, lo + k))
        mask[(..., *box)] = False
        return mask.expand(n, *event)


MASKS = {"random": RandomMask, "centre": CentreMask}
"""The named mask samplers, as a saved in-painting model records them."""


def random_mask(keep: float = 0.5) -> RandomMask:
    """Every entry visible with probability ``keep`` (:class:`RandomMask`)."""
    return RandomMask(keep)


def centre_mask(size: int | float = 0.5) -> CentreMask:
    """A centred square hidden, ``size`` entries a side or a fraction (:class:`CentreMask`)."""
    return CentreMask(size)


class Inpainting(Conditioned):
    r"""In-painting (arXiv 2310.03725, section 4): x0 = xi * x1 + (1 - xi) * sigma * zeta, xi
    the mask of visible entries, and cond = (xi, xi * x1) stacked along the channels (2C for
    images) or the features (2d for vectors). The visible entries of a sample stay exactly at
    their observed values (the velocity is zero there).

    Observations y are x1 with NaN at the hidden entries (:meth:`observe` makes them; a user's
    images with missing pixels marked NaN are observations already). With a fixed mask, a
    complete image is an observation too: the mask hides its entries.

    Arguments:
        mask: a boolean tensor of the event's shape (True = visible), fixed for every row; or
            a mask sampler ``(n, event_shape, generator) -> (n, *event)`` (:func:`random_mask`,
            :func:`centre_mask`) drawn afresh for each training row. Default: random_mask(0.5).
        noise: sigma, the scale of x0 at the hidden entries (1: the paper's zeta ~ N(0, I)).
        start: "coupled", or "noise" for the independent-base baseline.
    """

    kind = "inpainting"

    def __init__(
        self, mask: Tensor | MaskSampler | None = None, noise: float = 1.0, start: str = "coupled"
    ):
        super().__init__(noise, start)
        if isinstance(mask, (Tensor, np.ndarray)):
            mask = torch.as_tensor(mask)
            if mask.dtype != torch.bool:
                if not bool(((mask == 0) | (mask == 1)).all()):
                    raise ValueError("mask must be boolean (True = visible) or hold 0 and 1")
                mask = mask.bool()
            self.mask: Tensor | None = mask
            self.sampler: MaskSampler | None = None
        elif mask is None or callable(mask):
            self.mask, self.sampler = None, mask or random_mask(0.5)
        else:
            raise TypeError(
                f"mask must be a boolean tensor or a mask sampler, got {type(mask).__name__}"
            )

    def observe(self, x1: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """x1 with its hidden entries NaN: the fixed mask, or masks drawn from the sampler."""
        if self.mask is not None:
            visible = self._fixed(x1)
        else:
            visible = self.sampler(len(x1), x1.shape[1:], generator)  # type: ignore[misc]
            if tuple(visible.shape) != tuple(x1.shape):
                raise ValueError(
                    f"the mask sampler returned shape {tuple(visible.shape)}, expected "
                    f"{tuple(x1.shape)}"
                )
        return torch.where(visible.to(x1.device), x1, torch.full_like(x1, math.nan))

    def _fixed(self, y: Tensor) -> Tensor:
        mask = self.mask.to(y.device)  # type: ignore[union-attr]
        if tuple(mask.shape) != tuple(y.shape[1:]):
            raise ValueError(
                f"mask has shape {tuple(mask.shape)}; the data's events are {tuple(y.shape[1:])}"
            )
        return mask.expand_as(y)

    def _law(self, y: Tensor) -> Source:
        visible = ~torch.isnan(y)
        if self.mask is not None:
            visible = visible & self._fixed(y)
        elif bool(visible.all()):
            raise ValueError(
                "cond shows every entry: mark the hidden entries of each observation with NaN "
                "(coupling.observe(x, generator) does) or train with a fixed mask="
            )
        filled = torch.where(visible, y, torch.zeros_like(y))
        cond = torch.cat([visible.to(y.dtype), filled], dim=1)
        return Source(filled, self.noise * (~visible).to(y.dtype), cond, keep=visible)

    def _cond_shape(self, event_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (2 * event_shape[0], *event_shape[1:])

    def spec(self) -> dict[str, Any]:
        """The fixed mask, or a named sampler's settings (``{"sampler": "random", "keep":
        0.5}``); a user's own sampler is not saved (a loaded model takes observations)."""
        sampler = None
        for name, cls in MASKS.items():
            if isinstance(self.sampler, cls):
                sampler = {"sampler": name, **dataclasses.asdict(self.sampler)}
        return {**super().spec(), "mask": self.mask, "sampler": sampler}


class SuperResolution(Conditioned):
    r"""Super-resolution (arXiv 2310.03725, section 4): y = D(x1), the means of factor x factor
    blocks of an image (n, C, H, W); x0 = U(y) + sigma * zeta with U the nearest-neighbour
    up-sampling back to H x W; cond = U(y) (C channels).

    Arguments:
        factor: the down-sampling factor (H and W must divide by it).
        noise: sigma.
        start: "coupled", or "noise" for the independent-base baseline.
    """

    kind = "super_resolution"

    def __init__(self, factor: int = 2, noise: float = 0.5, start: str = "coupled"):
        super().__init__(noise, start)
        self.factor = positive_int("factor", factor)

    def observe(self, x1: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The low-resolution images D(x1), (n, C, H / factor, W / factor)."""
        if x1.ndim != 4 or x1.shape[-1] % self.factor or x1.shape[-2] % self.factor:
            raise ValueError(
                f"super-resolution needs images (n, C, H, W) with H, W divisible by factor "
                f"{self.factor}, got {tuple(x1.shape)}"
            )
        return torch.nn.functional.avg_pool2d(x1, self.factor)

    def _law(self, y: Tensor) -> Source:
        if y.ndim != 4:
            raise ValueError(
                f"cond must be low-resolution images (n, C, h, w), got {tuple(y.shape)}"
            )
        up = torch.nn.functional.interpolate(y, scale_factor=self.factor, mode="nearest")
        return Source(up, self.noise, up)

    def spec(self) -> dict[str, Any]:
        return {**super().spec(), "factor": self.factor}

    def __repr__(self) -> str:
        return f"SuperResolution(factor={self.factor}, noise={self.noise}, start={self.start!r})"


class Corruption(Conditioned):
    r"""A user's degradation (arXiv 2310.03725): y = fn(x1), of x1's shape; x0 = y + sigma *
    zeta; cond = y.

    Arguments:
        fn: the corruption, a function of a batch (n, *event) returning a batch of the same
            shape. A saved model does not keep it (sampling needs only y); ``observe`` of a
            loaded model then asks for it.
        noise: sigma.
        start: "coupled", or "noise" for the independent-base baseline.
    """

    kind = "corruption"

    def __init__(
        self, fn: Callable[[Tensor], Tensor] | None, noise: float = 0.5, start: str = "coupled"
    ):
        super().__init__(noise, start)
        if fn is not None and not callable(fn):
            raise TypeError(f"fn must be a function of a batch, got {type(fn).__name__}")
        self.fn = fn

    def observe(self, x1: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """fn(x1)."""
        if self.fn is None:
            raise ValueError("this coupling was loaded without its function: pass observations")
        y = self.fn(x1)
        if not isinstance(y, Tensor) or y.shape != x1.shape:
            got = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
            raise ValueError(f"fn must return a batch of x1's shape {tuple(x1.shape)}, got {got}")
        return y

    def _law(self, y: Tensor) -> Source:
        return Source(y, self.noise, y)

    def outcome(self, y: Tensor, x: Tensor) -> Tensor:
        """The data row that an end point x sampled from observation y stands for: x itself
        (:class:`Increment` adds the increment to y)."""
        return x


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """x blurred by a Gaussian of standard deviation ``sigma`` pixels along its last two axes
    (images) or its last axis (vectors), reflecting at the borders."""
    radius = max(1, math.ceil(3 * sigma))
    grid = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-0.5 * (grid / sigma) ** 2)
    kernel = kernel / kernel.sum()
    axes = (-1, -2) if x.ndim == 4 else (-1,)
    for axis in axes:
        moved = x.movedim(axis, -1)
        flat = moved.reshape(-1, 1, moved.shape[-1])
        pad = min(radius, moved.shape[-1] - 1)
        padded = torch.nn.functional.pad(flat, (pad, pad), mode="reflect") if pad else flat
        if pad < radius:
            padded = torch.nn.functional.pad(padded, (radius - pad,) * 2, mode="replicate")
        out = torch.nn.functional.conv1d(padded, kernel.view(1, 1, -1))
        x = out.reshape(moved.shape).movedim(-1, axis)
    return x


class Blur(Corruption):
    """De-blurring: y = a Gaussian blur of x1 of ``sigma`` pixels (:func:`gaussian_blur`), x0 =
    y + noise * zeta, cond = y."""

    kind = "blur"

    def __init__(self, sigma: float = 1.0, noise: float = 0.5, start: str = "coupled"):
        sigma = float(sigma)
        if not sigma > 0:
            raise ValueError(f"sigma must be positive, got {sigma!r}")
        self.sigma = sigma
        super().__init__(lambda x: gaussian_blur(x, sigma), noise, start)

    def spec(self) -> dict[str, Any]:
        return {**super().spec(), "sigma": self.sigma}

    def __repr__(self) -> str:
        return f"Blur(sigma={self.sigma}, noise={self.noise}, start={self.start!r})"


class Paired(Conditioned):
    r"""Data that come as pairs: the x0 row given with each x1 (x0_data[i] with data[i]),
    x0 = x0_data[i] + sigma * zeta (sigma = 0: the point mass, as forecasting starts from the
    current state, arXiv 2403.13724), cond = x0_data[i].

    Arguments:
        x0_data: a tensor (n, *event) with one row per row of the data (None for a loaded
            model, which samples from given rows).
        noise: sigma.
        start: "coupled", or "noise" for the independent-base baseline.
    """

    kind = "paired"

    def __init__(self, x0_data: Tensor | np.ndarray | None, noise: float = 0.0,
                 start: str = "coupled"):  # fmt: skip
        super().__init__(noise, start)
        self.x0_data = None if x0_data is None else as_data(torch.as_tensor(x0_data), "x0_data")

    def rows(self, index: Tensor) -> Paired:
        """This coupling with the x0 rows ``index`` only (the data's rows kept for training)."""
        return Paired(self.x0_data[index], self.noise, self.start)  # type: ignore[index]

    def observe(self, x1: Tensor, generator: torch.Generator | None = None) -> Tensor:
        raise TypeError("Paired has no observation of x1: its observations are the x0 rows given")

    def _observe_batch(self, batch: DataBatch, generator: torch.Generator | None) -> Tensor:
        if self.x0_data is None:
            raise ValueError("Paired(x0_data=None) cannot train: pass the x0 rows")
        if batch.index is None:
            raise ValueError(
                "Paired needs data with rows (a tensor or a Dataset), one per row of x0_data"
            )
        if int(batch.index.max()) >= len(self.x0_data):
            raise ValueError(
                f"x0_data has {len(self.x0_data)} rows, fewer than the data: pass one per row"
            )
        return self.x0_data[batch.index.cpu()].to(batch.x1.device, batch.x1.dtype)

    def bind(self, example: DataBatch) -> Paired:
        y = self._observe_batch(example, None)
        if y.shape != example.x1.shape:
            raise ValueError(
                f"x0_data rows have shape {tuple(y.shape[1:])}; the data's are "
                f"{tuple(example.x1.shape[1:])}"
            )
        return self

    def _law(self, y: Tensor) -> Source:
        return Source(y, self.noise, y)

    def outcome(self, y: Tensor, x: Tensor) -> Tensor:
        """The data row that an end point x sampled from observation y stands for: x itself
        (:class:`Increment` adds the increment to y)."""
        return x


class Increment(Paired):
    r"""Pairs in the increment form (arXiv 2403.13724; the increment code base of its authors):
    the point mass x0 = 0, x1 = (x_next - x_now) / scale, cond = x_now. A model of this
    coupling samples increments; :meth:`outcome` maps them back to x_now + scale * x1
    (:class:`~interpolants.forecasting.ForecastModel` returns that state).

    The increment x1 - x0 of the state form is the same transport when alpha + beta = 1
    (x_t shifted by x_now); what changes is the regression: the network's output is the
    increment in its own units (``scale``, e.g. the increments' standard deviation per entry),
    which matters when a lag moves the state little against its range.

    Arguments:
        x0_data: the current states x_now (n, *event), one per row of the data x_next.
        scale: a number or a tensor of the event's shape (per entry): the increments' unit.
        noise: sigma (0: the point mass).
    """

    kind = "increment"

    def __init__(self, x0_data: Tensor | np.ndarray | None, scale: float | Tensor = 1.0,
                 noise: float = 0.0):  # fmt: skip
        super().__init__(x0_data, noise, "coupled")
        scale = torch.as_tensor(scale, dtype=torch.float64)
        if not bool((scale > 0).all()) or not bool(torch.isfinite(scale).all()):
            raise ValueError(f"scale must be positive and finite, got {scale!r}")
        self.scale = scale

    def rows(self, index: Tensor) -> Increment:
        return Increment(self.x0_data[index], self.scale, self.noise)  # type: ignore[index]

    def _law(self, y: Tensor) -> Source:
        return Source(torch.zeros_like(y), self.noise, y)

    def _unit(self, like: Tensor) -> Tensor:
        return self.scale.to(like.device, like.dtype)

    def _end(self, y: Tensor, x1: Tensor) -> Tensor:
        return (x1 - y) / self._unit(y)

    def bind(self, example: DataBatch) -> Increment:
        super().bind(example)
        if self.scale.ndim and tuple(self.scale.shape) != tuple(example.x1.shape[1:]):
            raise ValueError(
                f"scale has shape {tuple(self.scale.shape)}; a number or the event's shape "
                f"{tuple(example.x1.shape[1:])} is needed"
            )
        return self

    def outcome(self, y: Tensor, x: Tensor) -> Tensor:
        """The state x_now + scale * x that an increment x sampled from observation y gives."""
        return y + self._unit(y) * x

    def spec(self) -> dict[str, Any]:
        scale = self.scale.item() if self.scale.ndim == 0 else self.scale.tolist()
        return {"kind": self.kind, "noise": self.noise, "scale": scale}

    def __repr__(self) -> str:
        return f"Increment(noise={self.noise}, scale shape {tuple(self.scale.shape)})"


COUPLINGS: dict[str, type[Conditioned]] = {
    c.kind: c for c in (Inpainting, SuperResolution, Corruption, Blur, Paired, Increment)
}
"""The conditioning couplings by the ``kind`` their spec names (YAML ``coupling: {kind: ...}``)."""


def coupling_from_spec(spec: dict[str, Any]) -> Conditioned:
    """The coupling a saved model's spec (:meth:`Coupling.spec`) describes, without what
    sampling does not need (a corruption's function, paired rows, a mask sampler)."""
    kind = spec["kind"]
    options = {k: v for k, v in spec.items() if k != "kind"}
    if kind == "inpainting":
        mask, sampler = options.pop("mask"), options.pop("sampler", None)
        if mask is None and sampler is not None:
            mask = MASKS[sampler["sampler"]](**{k: v for k, v in sampler.items() if k != "sampler"})
        return Inpainting(mask if mask is not None else random_mask(0.5), **options)
    if kind in ("corruption", "paired", "increment"):
        return COUPLINGS[kind](None, **options)  # type: ignore[call-arg]
    return COUPLINGS[kind](**options)
