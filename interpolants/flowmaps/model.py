r"""A trained flow map as a model: few-step sampling, jumps, and the few-step likelihood."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..checks import positive_int
from ..distributions import Distribution, StandardNormal, as_distribution
from ..generative import (
    MODEL_READERS,
    network_state,
    restore_network,
    restore_setting,
    setting_state,
)
from ..interpolant import Interpolant, as_time
from .maps import TwoTimeField, call_map, compose, flow_map, jump_log_det, jump_times

__all__ = ["FlowMapModel"]


class FlowMapModel:
    r"""Few-step generation with a flow map X_{s,t}(x) = x + (t - s) v_{s,t}(x) (arXiv
    2406.07507, 2505.18825): any number of jumps chosen at sampling time.

    Arguments:
        interpolant: the interpolant whose ODE the map solves.
        net: the two-time velocity, ``net(s, t, x)`` (:class:`~interpolants.nn.FlowMapMLP`).
        base: the law of x0 (as :class:`~interpolants.GenerativeModel`'s; None: N(0, I) on
            ``event_shape``).
        event_shape: the shape of one sample, needed with the default base.

    Example:
        >>> import interpolants as si
        >>> I = si.Interpolant("linear")
        >>> exact = si.flowmaps.GaussianFlowMap(I, torch.tensor([1.0, -1.0]), 0.5)
        >>> fm = FlowMapModel(I, exact, event_shape=(2,))
        >>> fm.sample(4, steps=2).shape
        torch.Size([4, 2])
    """

    def __init__(
        self,
        interpolant: Interpolant,
        net: TwoTimeField,
        base: object = None,
        *,
        event_shape: int | Sequence[int] | None = None,
    ):
        if not isinstance(interpolant, Interpolant):
            raise TypeError(f"interpolant must be an Interpolant, got {type(interpolant).__name__}")
        if not callable(net):
            raise TypeError("net must be a callable (s, t, x) -> tensor like x")
        self.interpolant, self.net = interpolant, net
        self._base_given = base is not None
        if base is None and event_shape is not None:
            dtype = next((p.dtype for p in _tensors(net) if p.is_floating_point()), torch.float32)
            base = StandardNormal(event_shape, dtype=dtype)
        self.base: Distribution | None = None if base is None else as_distribution(base)

    def _points(self, x: Tensor) -> Tensor:
        """x as the network takes it: a floating tensor (batch, *event) in its dtype and device;
        TypeError / ValueError naming ``x`` otherwise."""
        if not isinstance(x, Tensor) or not x.is_floating_point():
            raise TypeError(f"x must be a floating-point Tensor, got {type(x).__name__}")
        events = None if self.base is None else tuple(self.base.event_shape)
        if x.ndim < 2 or x.shape[0] == 0 or (events is not None and x.shape[1:] != events):
            raise ValueError(f"x must have shape (batch, *{events}), got {tuple(x.shape)}")
        own = next(iter(_tensors(self.net)), None)
        return x if own is None else x.to(dtype=own.dtype, device=own.device)

    def jump(self, x: Tensor, s: float | Tensor = 0.0, t: float | Tensor = 1.0) -> Tensor:
        """X_{s,t}(x): points x at time s carried to time t in one jump (t < s: backward).
        ``s``, ``t`` are floats or (batch,) tensors in [0, 1]."""
        x = self._points(x)
        return flow_map(self.net, as_time(s, x, "s"), as_time(t, x, "t"), x)

    def velocity(self, t: Tensor, x: Tensor) -> Tensor:
        """The diagonal v_{t,t}(x) = b_t(x): the velocity of the ODE, for a
        :class:`~interpolants.GenerativeModel` built from the map."""
        return call_map(self.net, t, t, x, None)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        steps: int = 1,
        times: Sequence[float] | Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """n samples: x0 ~ base, then ``steps`` jumps on the uniform grid j / steps (or between
        consecutive ``times``, from 0 to 1)."""
        positive_int("n", n)
        grid = jump_times(steps, times)
        if self.base is None:
            raise ValueError("the default N(0, I) base needs event_shape=: pass it or base=")
        return compose(self.net, self.base.sample(n, generator), grid)

    def log_prob(self, x: Tensor, steps: int = 1) -> Tensor:
        r"""log rho(x) = log rho_0(X(x)) + sum_j log |det grad X_{t_j, t_{j-1}}|, X the ``steps``
        backward jumps from t = 1 to 0 on the uniform grid (no ODE, no Hutchinson estimate).

        It is the exact density of the model whose sampler is the inverse of this backward
        map, x = X^{-1}(x0), x0 ~ rho_0. It equals the density of the forward sampler
        :meth:`sample` only insofar as the forward and backward jumps invert each other:
        :meth:`round_trip` measures how far they do. The Jacobians are exact (``jacrev``),
        d x d per row: for small events.
        """
        grid, x = jump_times(steps)[::-1], self._points(x)
        base = self.base or StandardNormal(x.shape[1:], dtype=x.dtype, device=x.device)
        total = x.new_zeros(x.shape[0])
        for a, b in itertools.pairwise(grid):
            x, log_det = jump_log_det(self.net, a, b, x)
            total = total + log_det
        return base.log_prob(x) + total

    @torch.no_grad()
    def round_trip(self, x0: Tensor, steps: int = 1) -> Tensor:
        """|X_back(X_forward(x0)) - x0| per row, ``steps`` jumps each way: how far the backward
        map inverts the sampler (0 for the exact flow map)."""
        grid, x0 = jump_times(steps), self._points(x0)
        back = compose(self.net, compose(self.net, x0, grid), grid[::-1])
        return (back - x0).flatten(1).norm(dim=1)

    def save(self, path: str | Path) -> None:
        """Write the model to ``path`` in the safe format (:mod:`interpolants.checkpoints`);
        :func:`interpolants.load` reads it back."""
        from .. import checkpoints

        checkpoints.save(path, {"model": self.state()}, kind="model")

    def state(self) -> dict[str, Any]:
        """The model as tensors and plain data (the network's registered description and
        weights, the interpolant and base specs)."""
        return {
            "flow_map": network_state("flow_map", self.net),
            **setting_state(self.interpolant, self.base, self._base_given),
        }

    @classmethod
    def from_state(
        cls,
        state: dict[str, Any],
        net: nn.Module | None = None,
        *,
        base: object = None,
        interpolant: Interpolant | None = None,
    ) -> FlowMapModel:
        """The model :meth:`state` described; ``net`` for a network of an unregistered class,
        ``base`` and ``interpolant`` for those the state could not hold."""
        module = restore_network("flow_map", state["flow_map"], net)
        interpolant, base = restore_setting(state, interpolant, base)
        return cls(interpolant, module, base, event_shape=state["event_shape"])

    def __repr__(self) -> str:
        return f"FlowMapModel({self.interpolant!r}, net={type(self.net).__name__})"


def _tensors(net: object) -> list[Tensor]:
    """A module's parameters, then its buffers (the exact map has buffers only)."""
    return [*net.parameters(), *net.buffers()] if isinstance(net, nn.Module) else []


MODEL_READERS["flow_map"] = FlowMapModel.from_state
