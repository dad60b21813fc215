r"""Single-site moves on a discrete target, a whole colour of sites at once.

The sites of one colour (``target.colours``: a lattice's checkerboard) are conditionally
independent given the others, so each may be updated from the single-site log ratios
R(x)[i, c] = log pi(x with x_i = v_c) - log pi(x) of one evaluation (the state's ``grad``
slot, :mod:`interpolants.targets.discrete`):

- heat bath (Gibbs): x_i ~ pi(x_i = v_c | rest) = softmax_c R(x)[i, c];
- Metropolis: x_i -> v_c, c uniform among the other q - 1 values, accepted with probability
  min{1, exp R(x)[i, c]} (Metropolis et al. 1953).

Both leave pi invariant; a sweep visits every colour once and costs one walker-evaluation
per colour. :class:`SiteMoves` makes them the moves of the annealing engine
(:func:`~interpolants.samplers.annealing.anneal`): discrete AIS and SMC, and LEAPS's
optional corrector steps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ...targets.discrete import value_index
from ..annealing import AnnealedDensity, Step
from ..base import State
from ..diagnostics import start_end_correlation

__all__ = ["KINDS", "SiteMoves", "heat_bath", "metropolis_sites", "sweep"]

KINDS = ("gibbs", "metropolis")


def heat_bath(x: Tensor, ratios: Tensor, mask: Tensor, values: Tensor, generator) -> Tensor:
    """x with the sites of ``mask`` drawn from their conditionals softmax(R[:, i, :])."""
    p = torch.softmax(ratios[:, mask].double(), -1)  # (n, sites, q)
    u = torch.rand(p.shape[:2], generator=generator, dtype=torch.float64)
    idx = (p.cumsum(-1) < u[..., None]).sum(-1).clamp_max(len(values) - 1)
    out = x.clone()
    out[:, mask] = values.to(x.dtype)[idx]
    return out


def metropolis_sites(
    x: Tensor, ratios: Tensor, mask: Tensor, values: Tensor, generator
) -> tuple[Tensor, Tensor]:
    """(x after one Metropolis update of every site of ``mask``, acceptance rate per walker)."""
    q = len(values)
    cur = value_index(x[:, mask], values)
    shift = torch.randint(1, q, cur.shape, generator=generator)
    new = (cur + shift) % q
    log_a = ratios[:, mask].gather(-1, new[..., None]).squeeze(-1).double()
    u = torch.rand(cur.shape, generator=generator, dtype=torch.float64)
    accept = u.log() < log_a
    out = x.clone()
    out[:, mask] = torch.where(accept, values.to(x.dtype)[new], x[:, mask])
    return out, log_a.clamp_max(0).exp().mean(1)


def sweep(
    evaluate: Callable[[Tensor], State],
    state: State,
    colours: Sequence[Tensor],
    values: Tensor,
    kind: str,
    generator: torch.Generator,
) -> tuple[State, float]:
    """One sweep over the colours: (new state, mean acceptance; 1 for the heat bath).
    ``evaluate`` maps positions to a :class:`State` whose ``grad`` holds the ratios."""
    acc = []
    for mask in colours:
        if kind == "gibbs":
            x, a = heat_bath(state.position, state.grad, mask, values, generator), 1.0
        else:
            x, rate = metropolis_sites(state.position, state.grad, mask, values, generator)
            a = float(rate.mean())
        state = evaluate(x)
        acc.append(a)
    return state, sum(acc) / len(acc)


@dataclass
class SiteMoves:
    """``sweeps`` sweeps of heat-bath or Metropolis updates per level, invariant for the
    level's pi_beta: the moves object of the annealing engine on a discrete path."""

    sweeps: int
    colours: Sequence[Tensor]
    values: Tensor
    kind: str = "gibbs"

    def start(self, density: AnnealedDensity, state: State, generator: torch.Generator) -> None:
        return None

    def __call__(
        self, density: AnnealedDensity, state: State, log_w: Tensor, t0: float, t1: float,
        beta: float, k: int, generator: torch.Generator,
    ) -> Step:  # fmt: skip
        if self.sweeps == 0:
            return Step(state, None, [], [])
        start, acc = state.position, []
        for _ in range(self.sweeps):
            state, a = sweep(lambda x: density.state(x, beta), state, self.colours, self.values,
                             self.kind, generator)  # fmt: skip
            acc.append(a)
        moved = float((state.position != start).any(1).double().mean())
        return Step(state, None, [], acc, start_end_correlation(start, state.position), moved)
