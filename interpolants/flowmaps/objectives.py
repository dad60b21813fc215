r"""Self-distillation objectives of flow maps, as :class:`~interpolants.losses.Objective` objects
that :func:`~interpolants.fit`'s one loop descends.

Every row of a batch draws times (s, t) and the interpolant's point x = I_s, dI_s/ds. A
fraction ``diagonal`` of the rows has s = t and trains the velocity (the diagonal term)

    |v_{t,t}(I_t) - dI_t/dt|^2          (or the teacher's b_t(I_t) when distilling),

whose minimiser is v_{t,t} = b_t (arXiv 2303.08797). The other rows (s != t) train the jump
through one residual r = v_{s,t}(x) - target, in velocity units (arXiv 2505.18825):

- Lagrangian (LSD): r = d/dt X_{s,t}(x) - sg b_t(X_{s,t}(x)), one forward-mode JVP in t;
- Eulerian (ESD): r = -(d/ds X_{s,t}(x) + grad_x X_{s,t}(x) sg b_s(x)), one JVP in (s, x)
  along the tangent (1, b_s(x));
- progressive (PSD): r = (X_{s,t}(x) - sg X_{u,t}(X_{s,u}(x))) / (t - s), u uniform between s
  and t or the midpoint;

where b is the flow map's own diagonal v_{., .} (self-distillation), the conditional velocity
dI_s/ds (MeanFlow, Eulerian only) or a trained velocity (distillation); sg is the stop-gradient.
With ``stopgrad="teacher"`` only b (for PSD the composed map) is cut from the graph and the
gradient runs through the JVP; with ``stopgrad="target"`` the loss is |v - sg(v - r)|^2, of
the same value, whose gradient runs through v_{s,t}(x) alone (MeanFlow's and shortcut's choice).

The configurations of the papers users compare against (:data:`METHODS`):

- MeanFlow (Geng et al., arXiv 2505.13447): u(z, r, t) = v(z, t) - (t - r) d/dt u is the
  Eulerian equation with b the conditional velocity, the target stopped, the adaptive weight
  1 / (|r|^2 + c)^p (p = 1, c = 1e-3), 75 % of rows with r = t, logit-normal times (here
  centred at 0; the paper's mean -0.4), forward pairs only;
- shortcut models (Frans et al., arXiv 2410.12557): s(x_t, t, 2d) = sg(s(x_t, t, d) +
  s(x'_{t+d}, t + d, d)) / 2 is the progressive residual with the midpoint, dyadic step sizes
  2d = 2^-k on the grid of their multiples, the target stopped, 75 % flow-matching rows,
  forward pairs only.

``backward=True`` (the default of the self-distillation methods) draws the two times of a row
in either order, so that the backward map X_{1,0} is trained as well (the few-step likelihood
of :meth:`~interpolants.flowmaps.FlowMapModel.log_prob` needs it).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..checks import is_int, is_number
from ..couplings import Coupling, CouplingSample
from ..data import fingerprint
from ..interpolant import TIME_DISTRIBUTIONS, Interpolant, broadcast_like, sample_times
from ..losses import EVERY_ROW, LossTerms, Nets, Objective, call_field
from .maps import TwoTimeField, call_map, flow_map, jvp
from .model import FlowMapModel

__all__ = [
    "METHODS",
    "FlowMapObjective",
    "Residual",
    "TimePairs",
    "draw_pairs",
    "eulerian_residual",
    "flow_map_objective",
    "lagrangian_residual",
    "progressive_residual",
]

RESIDUALS = ("lagrangian", "eulerian", "progressive")
PAIRS = ("uniform", "dyadic")
INTERMEDIATES = ("uniform", "midpoint")
WEIGHTINGS = ("none", "adaptive")
STOPGRADS = ("teacher", "target")
VELOCITIES = ("self", "conditional", "teacher")

Velocity = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class TimePairs:
    """The times of a batch: start s, end t, intermediate u (progressive) and which rows are
    diagonal (s = t), each (batch,)."""

    s: Tensor
    t: Tensor
    u: Tensor
    diagonal: Tensor

    def select(self, rows: slice | Tensor) -> TimePairs:
        return TimePairs(self.s[rows], self.t[rows], self.u[rows], self.diagonal[rows])


def _dyadic(a: Tensor, levels: int, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
    """(s, s + h): h = 2^-k, k uniform in {0, ..., levels - 1}, s uniform on {0, h, ..., 1 - h}."""
    k = torch.randint(0, levels, a.shape, generator=generator, device=a.device)
    h = torch.exp2(-k.to(a.dtype))
    s = torch.minimum(torch.floor(a / h), 1 / h - 1) * h
    return s, s + h


def draw_pairs(
    n: int,
    diagonal: float = 0.75,
    *,
    pairs: str = "uniform",
    backward: bool = True,
    anchor: float = 0.0,
    intermediate: str = "uniform",
    time_distribution: str = "uniform",
    trim: float = 0.0,
    levels: int = 7,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> TimePairs:
    """The (s, t, u) of n rows: the first round(``diagonal`` n) rows have s = t = a; the others
    draw (s, t) by ``pairs`` ("uniform": the ordered pair of two times of ``time_distribution``;
    "dyadic": shortcut's steps 2^-k on their grid), then swap them with probability 1/2 when
    ``backward``; a fraction ``anchor`` of the off-diagonal rows then has its earlier time
    moved to ``trim``, the base end where sampling starts (so forward rows train X_{0,t},
    backward ones X_{s,0}); u is uniform between s and t, or their midpoint. Everything is
    drawn for the whole batch from ``generator``: the processes of a distributed run draw the
    same times."""
    _choice("pairs", pairs, PAIRS)
    _choice("intermediate", intermediate, INTERMEDIATES)
    options = {"trim": trim, "generator": generator, "dtype": dtype, "device": device}
    a = sample_times(n, distribution=time_distribution, **options)
    b = sample_times(n, distribution=time_distribution, **options)
    flip = torch.rand(n, generator=generator, dtype=dtype, device=device) < 0.5
    w = torch.rand(n, generator=generator, dtype=dtype, device=device)
    if pairs == "dyadic":
        s, t = _dyadic(a, levels, generator)
    else:
        s, t = torch.minimum(a, b), torch.maximum(a, b)
    if backward:
        s, t = torch.where(flip, t, s), torch.where(flip, s, t)
    if anchor > 0:
        pinned = torch.rand(n, generator=generator, dtype=dtype, device=device) < anchor
        start = torch.full_like(s, trim)
        s, t = torch.where(pinned & (s <= t), start, s), torch.where(pinned & (s > t), start, t)
    diag = torch.arange(n, device=device) < round(diagonal * n)
    s, t = torch.where(diag, a, s), torch.where(diag, a, t)
    u = (s + t) / 2 if intermediate == "midpoint" else s + w * (t - s)
    return TimePairs(s, t, u, diag)


@dataclass(frozen=True)
class Residual:
    """v_{s,t}(x) (with its graph) and the residual r = v_{s,t}(x) - target, (rows, *event)."""

    velocity: Tensor
    residual: Tensor


def lagrangian_residual(
    net: TwoTimeField, s: Tensor, t: Tensor, x: Tensor, cond: Tensor | None, b: Velocity
) -> Residual:
    """r = d/dt X_{s,t}(x) - sg b_t(X_{s,t}(x)) (LSD, arXiv 2505.18825): d/dt by a forward-mode
    JVP in t alone (:func:`~.maps.jvp`), b evaluated without a graph."""

    def end(tt: Tensor) -> tuple[Tensor, Tensor]:
        v = call_map(net, s, tt, x, cond)
        return x + broadcast_like(tt - s, x) * v, v

    X, dX, v = jvp(end, (t,), (torch.ones_like(t),))
    with torch.no_grad():
        target = b(t, X.detach())
    return Residual(v, dX - target)


def eulerian_residual(
    net: TwoTimeField, s: Tensor, t: Tensor, x: Tensor, cond: Tensor | None, bs: Tensor
) -> Residual:
    """r = -(d/ds X_{s,t}(x) + grad_x X_{s,t}(x) bs) (ESD, arXiv 2505.18825; MeanFlow, arXiv
    2505.13447): one JVP in (s, x) along (1, bs), bs = b_s(x) given without a graph."""

    def start(ss: Tensor, xx: Tensor) -> tuple[Tensor, Tensor]:
        v = call_map(net, ss, t, xx, cond)
        return xx + broadcast_like(t - ss, xx) * v, v

    _, dX, v = jvp(start, (s, x), (torch.ones_like(s), bs.detach()))
    return Residual(v, -dX)


def progressive_residual(
    net: TwoTimeField, s: Tensor, t: Tensor, u: Tensor, x: Tensor, cond: Tensor | None
) -> Residual:
    """r = (X_{s,t}(x) - sg X_{u,t}(X_{s,u}(x))) / (t - s) (PSD, arXiv 2505.18825; shortcut
    models with u the midpoint, arXiv 2410.12557)."""
    v = call_map(net, s, t, x, cond)
    with torch.no_grad():
        end = flow_map(net, u, t, flow_map(net, s, u, x, cond), cond)
    return Residual(v, v - (end - x) / broadcast_like(t - s, x))


def _squared(r: Tensor) -> Tensor:
    return r.flatten(1).square().sum(1)


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


@dataclass(frozen=True)
class FlowMapObjective(Objective):
    r"""The flow-map objective: the diagonal term on a fraction of the rows, one
    self-distillation residual on the others (module docstring; arXiv 2406.07507, 2505.18825).

    Arguments:
        method: the name it was built under (recorded in the run's config).
        residual: "lagrangian", "eulerian" or "progressive".
        diagonal: the fraction of rows with s = t, in [0, 1] (0.75 as the papers).
        pairs: "uniform" or "dyadic" (shortcut's step sizes 2^-k, k < ``levels``: for the
            progressive residual; the Lagrangian and Eulerian ones learn long jumps badly
            from them, benchmarks/RESULTS.md).
        backward: draw each pair in either order (trains the backward map too, which
            ``log_prob`` and ``round_trip`` need). False spends every off-diagonal row on
            forward jumps and trains no backward map; on checkerboard it helped one seed at
            lr 1e-3 but over three seeds at lr 4e-3 its samples are no better at 1 jump and
            worse at 2 (benchmarks/RESULTS.md).
        anchor: the fraction of off-diagonal rows whose earlier time is moved to the base end
            (s = 0, or ``trim``): the jumps that sampling makes first, X_{0,t} (and X_{s,0}
            backward). 0 draws every pair freely. 0.3 cut the 1-jump W2 - floor by a quarter
            on checkerboard and by half on 8gaussians (Lagrangian, lr 4e-3), but made a small
            map of a 2D Gaussian worse (benchmarks/RESULTS.md).
        intermediate: u of the progressive residual: "uniform" or "midpoint".
        time_distribution: the law of the times (:func:`~interpolants.sample_times`).
        trim: keep times in [trim, 1 - trim]; None: 1e-3 when gamma > 0, else 0.
        weighting: "none" or "adaptive" (MeanFlow's sg 1 / (|r|^2 + adaptive_eps)^power per
            row, ``power`` = ``adaptive_power``).
        stopgrad: "teacher" (cut b only) or "target" (cut the whole target: |v - sg(v - r)|^2).
        velocity: the b of the residuals: "self" (sg v_{t,t}), "conditional" (dI/dt; Eulerian
            only) or "teacher".
        teacher: the trained velocity of ``velocity="teacher"``: a model with ``.velocity``
            (a :class:`~interpolants.GenerativeModel`) or a callable b(t, x).

    The logged terms are the raw (unweighted) mean squared residuals: ``diagonal``
    (|v_{t,t} - target|^2, which does not vanish at the optimum: it holds the conditional
    variance) and ``residual`` (the self-distillation residual, zero for the exact map).
    """

    name: ClassVar[str] = "flow_map"
    conditions: ClassVar[bool] = False  # the data's labels are not given to the map
    fields: ClassVar[tuple[str, ...]] = ("flow_map",)
    method: str = "lagrangian"
    residual: str = "lagrangian"
    diagonal: float = 0.75
    pairs: str = "uniform"
    levels: int = 7
    backward: bool = True
    anchor: float = 0.0
    intermediate: str = "uniform"
    time_distribution: str = "uniform"
    trim: float | None = None
    weighting: str = "none"
    adaptive_power: float = 1.0
    adaptive_eps: float = 1e-3
    stopgrad: str = "teacher"
    velocity: str = "self"
    teacher: Any = dataclasses.field(default=None, compare=False)

    def __post_init__(self) -> None:
        for name, allowed in (("residual", RESIDUALS), ("pairs", PAIRS),
                              ("intermediate", INTERMEDIATES), ("weighting", WEIGHTINGS),
                              ("stopgrad", STOPGRADS), ("velocity", VELOCITIES),
                              ("time_distribution", TIME_DISTRIBUTIONS)):  # fmt: skip
            _choice(name, getattr(self, name), allowed)
        for name, value in (("diagonal", self.diagonal), ("anchor", self.anchor)):
            if not is_number(value) or not 0 <= value <= 1:
                raise ValueError(f"{name} must be a fraction in [0, 1], got {value!r}")
        if not is_int(self.levels) or not 1 <= self.levels <= 20:
            raise ValueError(f"levels must be an integer in [1, 20], got {self.levels!r}")
        if self.backward not in (True, False):
            raise ValueError(f"backward must be True or False, got {self.backward!r}")
        if self.trim is not None and not (is_number(self.trim) and 0 <= self.trim < 0.5):
            raise ValueError(f"trim must lie in [0, 0.5), got {self.trim!r}")
        for name in ("adaptive_power", "adaptive_eps"):
            if not is_number(getattr(self, name)) or not getattr(self, name) > 0:
                raise ValueError(f"{name} must be a positive number, got {getattr(self, name)!r}")
        self._check_velocity()
        # a run's config fingerprints the objective's plain attributes: the teacher's weights
        # enter as their hashes, so that a resume with another teacher is refused
        object.__setattr__(self, "teacher_weights", _weights_fingerprint(self.teacher))

    def _check_velocity(self) -> None:
        if self.velocity == "teacher" and self.teacher is None:
            raise ValueError("teacher is required: distillation needs a trained velocity")
        if self.velocity != "teacher" and self.teacher is not None:
            raise ValueError(
                f"teacher is given but velocity={self.velocity!r}: use method='distill'"
            )
        if self.teacher is not None and not callable(getattr(self.teacher, "velocity", None)):
            if not callable(self.teacher):
                raise ValueError("teacher must be a GenerativeModel or a callable b(t, x)")
        if self.velocity == "conditional" and self.residual != "eulerian":
            raise ValueError(
                "velocity='conditional' (MeanFlow's dI/dt) needs residual='eulerian': the "
                f"{self.residual} residual evaluates b away from the interpolant's points"
            )

    def bind(self, interpolant: Interpolant, coupling: Coupling | None) -> FlowMapObjective:
        if coupling is not None and coupling.net_options((2,)):
            raise ValueError(
                f"flow maps take no conditioning yet: train them with the independent "
                f"coupling, not {coupling!r}"
            )
        if self.trim is not None:
            return self
        return dataclasses.replace(self, trim=0.0 if interpolant.is_deterministic else 1e-3)

    def model(
        self, interpolant: Interpolant, nets: Mapping[str, Any], coupling: Coupling
    ) -> FlowMapModel:
        return FlowMapModel(interpolant, nets["flow_map"], base=coupling.base)

    def _teacher(self, cond: Tensor | None) -> Velocity:
        fn = getattr(self.teacher, "velocity", self.teacher)
        return lambda t, x: call_field(fn, t, x, cond)

    def _self_velocity(self, net: TwoTimeField, cond: Tensor | None) -> Velocity:
        return lambda t, x: call_map(net, t, t, x, cond)

    def _b(self, net: TwoTimeField, cond: Tensor | None) -> Velocity:
        return self._teacher(cond) if self.velocity == "teacher" else self._self_velocity(net, cond)

    def off_diagonal(
        self, net: TwoTimeField, times: TimePairs, x: Tensor, dx: Tensor, cond: Tensor | None
    ) -> Residual:
        """The residual of the rows with s != t (x = I_s, dx = dI_s/ds)."""
        s, t = times.s, times.t
        if self.residual == "lagrangian":
            return lagrangian_residual(net, s, t, x, cond, self._b(net, cond))
        if self.residual == "progressive":
            return progressive_residual(net, s, t, times.u, x, cond)
        if self.velocity == "conditional":
            bs = dx
        else:
            with torch.no_grad():
                bs = self._b(net, cond)(s, x)
        return eulerian_residual(net, s, t, x, cond, bs)

    def _rows(self, part: Residual) -> tuple[Tensor, Tensor]:
        """(the weighted per-row loss, the raw per-row |r|^2)."""
        raw = _squared(part.residual)
        if self.stopgrad == "target":
            per_row = _squared(part.velocity - (part.velocity - part.residual).detach())
        else:
            per_row = raw
        if self.weighting == "adaptive":
            per_row = per_row / (raw.detach() + self.adaptive_eps) ** self.adaptive_power
        return per_row, raw.detach()

    def loss(
        self,
        nets: Nets,
        interpolant: Interpolant,
        batch: CouplingSample,
        generator: torch.Generator | None = None,
        rows: slice = EVERY_ROW,
    ) -> LossTerms:
        bound = self if self.trim is not None else self.bind(interpolant, None)
        net, x0, cond = nets["flow_map"], batch.x0, batch.cond
        times = draw_pairs(
            x0.shape[0], self.diagonal, pairs=self.pairs, backward=self.backward,
            anchor=self.anchor, intermediate=self.intermediate,
            time_distribution=self.time_distribution, trim=bound.trim or 0.0,
            levels=self.levels, generator=generator, dtype=x0.dtype, device=x0.device,
        )  # fmt: skip
        sample = interpolant.sample(x0, batch.x1, times.s, generator=generator)
        times, x, dx = times.select(rows), sample.xt[rows], sample.dxt[rows]
        cond = None if cond is None else cond[rows]  # one row per x1
        total, logs = x.new_zeros(()), {}
        terms = {"diagonal": (times.diagonal, self.diagonal == 0, self.diagonal_term),
                 "residual": (~times.diagonal, self.diagonal == 1, self.off_diagonal)}  # fmt: skip
        for key, (mask, skipped, term) in terms.items():
            if skipped:
                continue
            if not bool(mask.any()):  # a small batch split over processes
                logs[key] = x.new_zeros(())
                continue
            part = term(net, times.select(mask), x[mask], dx[mask], _rows_of(cond, mask))
            per_row, raw = self._rows(part)
            total, logs[key] = total + per_row.sum(), raw.mean()
        return LossTerms(total / x.shape[0], logs)

    def diagonal_term(
        self, net: TwoTimeField, times: TimePairs, x: Tensor, dx: Tensor, cond: Tensor | None
    ) -> Residual:
        """r = v_{t,t}(x) - dx on the rows with s = t (x = I_t, dx = dI_t/dt), or
        v_{t,t}(x) - b_t(x) with a teacher's velocity b."""
        v = call_map(net, times.t, times.t, x, cond)
        if self.velocity == "teacher":
            with torch.no_grad():
                dx = self._teacher(cond)(times.t, x)
        return Residual(v, v - dx)


def _weights_fingerprint(teacher: Any) -> str | None:
    """The hashes of the teacher's tensors (its velocity network's state dict) as JSON text."""
    module = getattr(teacher, "velocity", teacher)
    if not isinstance(module, torch.nn.Module):
        return None if teacher is None else repr(teacher)
    return json.dumps(fingerprint(dict(module.state_dict())))


def _rows_of(cond: Tensor | None, rows: Tensor) -> Tensor | None:
    return None if cond is None else cond[rows]


METHODS: dict[str, dict[str, Any]] = {
    "lagrangian": {"residual": "lagrangian"},
    "eulerian": {"residual": "eulerian"},
    "progressive": {"residual": "progressive"},
    "distill": {"residual": "lagrangian", "velocity": "teacher"},
    "meanflow": {
        "residual": "eulerian",
        "velocity": "conditional",
        "stopgrad": "target",
        "weighting": "adaptive",
        "time_distribution": "logit-normal",
        "backward": False,
    },
    "shortcut": {
        "residual": "progressive",
        "pairs": "dyadic",
        "intermediate": "midpoint",
        "stopgrad": "target",
        "backward": False,
    },
}
"""The methods of :func:`~interpolants.fit_flow_map`: the options each sets (the others keep
:class:`FlowMapObjective`'s defaults); options given by the user override them."""

OPTIONS = tuple(
    f.name for f in dataclasses.fields(FlowMapObjective) if f.name not in ("method", "teacher")
)
"""The options of the objective by name (``method`` and ``teacher`` are fit_flow_map's own
arguments; the rest of its keywords go to fit's loop)."""


def flow_map_objective(method: str = "lagrangian", teacher: Any = None, **options: Any) -> (
    FlowMapObjective
):  # fmt: skip
    """The :class:`FlowMapObjective` of ``method`` (:data:`METHODS`) with ``options`` on top;
    ValueError naming ``method``, ``teacher`` or the option at fault.

    Example:
        >>> flow_map_objective("meanflow").weighting
        'adaptive'
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {tuple(METHODS)}, got {method!r}")
    if method == "distill" and teacher is None:
        raise ValueError("method='distill' needs teacher= (a trained GenerativeModel)")
    if teacher is not None and method != "distill":
        raise ValueError(f"teacher= is for method='distill', got method={method!r}")
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ValueError(f"unknown flow-map option(s) {unknown}; known: {sorted(OPTIONS)}")
    return FlowMapObjective(method=method, teacher=teacher, **{**METHODS[method], **options})
