r"""Samplers of discrete targets (:class:`~interpolants.targets.DiscreteTarget`): single-site
moves (:mod:`.moves`), AIS, SMC and Markov chains by the one annealing engine (:mod:`.runs`),
and LEAPS, the engine with a learned continuous-time Markov chain (:mod:`.leaps`,
arXiv:2502.10843). Importing it registers the methods "ais", "smc", "metropolis" and
"leaps", and the cluster moves "swendsen-wang" and "wolff" (:mod:`.cluster`) for
discrete targets with :func:`~..api.register_method`.
"""

import functools

from ..api import register_method
from .cluster import run_cluster, swendsen_wang, wolff
from .ctmc import CTMCStep, feynman_kac_rate, leaps_loss, split_rates
from .leaps import LEAPSConfig, LEAPSModel, run_leaps
from .moves import SiteMoves, heat_bath, metropolis_sites, sweep
from .runs import (
    DiscreteAISConfig,
    DiscreteSMCConfig,
    SiteMCMCConfig,
    is_discrete,
    run_discrete_ais,
    run_discrete_smc,
    run_site_mcmc,
)

register_method("ais", run_discrete_ais, discrete=True)
register_method("smc", run_discrete_smc, discrete=True)
register_method("metropolis", run_site_mcmc, discrete=True)
register_method("leaps", run_leaps, discrete=True)
register_method("swendsen-wang", run_cluster, discrete=True)
register_method("wolff", functools.partial(run_cluster, move="wolff"), discrete=True)

__all__ = [
    "CTMCStep",
    "DiscreteAISConfig",
    "DiscreteSMCConfig",
    "LEAPSConfig",
    "LEAPSModel",
    "SiteMCMCConfig",
    "SiteMoves",
    "feynman_kac_rate",
    "heat_bath",
    "is_discrete",
    "leaps_loss",
    "metropolis_sites",
    "run_cluster",
    "run_discrete_ais",
    "run_discrete_smc",
    "run_leaps",
    "run_site_mcmc",
    "split_rates",
    "sweep",
    "swendsen_wang",
    "wolff",
]
