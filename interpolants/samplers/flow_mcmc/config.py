"""Flow-MCMC's method configuration, checked once when built: :class:`FlowMCMCConfig`.

The run's own settings (target, draws, seed, walkers' starting points and number, dtype,
progress bar, generator) stay apart, as arguments of :func:`~.runner.run_flow_mcmc`,
:func:`~.runner.run_is` and :func:`~.runner.train_transport`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from torch import Tensor

from ...checks import is_number
from ..adaptation import MASS_MATRICES
from ..base import MethodConfig, check_fraction, check_int
from ..evidence import check_reverse
from .transport import TRANSPORTS, DefensiveMixture, Transport

__all__ = ["FlowMCMCConfig"]

# options that only one entry point reads (the others refuse them)
_ONLY_FOR = {"thin": "flow-mcmc", "batches": "is", "reverse": "is", "reverse_walkers": "is"}


@dataclass
class FlowMCMCConfig(MethodConfig):
    r"""Every option of flow-MCMC and of importance sampling through its transport
    (arXiv:2105.12603, arXiv:2107.08001), checked when built.

    Transport:
        transport: "coupling" (RealNVP by maximum likelihood, :mod:`interpolants.nn.realnvp`),
            "interpolant" (a velocity field by the interpolant loss, q by the ODE), or a
            :class:`~.transport.Transport` (e.g. ``result.info["transport"]`` of an earlier
            run; it keeps training unless ``max_rounds=0``).
        transport_options: keyword options of :class:`~.transport.CouplingTransport` (layers,
            width, lr) or :class:`~.transport.InterpolantTransport` (width, depth, lr,
            ode_steps).
        base: rho_b (``sample``, differentiable ``log_prob``); default ``target.transport_base``
            (e.g. the Brownian bridge of phi4_1d, the prior of radial_velocity).

    Training (see :func:`~.runner.train_transport`):
        warmup: MALA adaptation iterations before training (step size, preconditioner).
        local_steps: MALA moves between global moves.
        train_steps, batch_size, buffer: fitting steps per round, their minibatch, and how many
            recent rounds of training positions the minibatches come from.
        anchors: walkers that stay in their initial mode during training, started in turn at the
            walkers' starting points (equal numbers per initial mode); their positions are the
            training data, so the transport covers every initial mode whatever its weight
            (default: as many as the walkers; 0 trains on the walkers, as in the papers).
        defensive: lam in [0, 1]: propose from (1 - lam) T#rho_b + lam x (one Gaussian per
            initial mode, fitted to its anchors), :class:`~.transport.DefensiveMixture`;
            default 0.
        defensive_scale: multiplies the Gaussians' standard deviations (> 0, default 1): a
            scale > 1 covers tails the anchors have not yet explored.
        max_rounds, min_rounds, plateau_window, plateau_tol: the training length and its
            stopping rule (the acceptance plateau).
        step_size, target_accept, mass_matrix: the MALA warm-up, as in
            :func:`~..api.run_mala` ("diag" by default: a dense covariance pooled over
            separated modes would mislead).

    Production:
        thin: flow-MCMC keeps every ``thin``-th production iteration ("flow-mcmc" only).
        batches: importance sampling makes its draws in this many pieces (memory; "is" only).
        reverse: importance sampling's bias check ("is" only; :func:`~.runner.run_is`): draws
            of the target, as for AIS (:func:`~..evidence.posterior_draws`: "auto" exact
            draws where the target has them, else the library's HMC; "exact", "hmc", a
            tensor of draws, or None for no check). Default "auto".
        reverse_walkers: draws of that check (default min(n, 2000)).
    """

    transport: str | Transport = "coupling"
    transport_options: dict[str, Any] | None = None
    base: Any = None
    warmup: int = 200
    local_steps: int = 5
    train_steps: int = 5
    batch_size: int = 256
    buffer: int = 20
    anchors: int | None = None
    defensive: float = 0.0
    defensive_scale: float = 1.0
    max_rounds: int = 500
    min_rounds: int = 50
    plateau_window: int = 25
    plateau_tol: float = 0.05
    step_size: float | None = None
    target_accept: float = 0.574
    mass_matrix: str | Tensor = "diag"
    thin: int = 1
    batches: int = 1
    reverse: Any = "auto"
    reverse_walkers: int | None = None

    method: ClassVar[str] = "flow-mcmc"

    @classmethod
    def reads(cls, name: str, method: str | None) -> bool:
        """``thin`` is flow-MCMC's, ``batches`` and the bias check (``reverse``,
        ``reverse_walkers``) importance sampling's; the rest is shared."""
        return method is None or _ONLY_FOR.get(name, method) == method

    def __post_init__(self) -> None:
        self._check_counts()
        self._check_numbers()
        self._check_choices()

    def _check_counts(self) -> None:
        self.warmup = check_int("warmup", self.warmup, 0)
        self.local_steps = check_int("local_steps", self.local_steps, 0)
        self.train_steps = check_int("train_steps", self.train_steps, 0)
        self.batch_size = check_int("batch_size", self.batch_size)
        self.buffer = check_int("buffer", self.buffer)
        self.max_rounds = check_int("max_rounds", self.max_rounds, 0)
        self.min_rounds = check_int("min_rounds", self.min_rounds, 0)
        self.plateau_window = check_int("plateau_window", self.plateau_window)
        if self.anchors is not None:
            self.anchors = check_int("anchors", self.anchors, 0)
        self.thin = check_int("thin", self.thin)
        self.batches = check_int("batches", self.batches)
        if self.reverse_walkers is not None:
            self.reverse_walkers = check_int("reverse_walkers", self.reverse_walkers, 2)

    def _check_numbers(self) -> None:
        self.target_accept = check_fraction("target_accept", self.target_accept)
        lam, scale, tol, eps = (
            self.defensive,
            self.defensive_scale,
            self.plateau_tol,
            self.step_size,
        )
        if not (is_number(lam) and 0 <= lam <= 1):
            raise ValueError(f"defensive must be a number in [0, 1], got {lam!r}")
        if not (is_number(scale) and scale > 0):
            raise ValueError(f"defensive_scale must be a positive number, got {scale!r}")
        if not isinstance(tol, (int, float)) or tol < 0:
            raise ValueError(f"plateau_tol must be a number >= 0, got {tol!r}")
        if eps is not None and not (isinstance(eps, (int, float)) and eps > 0):
            raise ValueError(f"step_size must be a positive number or None, got {eps!r}")
        own_mixture = isinstance(self.transport, DefensiveMixture)
        if lam > 0 and self.anchors == 0 and self.max_rounds > 0 and not own_mixture:
            raise ValueError("defensive > 0 needs anchors > 0 (the Gaussians are fitted to them)")

    def _check_choices(self) -> None:
        self.reverse = check_reverse(self.reverse)
        t = self.transport
        if isinstance(t, str) and t not in TRANSPORTS:
            raise ValueError(f"transport must be one of {TRANSPORTS} or a Transport, got {t!r}")
        if not isinstance(t, (str, Transport)):
            raise ValueError(
                "transport must be 'coupling', 'interpolant' or an object with "
                "sample_with_log_prob, log_prob and fit_step"
            )
        m = self.mass_matrix
        if isinstance(m, str) and m not in MASS_MATRICES:
            raise ValueError(f"mass_matrix must be one of {MASS_MATRICES} or a tensor, got {m!r}")
        opts = self.transport_options
        if opts is not None and not isinstance(opts, dict):
            raise ValueError(f"transport_options must be a dict, got {type(opts).__name__}")
        b = self.base
        if b is not None and not (callable(getattr(b, "sample", None))
                                  and callable(getattr(b, "log_prob", None))):  # fmt: skip
            raise ValueError("base must have sample(n, generator) and log_prob(x)")
