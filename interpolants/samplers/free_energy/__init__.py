"""Free-energy differences Delta F = -log(Z_b / Z_a) between two unnormalised densities:
Bennett's acceptance ratio, Jarzynski (forward / reverse, annealed), and escorted estimates
through a learned transport (FEAT, arXiv:2504.11516). See docs/free_energy.md."""

from .escort import Affine, EscortField, HeunTransport, Quantile, fit_escort
from .estimators import bar, bar_equation, jarzynski
from .runner import METHODS, FreeEnergyConfig, FreeEnergyResult, equilibrium_draws, free_energy

__all__ = [
    "METHODS",
    "Affine",
    "EscortField",
    "FreeEnergyConfig",
    "FreeEnergyResult",
    "HeunTransport",
    "Quantile",
    "bar",
    "bar_equation",
    "equilibrium_draws",
    "fit_escort",
    "free_energy",
    "jarzynski",
]
