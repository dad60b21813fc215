r"""Divergences, Jacobians and step log-determinants of a field b(t, x): one module for the
likelihoods of generative models, NETS's weights and flow proposals.

- :func:`divergence`: b and div b = tr(grad b) at (t, x), exact (one vector-Jacobian product
  per dimension, batched) or by Hutchinson's estimator v^T (grad b) v with E[v v^T] = I
  (Hutchinson 1989; FFJORD, arXiv:1810.01367).
- :func:`jacobian`: b and its full Jacobian (n, d, d) by batched VJPs: d of them, or one per
  colour when the field declares a sparse Jacobian (``field.jacobian_sparsity()`` returns
  colours and pattern; Curtis, Powell & Reid 1974): the VJP with the indicator of colour c
  holds at (i, j) the entry of the one row i of colour c that may be non-zero in column j.
- :func:`hutchinson`: b and the mean of v^T (grad b) v over k probes at once.
- :func:`heun_step`: the Heun map T x = x + h/2 (b_0(x) + b_1(x + h b_0(x))) and
  log |det grad T(x)|, exact (:func:`heun_jacobian`, slogdet) or by the trapezoid of two
  Hutchinson divergences; -inf where det grad T <= 0 (T not invertible there). This is the
  transport step of NETS (arXiv:2410.02711).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "DIVERGENCES",
    "JACOBIAN_ENTRIES",
    "PROBES",
    "divergence",
    "field_and_divergence",
    "heun_jacobian",
    "heun_step",
    "hutchinson",
    "hutchinson_probe",
    "jacobian",
    "log_prob_and_grad",
    "rademacher",
]

DIVERGENCES = ("exact", "hutchinson")
PROBES = ("rademacher", "gaussian")
JACOBIAN_ENTRIES = 2**24
"""Per chunk of walkers in :func:`heun_step`'s exact log-determinant (128 MiB in float64)."""


def _exact_div(out: Tensor, x: Tensor, create_graph: bool, chunk: int) -> Tensor:
    """sum_i d out_i / d x_i by batched vector-Jacobian products with basis vectors."""
    n, d = x.shape[0], x[0].numel()
    div = torch.zeros(n, dtype=x.dtype, device=x.device)
    for start in range(0, d, chunk):
        idx = torch.arange(start, min(start + chunk, d), device=x.device)
        rows_e = torch.zeros(len(idx), d, dtype=x.dtype, device=x.device)
        rows_e[torch.arange(len(idx), device=x.device), idx] = 1
        basis = rows_e[:, None, :].expand(len(idx), n, d).reshape(len(idx), *x.shape)
        (rows,) = torch.autograd.grad(
            out, x, basis, retain_graph=True, create_graph=create_graph, is_grads_batched=True
        )
        div = div + rows.flatten(2).gather(2, idx[:, None, None].expand(-1, n, 1)).sum((0, 2))
    return div


def divergence(
    field: Any,
    t: Tensor,
    x: Tensor,
    method: str = "exact",
    noise: Tensor | None = None,
    create_graph: bool = False,
    chunk: int = 128,
) -> tuple[Tensor, Tensor]:
    r"""The field and its divergence div b = tr(db/dx) at (t, x): ((batch, *event), (batch,)).

    Arguments:
        method: "exact" (d vector-Jacobian products, batched in ``chunk`` dimensions at a
            time) or "hutchinson" (v^T (db/dx) v for the probe ``noise`` v, unbiased when
            E[v v^T] = I; FFJORD, arXiv 1810.01367).
        noise: the Hutchinson probe, shaped like x.
        create_graph: keep the graph, to differentiate the divergence (maximum likelihood).
    """
    if method not in DIVERGENCES:
        raise ValueError(f"divergence must be one of {DIVERGENCES}, got {method!r}")
    with torch.inference_mode(False), torch.enable_grad():
        if not (create_graph and x.requires_grad):
            x = x.detach().clone().requires_grad_(True)
            t = t.clone()
        out = field(t, x)
        if not out.requires_grad:  # the field does not depend on x
            div = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        elif method == "exact":
            div = _exact_div(out, x, create_graph, chunk)
        else:
            if noise is None or noise.shape != x.shape:
                raise ValueError("hutchinson divergence needs a noise probe shaped like x")
            (vjp,) = torch.autograd.grad(out, x, noise, create_graph=create_graph)
            div = (vjp * noise).flatten(1).sum(1)
    if not create_graph:
        out, div = out.detach(), div.detach()
    return out, div


def hutchinson_probe(
    x: Tensor, kind: str = "rademacher", generator: torch.Generator | None = None
) -> Tensor:
    """A probe v shaped like x with E[v v^T] = I: random signs or standard normal entries."""
    if kind not in PROBES:
        raise ValueError(f"probe must be one of {PROBES}, got {kind!r}")
    if kind == "gaussian":
        return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    signs = torch.randint(0, 2, x.shape, generator=generator, device=x.device)
    return (2 * signs - 1).to(x.dtype)


def rademacher(generator: torch.Generator, k: int, x: Tensor) -> Tensor:
    """k probes of random signs shaped like x, (k, *x.shape), drawn on the generator's device."""
    signs = torch.randint(0, 2, (k, *x.shape), generator=generator)
    return (2 * signs - 1).to(x)


def jacobian(field: Any, t: Tensor, x: Tensor, create_graph: bool = False) -> tuple[Tensor, Tensor]:
    """b_t(x) (n, d) and its Jacobian J[n, i, j] = d b_i / d x_j by batched VJPs: d of them,
    or one per colour when ``field.jacobian_sparsity()`` returns (colours (d,), pattern
    (d, d)), e.g. block diagonal or local on a lattice (module docstring)."""
    n, d = x.shape
    sparsity_of = getattr(field, "jacobian_sparsity", None)
    sparsity = None if sparsity_of is None else sparsity_of()
    colours = torch.arange(d) if sparsity is None else sparsity[0]
    k = int(colours.max()) + 1  # on the CPU: no device sync
    colours = colours.to(x.device)
    with torch.enable_grad():
        xg = x if (create_graph and x.requires_grad) else x.detach().requires_grad_(True)
        out = field(t, xg)
        probe = (colours[None] == torch.arange(k, device=x.device)[:, None]).to(x.dtype)
        grads = probe[:, None, :].expand(k, n, d)
        (rows,) = torch.autograd.grad(
            out, xg, grads, is_grads_batched=True, create_graph=create_graph
        )
    if sparsity is not None:  # row i of J: the VJP of i's colour, on i's pattern
        mask = sparsity[1].to(device=x.device, dtype=x.dtype)[:, None, :]
        rows = rows[colours] * mask if create_graph else rows[colours].mul_(mask)
    jac = rows.permute(1, 0, 2)
    return (out, jac) if create_graph else (out.detach(), jac.detach())


def hutchinson(
    field: Any, t: Tensor, x: Tensor, probe: Tensor, create_graph: bool = False
) -> tuple[Tensor, Tensor]:
    """b_t(x) and v^T (grad b) v for probes v (k, n, d) averaged over k: ((n, d), (n,))."""
    with torch.enable_grad():
        xg = x if (create_graph and x.requires_grad) else x.detach().requires_grad_(True)
        out = field(t, xg)
        (vjp,) = torch.autograd.grad(
            out, xg, probe, is_grads_batched=True, create_graph=create_graph
        )
    div = (vjp * probe).sum(-1).mean(0)
    return (out, div) if create_graph else (out.detach(), div.detach())


def field_and_divergence(
    field: Any,
    t: Tensor,
    x: Tensor,
    exact: bool,
    probes: int,
    generator: torch.Generator,
    create_graph: bool = False,
) -> tuple[Tensor, Tensor]:
    """b and div b of vectors x (n, d): the trace of :func:`jacobian` (coloured where the
    field allows) or the mean over ``probes`` Rademacher probes of :func:`hutchinson`."""
    if exact:
        out, jac = jacobian(field, t, x, create_graph)
        return out, jac.diagonal(dim1=1, dim2=2).sum(1)
    return hutchinson(field, t, x, rademacher(generator, probes, x), create_graph)


def heun_jacobian(j1: Tensor, j2: Tensor, h: float) -> Tensor:
    r"""grad T for the Heun map T x = x + h/2 (b_0(x) + b_1(x + h b_0(x))):
    I + h/2 (J_1 + J_2 (I + h J_1)), J_1 = grad b_0(x), J_2 = grad b_1(x~); (n, d, d)."""
    eye = torch.eye(j1.shape[-1], dtype=j1.dtype, device=j1.device)
    return eye + 0.5 * h * (j1 + j2 @ (eye + h * j1))


def heun_step(
    field: Any,
    t0: float,
    t1: float,
    x: Tensor,
    exact: bool,
    probes: int,
    generator: torch.Generator,
) -> tuple[Tensor, Tensor]:
    """The Heun map T x from t0 to t1 and log |det grad T| (float64): exact, or the trapezoid
    h/2 (div b_0(x) + div b_1(x~)) of Hutchinson divergences; -inf where det grad T <= 0.
    The exact Jacobians are formed for at most :data:`JACOBIAN_ENTRIES` entries at a time."""
    chunk = max(1, JACOBIAN_ENTRIES // x.shape[1] ** 2)
    if exact and x.shape[0] > chunk:
        parts = [heun_step(field, t0, t1, c, exact, probes, generator) for c in x.split(chunk)]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    h = t1 - t0
    tt0 = torch.tensor(t0, dtype=x.dtype, device=x.device)
    tt1 = torch.tensor(t1, dtype=x.dtype, device=x.device)
    if exact:
        k1, j1 = jacobian(field, tt0, x)
        k2, j2 = jacobian(field, tt1, x + h * k1)
        sign, logdet = torch.linalg.slogdet(heun_jacobian(j1.double(), j2.double(), h))
        logdet = torch.where(sign > 0, logdet, torch.full_like(logdet, -math.inf))
    else:
        k1, d1 = hutchinson(field, tt0, x, rademacher(generator, probes, x))
        k2, d2 = hutchinson(field, tt1, x + h * k1, rademacher(generator, probes, x))
        logdet = 0.5 * h * (d1 + d2).double()
    return x + 0.5 * h * (k1 + k2), logdet


def log_prob_and_grad(log_prob: Any, x: Tensor, name: str = "target") -> tuple[Tensor, Tensor]:
    """``log_prob(x)`` (n,) and its gradient in x (n, dim) by autograd; a ``ValueError``
    naming ``name`` when the log density is not a differentiable torch function of x (a
    constant, a detached tensor, numpy)."""
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        lp = log_prob(xg)
        if not isinstance(lp, Tensor) or lp.shape != x.shape[:1]:
            return lp, None  # the caller's shape check names it
        if not lp.requires_grad:
            raise ValueError(
                f"{name}: log_prob is not differentiable in x (its output has no gradient: "
                "detached, a constant or computed outside torch); write it with torch "
                "operations on x, or pass grad_log_prob="
            )
        (g,) = torch.autograd.grad(lp.sum(), xg)
    return lp, g
