"""interpolants: dynamical measure transport with stochastic interpolants."""

from . import distributions, targets

__version__ = "0.1.0"

__all__ = ["distributions", "targets"]
