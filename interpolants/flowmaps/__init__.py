r"""Few-step generation with flow maps (arXiv 2406.07507, 2505.18825).

- :mod:`.maps`: the math: X_{s,t}(x) = x + (t - s) v_{s,t}(x), jumps, their log-determinants,
  and the exact map between Gaussians (:class:`GaussianFlowMap`).
- :mod:`.objectives`: the self-distillation objectives (Lagrangian, Eulerian, progressive),
  distillation, MeanFlow and shortcut as :class:`FlowMapObjective` objects for ``fit``'s loop.
- :mod:`.model`: :class:`FlowMapModel`: sample in k jumps, jump, log_prob, round_trip, save.
- :mod:`.training`: :func:`fit_flow_map`.
"""

from .maps import GaussianFlowMap, compose, flow_map, jump_log_det, jump_times
from .model import FlowMapModel
from .objectives import (
    METHODS,
    FlowMapObjective,
    Residual,
    TimePairs,
    draw_pairs,
    eulerian_residual,
    flow_map_objective,
    lagrangian_residual,
    progressive_residual,
)
from .training import default_flow_map_net, fit_flow_map

__all__ = [
    "METHODS",
    "FlowMapModel",
    "FlowMapObjective",
    "GaussianFlowMap",
    "Residual",
    "TimePairs",
    "compose",
    "default_flow_map_net",
    "draw_pairs",
    "eulerian_residual",
    "fit_flow_map",
    "flow_map",
    "flow_map_objective",
    "jump_log_det",
    "jump_times",
    "lagrangian_residual",
    "progressive_residual",
]
