r"""ForecastModel: the learned drift of the forecasting SDE, sampled from the current state
with a diffusion chosen at sampling time, ensembles and autoregressive rollouts (arXiv
2403.13724)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..checks import positive_int
from ..conditioning import source_for
from ..couplings import Coupling, Paired
from ..generative import (
    MODEL_READERS,
    coupling_state,
    network_state,
    restore_coupling,
    restore_network,
    restore_setting,
    setting_state,
)
from ..integrate import sdeint
from ..interpolant import Interpolant
from .drift import Diffusion, check_diffusion, diffusion_squared, drift_for_diffusion

__all__ = ["ForecastModel", "autoregress"]

STATE_KEY = "forecast"


def _device_dtype(net: object) -> tuple[torch.dtype, torch.device] | None:
    if isinstance(net, nn.Module):
        for p in net.parameters():
            return p.dtype, p.device
    return None


def autoregress(
    step: Callable[[Tensor], Tensor], cond: Tensor, lags: int, members: int = 1
) -> Tensor:
    """An autoregressive rollout: ``members`` copies of each current state (rows, *event)
    advanced ``lags`` times by ``step`` (states -> their forecasts, one per row), each forecast
    the next current state. Returns (lags, members, rows, *event)."""
    positive_int("lags", lags)
    positive_int("members", members)
    if not isinstance(cond, Tensor) or cond.ndim < 2:
        raise ValueError("cond must be a tensor of current states (rows, *event)")
    state = cond.repeat_interleave(members, dim=0)
    out = []
    for _ in range(lags):
        state = step(state)
        out.append(state.reshape(len(cond), members, *cond.shape[1:]).transpose(0, 1))
    return torch.stack(out)


class ForecastModel:
    r"""The forecasting SDE dX = b_g(t, X | x0) dt + g(t) dW from X_0 = x0, the current state,
    to t = 1: X_1 is a draw of the state one lag later given x0.

    Arguments:
        interpolant: x_t = alpha x0 + beta x1 + sigma(t) W_t, e.g. ``Interpolant("quadratic",
            gamma="wiener", a=eps)`` (alpha = 1 - t, beta = t^2, sigma = eps (1 - t)).
        drift: b_F(t, x, cond=x0), the drift learned for g = sigma
            (:func:`~interpolants.losses.drift_loss`).
        coupling: the :class:`~interpolants.couplings.Paired` coupling of the training pairs
            (noise 0: x0 is the point mass at the current state, also the network's cond),
            or :class:`~interpolants.couplings.Increment` (x0 = 0, the increment scaled, the
            forecast x_now + scale X_1).

    Example:
        >>> import torch, interpolants as si
        >>> I = si.Interpolant("quadratic", gamma="wiener")
        >>> model = ForecastModel(I, lambda t, x, cond: -x, si.couplings.Paired(None))
        >>> model.sample(cond=torch.zeros(3, 2), steps=10).shape
        torch.Size([3, 2])
    """

    def __init__(self, interpolant: Interpolant, drift: Any, coupling: Coupling):
        if not isinstance(interpolant, Interpolant):
            raise TypeError(f"interpolant must be an Interpolant, got {type(interpolant).__name__}")
        if not callable(drift):
            raise TypeError("drift must be a callable (t, x, cond=x0) -> tensor like x")
        if not isinstance(coupling, Paired) or coupling.noise != 0 or coupling.start != "coupled":
            raise ValueError(
                "a forecasting model starts from the point mass at the current state: train it "
                f"with si.couplings.Paired(x_now) (noise 0), not {coupling!r}"
            )
        if interpolant.is_deterministic:
            raise ValueError(
                "the forecasting SDE needs sigma(t) > 0: use a stochastic interpolant such as "
                "Interpolant('quadratic', gamma='wiener')"
            )
        self.interpolant, self.drift, self.coupling = interpolant, drift, coupling

    def sample(
        self,
        n: int | None = None,
        steps: int = 100,
        solver: str = "euler",
        diffusion: Diffusion = None,
        generator: torch.Generator | None = None,
        *,
        cond: Tensor | None = None,
        times: Sequence[float] | Tensor | None = None,
        progress: bool = False,
    ) -> Tensor:
        r"""Forecasts of the state one lag after ``cond``: one per row of ``cond`` (n omitted),
        or n of a one-row cond (an ensemble).

        Arguments:
            n: number of forecasts (see above).
            steps: time steps of the SDE solver (uniform), unless ``times`` is given.
            solver: "euler" (Euler-Maruyama) or "heun" (stochastic Heun).
            diffusion: g(t), the noise of dX = b_g dt + g dW (not the eps = g^2 / 2 of
                :meth:`GenerativeModel.sample`): None or "interpolant" for g = sigma (the SDE
                the drift was trained for), "follmer" for g_F (the choice that minimises the
                effect of the drift's error, arXiv 2403.13724), a number or a callable g(t)
                with g(0) >= sigma(0).
            generator: the random stream of the noise.
            cond: the current states x0, (rows, *event).
            times: the solver's grid from 0 to 1 instead of the uniform one. With few steps a
                grid finer near t = 1, e.g. (j / k) ** 0.5, can help the Foellmer diffusion,
                whose drift contracts hardest there: it did on the OU test and on Lorenz-63,
                and hurt on Allen-Cahn (benchmarks/RESULTS.md, "Forecasting").
        """
        positive_int("steps", steps)
        check_diffusion(self.interpolant, diffusion)
        n, source = source_for(self.coupling, n, cond, _device_dtype(self.drift))
        assert source is not None  # a Paired coupling always conditions
        x0 = source.mean
        I, drift = self.interpolant, self.drift

        def field(t: Tensor, x: Tensor) -> Tensor:
            b = drift(t, x, cond=source.cond)
            return drift_for_diffusion(I, t, x, x0, b, diffusion_squared(I, diffusion, t))

        def eps(t: Tensor) -> Tensor:
            return diffusion_squared(I, diffusion, t.reshape(1))[0] / 2

        with torch.no_grad():
            sol = sdeint(field, eps, x0.clone(), 0.0, 1.0, steps=steps, method=solver,
                         generator=generator, progress=progress, times=times)  # fmt: skip
        return self.coupling.outcome(source.cond, sol.x)

    def rollout(
        self,
        cond: Tensor,
        lags: int,
        members: int = 1,
        steps: int = 100,
        solver: str = "euler",
        diffusion: Diffusion = None,
        generator: torch.Generator | None = None,
        times: Sequence[float] | Tensor | None = None,
    ) -> Tensor:
        """Autoregressive forecasts over ``lags`` lags: each forecast is the next current state.
        Returns (lags, members, rows, *event) for the states ``cond`` (rows, *event); the
        options are :meth:`sample`'s."""

        def step(state: Tensor) -> Tensor:
            return self.sample(steps=steps, solver=solver, diffusion=diffusion,
                               generator=generator, cond=state, times=times)  # fmt: skip

        return autoregress(step, cond, lags, members)

    def save(self, path: str | Path) -> None:
        """Write the model to ``path`` atomically in the safe format (no pickle)."""
        from .. import checkpoints

        checkpoints.save(path, {"model": self.state()}, kind="model")

    def state(self) -> dict[str, Any]:
        """The model as tensors and plain data; :meth:`from_state` inverts it."""
        return {
            STATE_KEY: True,
            **setting_state(self.interpolant, None, False),
            "fields": {"drift": network_state("drift", self.drift)},
            "coupling": coupling_state(self.coupling),
        }

    @classmethod
    def from_state(
        cls,
        state: dict[str, Any],
        net: nn.Module | dict[str, nn.Module] | None = None,
        *,
        base: object = None,
        interpolant: Interpolant | None = None,
    ) -> ForecastModel:
        """The model :meth:`state` described (``net``: the drift network, for a class that is
        not registered)."""
        given = net.get("drift") if isinstance(net, dict) else net
        drift = restore_network("drift", state["fields"]["drift"], given)
        interpolant, _ = restore_setting(state, interpolant, None)
        coupling = restore_coupling(state["coupling"], None)
        return cls(interpolant, drift, coupling)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"ForecastModel({self.interpolant!r}, {self.coupling!r})"


MODEL_READERS[STATE_KEY] = ForecastModel.from_state
