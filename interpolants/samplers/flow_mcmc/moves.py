"""The moves of flow-MCMC: the independent Metropolis-Hastings move through a transport
(arXiv:2105.12603) and the mode diagnostics of the chains it makes."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from ..base import CountedDensity, Info, State, metropolis
from ..diagnostics import mcse_mean
from .transport import Transport

__all__ = ["global_move", "independent_mh_log_ratio", "mode_switches", "mode_weights",
           "walker_rows"]  # fmt: skip


def independent_mh_log_ratio(
    log_rho_new: Tensor, log_q_new: Tensor, log_rho_old: Tensor, log_q_old: Tensor
) -> Tensor:
    r"""log alpha = log rho*(x') + log q(x) - log rho*(x) - log q(x'): the independent
    Metropolis-Hastings test of a proposal x' ~ q from x (arXiv:2105.12603, the global move).

    rho* may be unnormalised (Z cancels); so may q only if the same constant is in both terms.
    """
    return (log_rho_new - log_q_new) - (log_rho_old - log_q_old)


def mode_switches(labels: Tensor) -> Tensor:
    """Changes of mode label along each chain: labels (draws, chains) -> (chains,) counts."""
    if labels.ndim != 2:
        raise ValueError(f"labels must have shape (draws, chains), got {tuple(labels.shape)}")
    return (labels[1:] != labels[:-1]).sum(0)


def mode_weights(labels: Tensor, modes: int) -> tuple[Tensor, Tensor]:
    """Weights of the modes 0..modes-1 and their Monte Carlo standard errors (from the
    multi-chain autocorrelation, :func:`~.diagnostics.mcse_mean`): labels (draws, chains)."""
    if labels.ndim != 2:
        raise ValueError(f"labels must have shape (draws, chains), got {tuple(labels.shape)}")
    onehot = torch.nn.functional.one_hot(labels.long(), modes).double()
    return mcse_mean(onehot)


def global_move(
    generator: torch.Generator,
    state: State,
    log_q: Tensor,
    transport: Transport,
    density: CountedDensity,
    allow: Any = None,
) -> tuple[State, Tensor, Info]:
    """One independent MH move of every walker through ``transport``; returns the new state,
    log q at the new positions and the move's :class:`~.hmc.Info`. ``allow``, if given, maps
    the proposals (n, dim) to a mask (n,): a walker may only move where it is True (the MH
    move for rho* restricted to that set)."""
    x_new, log_q_new = transport.sample_with_log_prob(state.position.shape[0], generator)
    x_new, log_q_new = x_new.to(state.position), log_q_new.to(state.position)
    ev = density(x_new)
    log_alpha = independent_mh_log_ratio(ev.log_prob, log_q_new, state.log_prob, log_q)
    log_alpha = torch.where(torch.isfinite(log_q_new), log_alpha, -math.inf)
    if allow is not None:
        log_alpha = torch.where(allow(x_new), log_alpha, -math.inf)
    proposal = State(x_new, ev.log_prob, ev.grad, tuple(ev.aux))
    new, info = metropolis(generator, log_alpha, proposal, state, 1)
    return new, torch.where(info.is_accepted, log_q_new, log_q), info


def walker_rows(state: State, sl: slice) -> State:
    """The walkers ``sl`` of ``state`` (positions, log densities, gradients, aux)."""
    return State(
        state.position[sl], state.log_prob[sl], state.grad[sl], tuple(a[sl] for a in state.aux)
    )
