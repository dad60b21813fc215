r"""Fields bound to a conditioning: labels, classifier-free guidance, observations of a
coupling, and the entries an in-painting keeps (arXiv 2310.03725, 2207.12598).

A conditioned model's networks are ``f(t, x, cond=c)``; the samplers and the likelihood take
fields of (t, x). :func:`source_for` turns what the user passes (``n`` and ``cond``) into the
law of x0 given the conditioning (a :class:`~interpolants.couplings.Source`), and
:func:`bind_fields` closes the networks over its ``cond``:

- labels with guidance w: f_w(t, x) = (1 + w) f(t, x | c) - w f(t, x | null), the
  conditional and unconditional fields evaluated in one batch (w = 0: the conditional field);
- in-painting: on the visible entries, the exact field (:func:`kept_field`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .checks import positive_int
from .couplings import Coupling, Independent, Source
from .interpolant import Interpolant

__all__ = ["Field", "Fields", "bind_fields", "kept_field", "source_for"]

Field = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class Fields:
    """A model's fields as callables of (t, x) (score and denoiser optional)."""

    velocity: Field
    score: Field | None = None
    denoiser: Field | None = None


def source_for(
    coupling: Coupling | None,
    n: int | None,
    cond: Any,
    like: tuple[torch.dtype, torch.device] | None = None,
) -> tuple[int, Source | None]:
    """(number of samples, the law of x0 given ``cond``) for a model conditioned by
    ``coupling`` (None: unconditioned, and the source is None); observations are cast to
    ``like`` (the networks' dtype and device). ValueErrors name ``n`` and ``cond``.

    ``n`` may be omitted with ``cond`` (one sample per row), equal its rows, or be any number
    for one row (an ensemble). Labels omitted mean the null label (the unconditional field).
    """
    if n is not None:
        positive_int("n", n)
    if coupling is None:
        if cond is not None:
            raise ValueError(
                "cond given, but this model is not conditioned (it was trained without "
                "labels or a conditioning coupling)"
            )
        if n is None:
            raise ValueError("n is required (the number of samples)")
        return n, None
    if isinstance(coupling, Independent):
        if cond is None:
            if coupling.null_label is None:
                raise ValueError(
                    "this model is conditioned on labels and was trained without label "
                    "dropout: pass cond=labels"
                )
            if n is None:
                raise ValueError("n is required (the number of samples)")
            cond = torch.full((n,), coupling.null_label, dtype=torch.long)
        labels = torch.as_tensor(cond)
        source = coupling.given(labels if like is None else labels.to(like[1]))
    else:
        if cond is None:
            raise ValueError(
                f"this model is conditioned by {coupling!r}: pass cond= (one observation per row)"
            )
        if isinstance(cond, np.ndarray):
            cond = torch.from_numpy(cond)
        if isinstance(cond, Tensor) and cond.is_floating_point() and like is not None:
            cond = cond.to(dtype=like[0], device=like[1])
        source = coupling.given(cond)  # type: ignore[attr-defined]
    rows = len(source)
    if n is None or n == rows:
        return rows, source
    if rows == 1:
        return n, source.repeat(n)
    raise ValueError(
        f"n={n} does not match cond's {rows} rows: omit n for one sample per row, or pass "
        "one row of cond for n samples of it"
    )


def bind_fields(
    fields: Fields,
    source: Source | None,
    guidance: float,
    coupling: Coupling | None,
    interpolant: Interpolant,
) -> Fields:
    """The networks f(t, x, cond=c) of ``fields`` as fields of (t, x) for the conditioning of
    ``source``, mixed by classifier-free guidance w: (1 + w) f(t, x | c) - w f(t, x | null)."""
    guidance = float(guidance)
    null_label = coupling.null_label if isinstance(coupling, Independent) else None
    if guidance and null_label is None:
        raise ValueError(
            "guidance needs a model trained on labels with label_dropout > 0 (its "
            "unconditional field); this one has none"
        )
    if source is None or source.cond is None:
        return fields
    cond = source.cond

    def bind(fn: Callable[..., Tensor] | None, kind: str) -> Field | None:
        if fn is None:
            return None
        if guidance:
            null = torch.full_like(cond, null_label)  # type: ignore[arg-type]

            def guided(t: Tensor, x: Tensor) -> Tensor:
                both = fn(torch.cat([t, t]), torch.cat([x, x]), cond=torch.cat([cond, null]))
                conditional, unconditional = both.chunk(2)
                return conditional + guidance * (conditional - unconditional)

            return guided

        def conditioned(t: Tensor, x: Tensor) -> Tensor:
            return fn(t, x, cond=cond)

        if source.keep is None:
            return conditioned
        return kept_field(conditioned, source, kind, interpolant)

    velocity: Field = bind(fields.velocity, "velocity")  # type: ignore[assignment]
    return Fields(velocity, bind(fields.score, "score"), bind(fields.denoiser, "denoiser"))


def kept_field(fn: Field, source: Source, kind: str, interpolant: Interpolant) -> Field:
    r"""``fn`` with its exact values on the entries an in-painting keeps (``source.keep``,
    observed values y = ``source.mean`` there). On those entries x0 = x1 = y, so x_t =
    (alpha + beta) y + gamma z and

        b = (alpha' + beta') y + (gamma' / gamma) (x - (alpha + beta) y),
        s = -(x - (alpha + beta) y) / gamma^2,

    each without its gamma term where gamma = 0 (``kind``: "velocity" or "score"; a denoiser
    is returned unchanged)."""
    I, keep, y = interpolant, source.keep, source.mean
    if kind == "denoiser" or keep is None:
        return fn

    def kept(t: Tensor, x: Tensor) -> Tensor:
        out = fn(t, x)
        shape = (-1,) + (1,) * (x.ndim - 1)
        tt = t.to(x.dtype)
        gamma = I.gamma(tt).reshape(shape)
        rest = x - (I.alpha(tt) + I.beta(tt)).reshape(shape) * y
        safe = torch.where(gamma > 0, gamma, torch.ones_like(gamma))
        if kind == "velocity":
            rate = torch.where(gamma > 0, I.dgamma(tt).reshape(shape) / safe, 0.0)
            exact = (I.dalpha(tt) + I.dbeta(tt)).reshape(shape) * y + rate * rest
        else:
            exact = torch.where(gamma > 0, -rest / safe**2, torch.zeros_like(rest))
        return torch.where(keep, exact, out)

    return kept
