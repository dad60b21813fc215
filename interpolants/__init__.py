"""interpolants: dynamical measure transport with stochastic interpolants."""

from . import (
    couplings,
    data,
    distributions,
    fields,
    flowmaps,
    integrate,
    losses,
    metrics,
    nn,
    samplers,
    targets,
    train,
)
from .distributions import GaussianMixture, MixtureOfGaussians, StandardNormal
from .fields import (
    GaussianMixtureFields,
    denoiser_from_score,
    score_from_denoiser,
    score_from_velocity,
    velocity_from_score,
)
from .flowmaps import FlowMapModel, fit_flow_map
from .generative import GenerativeModel, load
from .integrate import odeint, sdeint
from .interpolant import Interpolant, InterpolantSample, sample_times
from .losses import denoiser_loss, score_loss, velocity_loss
from .samplers import SampleResult, sample
from .samplers.free_energy import free_energy
from .train import fit

__version__ = "0.2.0"

__all__ = [
    "FlowMapModel",
    "GaussianMixture",
    "GaussianMixtureFields",
    "GenerativeModel",
    "Interpolant",
    "InterpolantSample",
    "MixtureOfGaussians",
    "SampleResult",
    "StandardNormal",
    "couplings",
    "data",
    "denoiser_from_score",
    "denoiser_loss",
    "distributions",
    "fields",
    "fit",
    "fit_flow_map",
    "flowmaps",
    "free_energy",
    "integrate",
    "load",
    "losses",
    "metrics",
    "nn",
    "odeint",
    "sample",
    "sample_times",
    "samplers",
    "score_from_denoiser",
    "score_from_velocity",
    "score_loss",
    "sdeint",
    "targets",
    "velocity_from_score",
    "velocity_loss",
]

# the composition root: the library's default run plots and its progress bars come from the
# app layer, set here so that no library module imports the app
# (interpolants.train.DEFAULT_ON_END, interpolants.progress.BAR_FACTORY)
from . import progress as _progress
from .app.plots import plot_run as _plot_run
from .app.progress_bars import tqdm_bar as _tqdm_bar

train.DEFAULT_ON_END = _plot_run
_progress.BAR_FACTORY = _tqdm_bar
