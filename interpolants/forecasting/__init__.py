r"""Probabilistic forecasting with stochastic interpolants and Foellmer processes (Chen,
Goldstein, Hua, Albergo, Boffi & Vanden-Eijnden, arXiv 2403.13724).

Pairs (current state x0, state one lag later x1) train the drift of an SDE that carries the
point mass at x0 to the law of x1 given x0:

    model = si.fit(x_next, base=si.couplings.Paired(x_now), fields=("drift",),
                   interpolant=si.Interpolant("quadratic", gamma="wiener"))
    ensemble = model.sample(16, cond=x_now[:1], diffusion="follmer")

- :mod:`.drift`: the drift for another diffusion g(t), the score from the drift, the Foellmer
  diffusion, the check g(0) >= sigma(0);
- :mod:`.model`: :class:`ForecastModel` (sample, rollout, save / load).
"""

from .drift import (
    DIFFUSIONS,
    check_diffusion,
    diffusion_squared,
    drift_for_diffusion,
    follmer_squared,
    score_from_drift,
)
from .model import ForecastModel, autoregress

__all__ = [
    "DIFFUSIONS",
    "ForecastModel",
    "autoregress",
    "check_diffusion",
    "diffusion_squared",
    "drift_for_diffusion",
    "follmer_squared",
    "score_from_drift",
]
