r"""Samplers for unnormalised targets rho* = exp(log_prob) / Z: MCMC, AIS and SMC.

``sample(target, method=..., n=..., seed=..., init=None, **options)`` is the entry point
(methods "mala", "hmc", "ais", "smc", "nets", "flow-mcmc", "is"; more with
:func:`register_method`). The kernels underneath are BlackJAX-style:
``kernel = mala(log_density, step_size)`` or
``hmc(log_density, step_size, inverse_mass_matrix, num_steps)``, then
``state = kernel.init(x)`` and ``state, info = kernel.step(generator, state)`` (``Info``
here is that step's record). A run's ``SampleResult.info`` is a typed, read-only mapping from
:mod:`.info` (base :class:`.info.Info`): :class:`MCMCInfo`, :class:`HMCInfo`,
:class:`AnnealingInfo`, :class:`NETSInfo`, :class:`FlowMCMCInfo`, :class:`ImportanceInfo`.
"""

from . import diagnostics
from .adaptation import (
    dual_averaging_init,
    dual_averaging_update,
    find_reasonable_step_size,
    warmup_schedule,
    window_adaptation,
)
from .ais import (
    AnnealedDensity,
    next_temperature,
    run_ais,
    run_smc,
    systematic_resample,
    temperature_schedule,
)
from .api import METHODS, register_method, run_hmc, run_mala, sample
from .base import CountedDensity, Evaluation, GaussianMetric, Info, Kernel, State
from .diagnostics import ConvergenceWarning, convergence_warnings
from .discrete import run_discrete_ais, run_discrete_smc, run_leaps, run_site_mcmc
from .flow_mcmc import run_flow_mcmc, run_is  # registers "flow-mcmc" and "is"
from .hmc import hmc, leapfrog
from .info import (
    AnnealingInfo,
    ChainInfo,
    FlowMCMCInfo,
    HMCInfo,
    ImportanceInfo,
    MCMCInfo,
    NETSInfo,
    TrainingInfo,
    TransportInfo,
)
from .mala import mala
from .nets import NETSModel, run_nets
from .result import SampleResult

__all__ = [
    "METHODS",
    "AnnealedDensity",
    "AnnealingInfo",
    "ChainInfo",
    "ConvergenceWarning",
    "CountedDensity",
    "Evaluation",
    "FlowMCMCInfo",
    "GaussianMetric",
    "HMCInfo",
    "ImportanceInfo",
    "Info",
    "Kernel",
    "MCMCInfo",
    "NETSInfo",
    "NETSModel",
    "SampleResult",
    "State",
    "TrainingInfo",
    "TransportInfo",
    "convergence_warnings",
    "diagnostics",
    "dual_averaging_init",
    "dual_averaging_update",
    "find_reasonable_step_size",
    "hmc",
    "leapfrog",
    "mala",
    "next_temperature",
    "register_method",
    "run_ais",
    "run_discrete_ais",
    "run_discrete_smc",
    "run_flow_mcmc",
    "run_hmc",
    "run_is",
    "run_leaps",
    "run_mala",
    "run_nets",
    "run_site_mcmc",
    "run_smc",
    "sample",
    "systematic_resample",
    "temperature_schedule",
    "warmup_schedule",
    "window_adaptation",
]
