"""NETS's method configuration, checked once when built: :class:`NETSConfig`.

The run's own settings (walkers, seed, device, dtype, run folder, progress bar) stay apart,
as arguments of :func:`~.runner.run_nets` (numpyro's ``HMC(...)`` against ``MCMC(kernel,
num_warmup, ...)``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from torch import nn

from ...checks import positive_number as check_positive
from ..base import MethodConfig, check_int
from ..evidence import check_reverse

__all__ = [
    "DIVERGENCES",
    "EPS_SWEEP",
    "FEATURES",
    "FEATURES_MAX_DIM",
    "LOG_DETS",
    "LOG_DET_EXACT_MAX_DIM",
    "NETSConfig",
    "default_features",
]

DIVERGENCES = ("auto", "exact", "hutchinson")
LOG_DETS = ("auto", "exact", "hutchinson")
LOG_DET_EXACT_MAX_DIM = 50  # "auto": exact up to here (a d = 50 MLP: ~1 s per step, 2000 walkers)
EPS_SWEEP = (0.0, 0.1, 0.3, 1.0, 3.0)
FEATURES = 64  # random Fourier features of x / s, by default up to FEATURES_MAX_DIM
FEATURES_MAX_DIM = 32
_SCHEDULES = ("linear", "power", "geometric", "reverse_power")
_OBJECTIVES = ("pinn", "action")


def default_features(dim: int) -> int:
    """The drift MLP's random Fourier features of x / s when ``features`` is None: 64 up to
    d = 32, none above. In d = 2 they resolve 40 narrow modes (``gmm40``), but in d = 50 the
    64 random directions at frequency f sqrt(d) are noise to the network: on the 50-d
    mixture of 10 Gaussians the PINN loss stalled at 1.37 (training log Z -35, the drift
    cutting the weights' ESS loss by 1.01x) and fell to 0.28 without them (log Z -2.0, 8.2x;
    benchmarks/RESULTS.md). Up to d = 32 the better choice depends on the target: without
    them the drift did better on mixtures from d = 5 up, the eight schools and the funnel,
    with them on ``gmm40`` and the 32-d local_level, which keeps the threshold at 32."""
    return FEATURES if dim <= FEATURES_MAX_DIM else 0


@dataclass
class NETSConfig(MethodConfig):
    r"""Every option of the NETS method (arXiv:2410.02711), checked when built.

    Sampling run:
        steps: None (default): the sampling run is SMC's (:func:`~..ais.run_smc`) with the
            drift's Heun map between its temperatures: a pilot finds the ladder by adaptive
            tempering (conditional ESS ``cess``, 0.99) with 5 MALA moves per level, their
            step size retuned at each (``smc={"decorrelation": 0.1}``: self-tuned numbers), then
            ``batches`` (10) populations follow it with resampling, the bias check and SMC's
            heavier reruns (``smc``); the levels' times are t = beta_t^{-1}(beta). Or K: a
            uniform grid of K time steps on [0, 1] with the Langevin moves below (the paper's
            NETS estimator); the options from ``refine`` to ``eps_sweep`` and
            ``resample_threshold`` apply to this grid only.
        smc: options of the SMC run when ``steps`` is None (any :class:`~..ais.SMCConfig`
            field but base, base_scale, batches, reverse and reverse_walkers, which are NETS's
            own), e.g.
            ``{"cess": 0.999, "moves": 10}``.
        refine: up to this many pilot runs of ``sweep_walkers`` walkers (evaluations
            counted) before the sampling run, each halving every step where a pilot walker's
            Heun map was not invertible; the main run uses that grid, fixed before its walkers
            are drawn (0: none). A fold biases log Z upwards.
        eps: the diffusion eps_t: None (the eps_t tuned to MALA acceptance 0.574 during
            training), a number or a function of t, "sweep" (try ``eps_sweep`` multiples of the
            tuned eps_t on ``sweep_walkers`` walkers each and keep the one of largest ESS) or
            "adapt" (MALA steps found at t = 0 and retuned to acceptance 0.574 after every
            move, as AIS does).
        eps_scale: multiplies eps_t.
        mass_matrix: "identity" or "diag" (the walkers' variance at every step; then eps is
            in units of that variance: pass eps="adapt" or a number).
        resample: return the walkers resampled by their weights, with equal log weights.
        resample_threshold: r in [0, 1]: resample a population whenever its ESS/N falls below
            r during the run, as SMC does (0: never, the plain NETS estimator).
        batches: R independent populations of n / R walkers (default 10 when resampling or
            with ``steps=None``, else 1).
        moves: MALA moves per step of the training's simulations and of a grid run.
        schedule, schedule_power: beta_t of the path: "power" t^p (default p = 3),
            "linear", "geometric" or "reverse_power" 1 - (1 - t)^p.
        base, base_scale: the base p_0 (default ``target.transport_base``: ``target.base``
            unless that is a heavy-tailed prior) or N(0, base_scale^2 I).
        reverse: the bias check of bidirectional Monte Carlo: draws of the target ("auto":
            exact where the target has a sampler, else HMC; "exact"; "hmc"; a (draws, dim)
            tensor; None: off) are annealed back to the base, an upper bound on log Z beside
            NETS's estimate (``info.log_Z_lower`` / ``log_Z_upper``); where they disagree, a
            warning and a wider ``log_Z_stderr``. With ``steps=None`` it is SMC's own reverse
            run along the sampling run's ladder (any device); on a grid (CPU runs only),
            :func:`~interpolants.samplers.ais.bias_check`'s SMC pilot finds the levels.
        reverse_walkers: walkers of that check (default min(n, 2000)).
        log_det: of the transport steps: "exact" (unbiased weights), "hutchinson" (d times
            cheaper, biased) or "auto" (exact when dim <= 50).
        probes: Hutchinson probes (training divergence and log-det).

    Drift and training:
        objective: "pinn" (default) or "action" (action matching, b = grad phi).
        model: a trained :class:`~.model.NETSModel`: no training.
        drift: "learned" (default), or None for b = 0 (AIS with MALA moves; give eps).
        net, width, depth, block, net_options: the drift network: "mlp", "conv" (lattice
            targets), "blocks" (targets with ``block_size``), None (chosen by the target) or
            a module net(t, x); ``net_options`` go to the network's class.
        features, feature_scale: random Fourier features of x / s for the MLP (None:
            :func:`default_features`, 64 up to d = 32 and none above).
        iterations, train_walkers, train_steps, updates, batch_size, buffer, lr: training
            rounds; each simulates ``train_walkers`` walkers on a random grid of
            ``train_steps`` steps, then makes ``updates`` Adam steps (cosine decay to lr / 10)
            on minibatches of ``batch_size`` points of the last ``buffer`` simulations.
        time_weighted: divide the squared PINN residual by the running variance of dU_t/dt
            in its time bin.
        divergence, exact_max_dim: of the training loss: "exact", "hutchinson" or "auto"
            (exact when dim <= ``exact_max_dim``).
        log_every, checkpoint_every: rounds between metrics.jsonl lines and checkpoints.
    """

    steps: int | None = None
    smc: dict[str, Any] | None = None
    refine: int = 0
    eps: float | str | Callable[[float], float] | None = None
    eps_scale: float = 1.0
    mass_matrix: str = "identity"
    eps_sweep: tuple[float, ...] = EPS_SWEEP
    sweep_walkers: int = 500
    resample: bool = False
    resample_threshold: float = 0.0
    batches: int | None = None
    moves: int = 1
    schedule: str = "power"
    schedule_power: float = 3.0
    base: Any = None
    base_scale: float | None = None
    reverse: Any = "auto"
    reverse_walkers: int | None = None
    objective: str = "pinn"
    model: nn.Module | None = None
    drift: str | None = "learned"
    net: str | nn.Module | None = None
    width: int | None = None
    depth: int | None = None
    block: int | None = None
    net_options: dict[str, Any] | None = None
    features: int | None = None
    feature_scale: float = 8.0
    iterations: int = 200
    train_walkers: int = 128
    train_steps: int = 50
    updates: int = 48
    batch_size: int = 256
    buffer: int = 4
    time_weighted: bool = False
    lr: float = 3e-3
    divergence: str = "auto"
    exact_max_dim: int = 32
    log_det: str = "auto"
    probes: int = 1
    log_every: int = 10
    checkpoint_every: int = 50

    method: ClassVar[str] = "nets"

    def __post_init__(self) -> None:
        self._check_counts()
        self._check_choices()
        self._check_smc()
        self._check_eps()

    @property
    def adaptive(self) -> bool:
        """Whether the sampling run is SMC's adaptive ladder (``steps=None``)."""
        return self.steps is None

    def _check_counts(self) -> None:
        if self.steps is not None:
            self.steps = check_int("steps", self.steps, 1)
        self.refine = check_int("refine", self.refine, 0)
        self.iterations = check_int("iterations", self.iterations, 0)
        self.moves = check_int("moves", self.moves, 0)
        self.train_walkers = check_int("train_walkers", self.train_walkers, 2)
        self.train_steps = check_int("train_steps", self.train_steps, 2)
        self.updates = check_int("updates", self.updates, 0)
        self.batch_size = check_int("batch_size", self.batch_size)
        self.buffer = check_int("buffer", self.buffer)
        if self.features is not None:
            self.features = check_int("features", self.features, 0)
        self.feature_scale = check_positive("feature_scale", self.feature_scale)
        self.probes = check_int("probes", self.probes)
        self.exact_max_dim = check_int("exact_max_dim", self.exact_max_dim)
        self.log_every = check_int("log_every", self.log_every)
        self.checkpoint_every = check_int("checkpoint_every", self.checkpoint_every, 0)
        self.sweep_walkers = check_int("sweep_walkers", self.sweep_walkers, 2)
        self.lr = check_positive("lr", self.lr)
        self.eps_scale = check_positive("eps_scale", self.eps_scale, True)
        self.schedule_power = check_positive("schedule_power", self.schedule_power)
        r = self.resample_threshold
        if not (isinstance(r, (int, float)) and 0 <= r <= 1):
            raise ValueError(f"resample_threshold must be in [0, 1], got {r!r}")
        if self.batches is None:
            self.batches = 10 if r > 0 or self.steps is None else 1
        self.batches = check_int("batches", self.batches)

    def _check_choices(self) -> None:
        for name, value, known in (
            ("schedule", self.schedule, _SCHEDULES),
            ("objective", self.objective, _OBJECTIVES),
            ("divergence", self.divergence, DIVERGENCES),
            ("log_det", self.log_det, LOG_DETS),
            ("mass_matrix", self.mass_matrix, ("identity", "diag")),
        ):
            if value not in known:
                raise ValueError(f"{name} must be one of {known}, got {value!r}")
        if self.drift not in ("learned", None):
            raise ValueError(f"drift must be 'learned' or None (b = 0), got {self.drift!r}")
        self.reverse = check_reverse(self.reverse)
        if self.reverse_walkers is not None:
            self.reverse_walkers = check_int("reverse_walkers", self.reverse_walkers, 2)
        from .model import NETSModel

        if self.model is not None and not isinstance(self.model, NETSModel):
            raise ValueError(f"model must be a NETSModel, got {type(self.model).__name__}")

    def _check_eps(self) -> None:
        eps = self.eps
        if isinstance(eps, str) and eps not in ("sweep", "adapt"):
            raise ValueError(
                f"eps must be None, a number, a function of t, 'sweep' or 'adapt', got {eps!r}"
            )
        if self.mass_matrix == "diag" and (eps is None or eps == "sweep"):
            raise ValueError(
                "mass_matrix='diag' measures eps in units of the walkers' variance, not the "
                "trained eps_t: pass eps='adapt' or a number"
            )
        if eps == "adapt" and self.eps_scale != 1:
            raise ValueError(
                f"eps='adapt' tunes the step itself; eps_scale must be 1, got {self.eps_scale}"
            )
        sweep = self.eps_sweep
        if not sweep or not all(isinstance(e, (int, float)) and e >= 0 for e in sweep):
            raise ValueError(f"eps_sweep must be non-negative numbers, got {sweep!r}")
        if isinstance(eps, (int, float)):
            check_positive("eps", eps, allow_zero=True)
        if self.drift is None and self.steps is not None and (eps is None or eps == "sweep"):
            raise ValueError(
                "drift=None (b = 0) has no trained eps_t: pass eps= a number or 'adapt'"
            )

    def _check_smc(self) -> None:
        """``smc`` names SMCConfig options (not NETS's own); the grid's options need a grid."""
        from ..ais import SMCConfig

        options = self.smc or {}
        if not isinstance(options, dict):
            raise ValueError(f"smc must be a dict of SMC options, got {options!r}")
        own = sorted(set(options) & {"base", "base_scale", "batches", "reverse",
                                     "reverse_walkers"})  # fmt: skip
        if own:
            raise ValueError(f"smc: {', '.join(own)} are NETS's own options; pass them to nets")
        if self.steps is not None:
            if options:
                raise ValueError("smc options apply to steps=None (the SMC ladder), not a grid")
            return
        try:  # checked now, before any training
            SMCConfig.check_names(options, "smc")
            SMCConfig(**options)
        except ValueError as error:
            raise ValueError(f"smc: {error}") from None
        grid_only = {"refine": (self.refine, 0), "eps": (self.eps, None),
                     "eps_scale": (self.eps_scale, 1.0), "mass_matrix": (self.mass_matrix,
                     "identity"), "resample_threshold": (self.resample_threshold, 0.0),
                     "eps_sweep": (self.eps_sweep, EPS_SWEEP)}  # fmt: skip
        given = [k for k, (v, default) in grid_only.items() if v != default]
        if given:
            verb = "applies" if len(given) == 1 else "apply"
            raise ValueError(
                f"{', '.join(given)} {verb} to a grid run only: pass steps=K (e.g. steps=100), "
                "or with steps=None give the SMC run's options as smc={...}"
            )
