r"""Generative models made of an interpolant and its fields: sample, log_prob, transport.

Generation (arXiv 2303.08797): the probability-flow ODE dX = b(t, X) dt, or the SDE
dX = (b + eps(t) s)(t, X) dt + sqrt(2 eps(t)) dW with eps >= 0 chosen at sampling time, both
from X_0 ~ rho_0 to t = 1. Likelihood: log rho_1(x) = log rho_0(X_0) - int_0^1 div b(t, X_t) dt
along the ODE run backward from X_1 = x.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .conditioning import Fields, bind_fields, source_for
from .couplings import Conditioned, Coupling, Independent, Source
from .distributions import Distribution, StandardNormal, as_distribution, is_standard_normal
from .fields import score_from_denoiser, score_from_velocity, score_from_velocity_unchecked
from .integrate import Diffusion, Solution, odeint, odeint_with_divergence, sdeint
from .interpolant import Interpolant

__all__ = ["MODEL_READERS", "GenerativeModel", "from_state", "load", "restore_network"]

Field = Callable[[Tensor, Tensor], Tensor]


SCORE_T_GAP = 1e-3
"""A score derived from the velocity is singular at t = 1 (and one from a denoiser at t = 0
and 1); the SDE evaluates it at min(t, 1 - SCORE_T_GAP) (resp. clamped to
[SCORE_T_GAP, 1 - SCORE_T_GAP]), the velocity itself at t."""


def _module_dtype_device(*fns: object) -> tuple[torch.dtype, torch.device] | None:
    for fn in fns:
        if isinstance(fn, nn.Module):
            for p in fn.parameters():
                return p.dtype, p.device
    return None


def _check_time(name: str, value: float) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {value}")
    return value


class GenerativeModel:
    r"""A transport from a base rho_0 to rho_1 given by an interpolant's fields.

    Arguments:
        interpolant: the :class:`Interpolant` the fields belong to.
        velocity: b(t, x), a callable (t of shape (batch,), x) -> tensor like x.
        score: s(t, x) = grad log rho_t(x), optional; needed by the SDE unless it follows
            from ``denoiser`` or, for a standard Gaussian base, from the velocity.
        base: the law of x0: None for N(0, I), a distribution with ``sample(n, generator)``
            and ``log_prob(x)``, a ``torch.distributions`` object, or a tensor of samples; or
            a coupling (:mod:`interpolants.couplings`): the fields then take ``cond=`` and
            ``sample``, ``transport`` and ``log_prob`` take ``cond``, labels for
            ``Independent(classes=K)`` or observations for the others.
        denoiser: eta(t, x) = E[z | x_t = x], optional; gives the score -eta / gamma.
        event_shape: the shape of one sample, needed by ``sample`` with the default base.

    Example:
        >>> I = Interpolant("linear")
        >>> model = GenerativeModel(I, velocity=lambda t, x: torch.zeros_like(x), event_shape=(2,))
        >>> model.sample(5).shape
        torch.Size([5, 2])
    """

    def __init__(
        self,
        interpolant: Interpolant,
        velocity: Field,
        score: Field | None = None,
        base: object = None,
        *,
        denoiser: Field | None = None,
        event_shape: int | Sequence[int] | None = None,
    ):
        if not isinstance(interpolant, Interpolant):
            raise TypeError(f"interpolant must be an Interpolant, got {type(interpolant).__name__}")
        for name, fn in (("velocity", velocity), ("score", score), ("denoiser", denoiser)):
            if fn is not None and not callable(fn):
                raise TypeError(f"{name} must be a callable (t, x) -> tensor like x")
        if velocity is None:
            raise ValueError("velocity is required")
        self.interpolant = interpolant
        self.velocity, self._score, self.denoiser = velocity, score, denoiser
        self.coupling: Coupling | None = None  # a coupling that conditions the fields
        if isinstance(base, Independent):
            self.coupling = base if base.classes else None
            base = base.base
        elif isinstance(base, Conditioned):
            self.coupling, base = base, None
        elif isinstance(base, Coupling):  # a user's coupling: its base, if any, is the model's
            base = base.base
        self._base_given = base is not None
        if base is None:
            if event_shape is not None:
                dtype, device = _module_dtype_device(velocity, score) or (
                    torch.float32,
                    torch.device("cpu"),
                )
                base = StandardNormal(event_shape, dtype=dtype, device=device)
        self.base: Distribution | None = as_distribution(base) if base is not None else None
        if isinstance(self.coupling, Independent) and self.coupling.base is not self.base:
            labels = self.coupling
            self.coupling = Independent(
                self.base, classes=labels.classes, label_dropout=labels.label_dropout
            )

    # --- fields ---------------------------------------------------------------------------
    def _base_is_standard(self) -> bool:
        if isinstance(self.coupling, Conditioned):  # x0 ~ N(0, I) whatever y: the baseline
            return self.coupling.start == "noise"
        return not self._base_given or is_standard_normal(self.base)

    @property
    def classes(self) -> int:
        """K, the number of labels the fields are conditioned on (0: none)."""
        return self.coupling.classes if isinstance(self.coupling, Independent) else 0

    def _source(self, n: int | None, cond: Any) -> tuple[int, Source | None]:
        like = _module_dtype_device(self.velocity, self._score, self.denoiser)
        return source_for(self.coupling, n, cond, like)

    def _fields(self, source: Source | None, guidance: float) -> Fields:
        fields = Fields(self.velocity, self._score, self.denoiser)
        return bind_fields(fields, source, guidance, self.coupling, self.interpolant)

    def _score_source(self) -> str:
        """Where the score comes from: "score", "denoiser" or "velocity" (derived).

        Raises ValueError when none of them gives the score for this interpolant and base.
        """
        if self._score is not None:
            return "score"
        if self.denoiser is not None:
            if self.interpolant.is_deterministic and not self._base_is_standard():
                raise ValueError(
                    "with gamma = 0 the denoiser gives the score only for a standard Gaussian "
                    "base (s = -eta / alpha); pass score= or use gamma > 0"
                )
            return "denoiser"
        if not self._base_is_standard():
            raise ValueError(
                "diffusion > 0 needs a score: pass score= or denoiser=, or use a standard "
                "Gaussian base so the score follows from the velocity"
            )
        if self.interpolant.path == "encdec":
            raise ValueError(
                "diffusion > 0 needs a score: with the encdec path beta = beta' = 0 on [0, 1/2] "
                "and the score does not follow from the velocity; pass score= or denoiser="
            )
        return "velocity"

    def score(self, t: Tensor, x: Tensor) -> Tensor:
        """s(t, x): learned, from the denoiser, or from the velocity for an N(0, I) base."""
        source = self._score_source()
        if source == "score":
            return self._score(t, x)  # type: ignore[misc]
        if source == "denoiser":
            return score_from_denoiser(self.interpolant, t, x, self.denoiser(t, x))  # type: ignore[misc]
        return score_from_velocity(self.interpolant, t, x, self.velocity(t, x))

    def _drift(self, eps: Diffusion, sign: float, f: Fields) -> Field:
        """b + sign * eps(t) s: the forward (sign = +1) or backward (-1) SDE drift."""
        source = self._score_source()

        def drift(t: Tensor, x: Tensor) -> Tensor:
            e = eps(t[0]) if callable(eps) else eps
            b = f.velocity(t, x)  # one velocity evaluation serves both terms when derived
            if source == "velocity":  # singular at t = 1: evaluated at min(t, 1 - SCORE_T_GAP)
                s = score_from_velocity_unchecked(
                    self.interpolant, t.clamp(max=1 - SCORE_T_GAP), x, b
                )
            elif source == "score":
                s = f.score(t, x)  # type: ignore[misc]
            else:  # -eta / gamma is singular where gamma = 0, at both ends
                tc = t.clamp(SCORE_T_GAP, 1 - SCORE_T_GAP)
                s = score_from_denoiser(self.interpolant, tc, x, f.denoiser(tc, x))  # type: ignore[misc]
            return b + (sign * e) * s

        return drift

    # --- sampling and transport -----------------------------------------------------------
    def _draw_base(
        self, n: int, generator: torch.Generator | None, source: Source | None = None
    ) -> Tensor:
        if source is not None:
            return source.sample(generator)
        if self.base is None:
            raise ValueError(
                "the default N(0, I) base needs event_shape=: pass event_shape or base to "
                "GenerativeModel, or start from given points with transport()"
            )
        return self.base.sample(n, generator)

    def sample(
        self,
        n: int | None = None,
        steps: int = 100,
        solver: str = "heun",
        diffusion: Diffusion = 0.0,
        generator: torch.Generator | None = None,
        *,
        cond: Any = None,
        guidance: float = 0.0,
        atol: float = 1e-5,
        rtol: float = 1e-5,
        return_info: bool = False,
        progress: bool = False,
    ) -> Tensor | Solution:
        r"""n samples of rho_1 by the ODE (``diffusion=0``) or the SDE with eps = ``diffusion``.

        Arguments:
            n: number of samples; with ``cond`` it may be omitted (one sample per row of
                cond), or be any number for a cond of one row (an ensemble of it).
            steps: uniform time steps (fixed-step ODE solvers and the SDE).
            solver: "euler", "heun", "rk4", "dopri5" for the ODE; "euler" (Euler-Maruyama) or
                "heun" (stochastic Heun) for the SDE.
            diffusion: eps(t) >= 0, a float or a callable of t.
            generator: the random stream of the base draw and the noise.
            cond: for a model conditioned on labels, integer labels (n,) (omitted: the
                unconditional field, if trained with label dropout); for a coupling's model,
                observations (``coupling.observe(x1)``: masked images with NaN at the hidden
                pixels, low-resolution images, corrupted images, current states).
            guidance: classifier-free guidance w (labels with label dropout): the fields
                (1 + w) f(t, x | label) - w f(t, x | null). w = 0 is the conditional model;
                w here is the ``cfg_scale - 1`` of SiT and DiT (whose cfg_scale = 1 is ours 0).
            return_info: return the :class:`Solution` (samples in ``.x``, ``nfe``) instead.
            progress: show a progress bar over the time steps.

        In-painting keeps the visible entries: they follow their exact path and end at the
        observed values.
        """
        n, source = self._source(n, cond)
        x0 = self._draw_base(n, generator, source)
        fields = self._fields(source, guidance)
        with torch.no_grad():
            sol = self._integrate(
                x0, 0.0, 1.0, steps, solver, diffusion, generator, atol, rtol, progress, fields
            )
        if source is not None and source.keep is not None:
            sol = dataclasses.replace(sol, x=torch.where(source.keep, source.mean, sol.x))
        return sol if return_info else sol.x

    def _integrate(
        self,
        x: Tensor,
        t0: float,
        t1: float,
        steps: int,
        solver: str,
        diffusion: Diffusion,
        generator: torch.Generator | None,
        atol: float,
        rtol: float,
        progress: bool = False,
        fields: Fields | None = None,
    ) -> Solution:
        f = fields or Fields(self.velocity, self._score, self.denoiser)
        if not callable(diffusion) and float(diffusion) == 0.0:
            return odeint(
                f.velocity, x, t0, t1, steps=steps, solver=solver, atol=atol, rtol=rtol,
                progress=progress,
            )  # fmt: skip
        if solver not in ("euler", "heun"):
            raise ValueError(f"solver must be 'euler' or 'heun' when diffusion > 0, got {solver!r}")
        drift = self._drift(diffusion, 1.0 if t1 > t0 else -1.0, f)
        return sdeint(
            drift, diffusion, x, t0, t1, steps=steps, method=solver, generator=generator,
            progress=progress,
        )  # fmt: skip

    def transport(
        self,
        x: Tensor,
        t0: float = 0.0,
        t1: float = 1.0,
        steps: int = 100,
        solver: str = "heun",
        *,
        diffusion: Diffusion = 0.0,
        generator: torch.Generator | None = None,
        cond: Any = None,
        guidance: float = 0.0,
        atol: float = 1e-5,
        rtol: float = 1e-5,
        return_info: bool = False,
        progress: bool = False,
    ) -> Tensor | Solution:
        """Carry points x at time t0 to time t1 along the ODE (or the forward/backward SDE);
        ``cond`` and ``guidance`` as in :meth:`sample` (one row of cond per point, or one)."""
        t0, t1 = _check_time("t0", t0), _check_time("t1", t1)
        dtype = x.dtype if isinstance(x, Tensor) else None
        x = self._check_x(x)
        _, source = self._source(len(x), cond)
        with torch.no_grad():
            sol = self._integrate(
                x, t0, t1, steps, solver, diffusion, generator, atol, rtol, progress,
                self._fields(source, guidance),
            )  # fmt: skip
        if return_info:
            return sol
        return sol.x.to(dtype) if dtype is not None and dtype.is_floating_point else sol.x

    def _check_x(self, x: Tensor) -> Tensor:
        """x as the fields take it: a float tensor (batch, *event) with at least one row, in
        the networks' dtype and device (float inputs are converted, integers refused)."""
        if isinstance(x, np.ndarray):
            x = torch.from_numpy(x)
        if not isinstance(x, Tensor):
            raise TypeError(f"x must be a Tensor, got {type(x).__name__}")
        if x.ndim < 2:
            raise ValueError(f"x must have shape (batch, *event), got {tuple(x.shape)}")
        if self.base is not None and tuple(x.shape[1:]) != tuple(self.base.event_shape):
            raise ValueError(
                f"x has shape {tuple(x.shape)}; expected (batch, "
                f"{', '.join(map(str, self.base.event_shape))})"
            )
        if x.shape[0] == 0:
            raise ValueError(f"x is empty (shape {tuple(x.shape)}): pass at least one point")
        if not x.is_floating_point():
            raise TypeError(
                f"x has dtype {x.dtype}; the model takes floating-point points (e.g. x.float())"
            )
        found = _module_dtype_device(self.velocity, self._score, self.denoiser)
        return x if found is None else x.to(dtype=found[0], device=found[1])

    # --- likelihood -----------------------------------------------------------------------
    def _base_for(self, x: Tensor) -> Distribution:
        if self.base is not None:
            return self.base
        return StandardNormal(x.shape[1:], dtype=x.dtype, device=x.device)

    def _likelihood_source(self, source: Source | None) -> Source | None:
        """``source``, refused where the likelihood of its conditioning has no density."""
        if source is not None and source.keep is not None and not self.interpolant.is_deterministic:
            raise ValueError(
                "log_prob of an in-painting model needs a deterministic interpolant (gamma = "
                "0): with gamma > 0 the visible entries' path has no finite log-determinant"
            )
        return source

    def log_prob(
        self,
        x: Tensor,
        divergence: str = "exact",
        steps: int = 100,
        solver: str = "heun",
        generator: torch.Generator | None = None,
        *,
        cond: Any = None,
        probe: str = "rademacher",
        atol: float = 1e-5,
        rtol: float = 1e-5,
        create_graph: bool = False,
    ) -> Tensor:
        r"""log rho_1(x) = log rho_0(X_0) - int_0^1 div b(t, X_t) dt, in nats, shape (n,).

        The ODE is solved backward from X_1 = x. ``divergence``: "exact" or "hutchinson"
        (probe "rademacher" or "gaussian", drawn from ``generator``, unbiased). With ``cond``
        (:meth:`sample`): log rho_1(x | cond) = log rho_0(X_0 | cond) - int div b(t, X_t |
        cond) dt; for in-painting, the density of the hidden entries given the visible ones.
        """
        dtype = x.dtype if isinstance(x, Tensor) and x.is_floating_point() else None
        x = self._check_x(x)
        source = self._likelihood_source(self._source(len(x), cond)[1])
        sol = odeint_with_divergence(
            self._fields(source, 0.0).velocity, x, 1.0, 0.0, steps=steps, solver=solver,
            divergence_method=divergence, probe=probe, generator=generator,
            create_graph=create_graph, atol=atol, rtol=rtol,
        )  # fmt: skip
        # int_1^0 div b dt = -int_0^1 div b dt
        base = self._base_for(x) if source is None else source
        logp = base.log_prob(sol.x) + sol.divergence_integral
        return logp if dtype is None else logp.to(dtype)

    def sample_with_log_prob(
        self,
        n: int | None = None,
        steps: int = 100,
        solver: str = "heun",
        generator: torch.Generator | None = None,
        *,
        cond: Any = None,
        divergence: str = "exact",
        probe: str = "rademacher",
        atol: float = 1e-5,
        rtol: float = 1e-5,
    ) -> tuple[Tensor, Tensor]:
        """Samples X_1 by the ODE and their model log density, integrated along the same path
        (``cond`` as in :meth:`sample`)."""
        n, source = self._source(n, cond)
        self._likelihood_source(source)
        x0 = self._draw_base(n, generator, source)
        base_lp = (source or self.base).log_prob(x0)  # type: ignore[union-attr]
        sol = odeint_with_divergence(
            self._fields(source, 0.0).velocity, x0, 0.0, 1.0, steps=steps, solver=solver,
            divergence_method=divergence, probe=probe, generator=generator, atol=atol, rtol=rtol,
        )  # fmt: skip
        return sol.x, base_lp - sol.divergence_integral

    def save(self, path: str | Path) -> None:
        """Write the model to ``path`` atomically, in the safe format of
        :mod:`interpolants.checkpoints` (no pickle: loading it runs no code).

        The fields must be ``nn.Module`` objects. Networks of a registered class
        (:func:`interpolants.nn.register`, e.g. the default ones) are rebuilt by :func:`load`;
        for any other class only the weights are stored and ``load(path, net=...)`` needs the
        module. The base must be describable by data (Gaussians, mixtures, samples,
        ``torch.distributions``); the interpolant must be a named one.
        """
        from . import checkpoints

        checkpoints.save(path, {"model": self.state()}, kind="model")

    def state(self) -> dict[str, Any]:
        """The model as tensors and plain data: interpolant spec, base spec, each field's
        network description (or None) and state dict. :func:`from_state` inverts it."""
        modules = {"velocity": self.velocity, "score": self._score, "denoiser": self.denoiser}
        fields = {name: network_state(name, fn) for name, fn in modules.items() if fn is not None}
        return {
            **setting_state(self.interpolant, self.base, self._base_given),
            "fields": fields,
            "coupling": coupling_state(self.coupling),
        }

    def __repr__(self) -> str:
        fields: list[Any] = ["velocity"]
        if self._score is not None:
            fields.append("score")
        if self.denoiser is not None:
            fields.append("denoiser")
        base = repr(self.coupling) if self.coupling is not None else type(self.base).__name__
        return f"GenerativeModel({self.interpolant!r}, fields={fields}, base={base})"


def network_state(name: str, fn: object) -> dict[str, Any]:
    """A field's network as a saved model holds it, ``{"network", "class", "weights"}``
    (:func:`restore_network` inverts it); a TypeError for a plain callable."""
    from .nn import describe

    if not isinstance(fn, nn.Module):
        raise TypeError(f"{name} is a plain callable; only nn.Module fields can be saved")
    cls = type(fn)
    return {
        "network": describe(fn),
        "class": f"{cls.__module__}.{cls.__qualname__}",
        "weights": fn.state_dict(),
    }


def coupling_state(coupling: Coupling | None) -> dict[str, Any] | None:
    """A model's conditioning as plain data: None, the labels (``{"kind": "labels",
    "classes", "label_dropout"}``) or a coupling's :meth:`~interpolants.couplings.Coupling.spec`;
    :func:`restore_coupling` inverts it."""
    if coupling is None:
        return None
    if isinstance(coupling, Independent):
        return {"kind": "labels", "classes": coupling.classes,
                "label_dropout": coupling.label_dropout}  # fmt: skip
    return coupling.spec()


def restore_coupling(spec: dict[str, Any] | None, base: object) -> object:
    """The base argument of a model whose conditioning :func:`coupling_state` saved."""
    from .couplings import coupling_from_spec

    if spec is None:
        return base
    if spec["kind"] == "labels":
        return Independent(base, classes=spec["classes"], label_dropout=spec["label_dropout"])
    return coupling_from_spec(spec)


def setting_state(interpolant: Interpolant, base: Any, base_given: bool) -> dict[str, Any]:
    """What a saved model holds besides its networks: the interpolant's spec (None when
    built from callables), the base's (None for the default N(0, I); ``{"kind": "unsaved"}``
    when it cannot be described by data) and the event shape; :func:`restore_setting`
    inverts it."""
    from .distributions import distribution_spec

    try:
        spec: dict[str, Any] | None = interpolant.spec()
    except ValueError:  # built from callables: load(interpolant=...) supplies it
        spec = None
    saved_base: dict[str, Any] | None = None
    if base_given:
        try:
            saved_base = distribution_spec(base)
        except TypeError:  # load(base=...) supplies it
            saved_base = {"kind": "unsaved", "class": type(base).__name__}
    return {
        "interpolant": spec,
        "base": saved_base,
        "event_shape": list(base.event_shape) if base is not None else None,
    }


def restore_setting(
    state: dict[str, Any], interpolant: Interpolant | None, base: object
) -> tuple[Interpolant, object]:
    """The interpolant and base of a saved model's ``state`` (:func:`setting_state`), or the
    ``interpolant`` and ``base`` given for those it could not hold."""
    from .distributions import distribution_from_spec

    if base is None and state["base"] is not None:
        if state["base"]["kind"] == "unsaved":
            raise ValueError(
                f"the model's base ({state['base']['class']}) could not be saved as data: pass "
                "it again, load(path, base=...)"
            )
        base = distribution_from_spec(state["base"])
    if interpolant is None:
        if state["interpolant"] is None:
            raise ValueError(
                "the model's interpolant was built from callables and could not be saved: "
                "pass it again, load(path, interpolant=...)"
            )
        interpolant = Interpolant(**state["interpolant"])
    return interpolant, base


def restore_network(name: str, saved: dict[str, Any], given: nn.Module | None) -> nn.Module:
    """The network of field ``name`` as a saved model describes it (``{"network", "class",
    "weights"}``): rebuilt from the registry, or ``given`` with the weights loaded."""
    from .nn import build

    if given is None:
        if saved["network"] is None:
            raise ValueError(
                f"the saved {name} is a network of the user's class {saved['class']}, which a "
                f"file cannot rebuild: construct it and pass load(path, net=...) (a module, or "
                "a dict {field: module}), or register the class with interpolants.nn.register"
            )
        given = build(saved["network"])
        floats = [w for w in saved["weights"].values() if w.is_floating_point()]
        if floats:
            given = given.to(floats[0].dtype)
    try:
        given.load_state_dict(saved["weights"])
    except RuntimeError as err:
        first = str(err).splitlines()[1:2] or [str(err)]
        raise ValueError(
            f"the {name} network given does not match the saved weights: {first[0].strip()}"
        ) from err
    return given.eval()


def from_state(
    state: dict[str, Any],
    net: nn.Module | dict[str, nn.Module] | None = None,
    base: object = None,
    interpolant: Interpolant | None = None,
) -> GenerativeModel:
    """The model :meth:`GenerativeModel.state` described; ``net``, ``base`` and
    ``interpolant`` supply what the state could not hold (see :func:`load`)."""
    saved = state["fields"]
    if isinstance(net, nn.Module):
        if len(saved) != 1:
            raise ValueError(
                f"the model has fields {sorted(saved)}: pass net={{field: module}} for each"
            )
        net = {next(iter(saved)): net}
    net = net or {}
    if not isinstance(net, dict) or not all(isinstance(m, nn.Module) for m in net.values()):
        raise TypeError("net must be an nn.Module or a dict {field: nn.Module}")
    unknown = sorted(set(net) - set(saved))
    if unknown:
        raise ValueError(f"net names fields {unknown} the model does not have ({sorted(saved)})")
    fields = {k: restore_network(k, v, net.get(k)) for k, v in saved.items()}
    if "velocity" not in fields:
        raise ValueError("the saved model holds no velocity field")
    interpolant, base = restore_setting(state, interpolant, base)
    base = restore_coupling(state.get("coupling"), base)
    return GenerativeModel(
        interpolant, fields["velocity"], score=fields.get("score"), base=base,
        denoiser=fields.get("denoiser"), event_shape=state["event_shape"],
    )  # fmt: skip


MODEL_READERS: dict[str, Callable[..., Any]] = {}
"""Readers of saved models other than GenerativeModel, by the key their state holds
(``"flow_map"``: :class:`~interpolants.flowmaps.FlowMapModel`, registered when that module is
imported); :func:`load` hands such a state, ``net``, ``base`` and ``interpolant`` to the
reader."""


def load(
    path: str | Path,
    net: nn.Module | dict[str, nn.Module] | None = None,
    *,
    base: object = None,
    interpolant: Interpolant | None = None,
) -> GenerativeModel:
    """Read a model written by :meth:`GenerativeModel.save`, or a training run's model (a
    :class:`~interpolants.flowmaps.FlowMapModel` for the files and runs of flow maps).

    Arguments:
        path: a file of :meth:`GenerativeModel.save`, a run folder of :func:`~.train.fit`
            (its ``checkpoint.safetensors``, with the EMA fields) or such a checkpoint.
        net: the network(s) for fields of a class that is not registered
            (:func:`interpolants.nn.register`): a module for a one-field model or a dict
            {field: module}; their weights are loaded from the file.
        base: the base, if the saved model's base could not be described by data.
        interpolant: the interpolant, for one built from callables.

    Files are read without unpickling (:mod:`interpolants.checkpoints`): a pickle, such as a
    file of interpolants 0.1, is refused with a message and never executed.
    """
    from . import checkpoints

    path = Path(path)
    if path.is_dir():
        path = _run_checkpoint(path)
    tree = checkpoints.load(path, kind=("model", "training", "nets"))
    model = tree.get("model")
    reader = next((f for k, f in MODEL_READERS.items() if isinstance(model, dict) and k in model),
                  None)  # fmt: skip
    if reader is not None:
        return reader(model, net, base=base, interpolant=interpolant)
    if not isinstance(model, dict) or "fields" not in model:
        what = "a NETS sampler's training" if "drift_config" in tree else "no generative model's"
        raise checkpoints.CheckpointError(
            f"{path} holds {what} checkpoint, not a generative model (si.load reads the "
            "files of GenerativeModel.save and of si.fit's run folders)"
        )
    return from_state(tree["model"], net, base=base, interpolant=interpolant)


def _run_checkpoint(folder: Path) -> Path:
    from .run_folder import CHECKPOINT

    path = folder / CHECKPOINT
    if not path.exists():
        old = folder / "checkpoint.pt"
        if old.exists():
            return old  # refused by checkpoints.load with the reason
        raise FileNotFoundError(f"{folder} is not a training run (no {CHECKPOINT})")
    return path
