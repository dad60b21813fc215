"""Unnormalised target densities (docs/benchmarks.md) for the samplers.

``get(name, **options)`` builds a named target; ``names()`` lists them. Every target is a
:class:`Target` with ``log_prob``, ``grad_log_prob``, ``log_Z`` (None where unknown),
``sample`` (where exact sampling is possible), a recommended ``base`` and ``references``.
"""

from .base import Target
from .discrete import DiscreteTarget, UniformDiscrete
from .funnel import Funnel
from .gmm import GaussianMixture, gaussian_mixture_family, gmm40
from .hierarchical import EightSchools, eight_schools_reference
from .item_response import ItemResponse, item_response_matrix
from .many_well import ManyWell, double_well_log_Z
from .particles import Particles, UniformTorus
from .phi4 import BridgeNormal, ChainReference, Phi4, Phi4Chain, chain_reference
from .radial_velocity import (
    OrbitParameters,
    OrbitPrior,
    RadialVelocity,
    RVData,
    load_radial_velocity_data,
    solve_kepler,
)
from .registry import get, names
from .regression import LogisticRegression, load_breast_cancer_data
from .spins import (
    Ising,
    Potts,
    enumerate_moments,
    enumerate_states,
    kaufman_energy_per_site,
    kaufman_log_Z,
    lattice_colours,
    transfer_matrix_log_Z,
)
from .state_space import LocalLevel, local_level_reference

__all__ = [
    "BridgeNormal",
    "ChainReference",
    "DiscreteTarget",
    "EightSchools",
    "Funnel",
    "GaussianMixture",
    "Ising",
    "ItemResponse",
    "LocalLevel",
    "LogisticRegression",
    "ManyWell",
    "OrbitParameters",
    "OrbitPrior",
    "Particles",
    "Phi4",
    "Phi4Chain",
    "Potts",
    "RVData",
    "RadialVelocity",
    "Target",
    "UniformDiscrete",
    "UniformTorus",
    "chain_reference",
    "double_well_log_Z",
    "eight_schools_reference",
    "enumerate_moments",
    "enumerate_states",
    "gaussian_mixture_family",
    "get",
    "gmm40",
    "item_response_matrix",
    "kaufman_energy_per_site",
    "kaufman_log_Z",
    "lattice_colours",
    "load_breast_cancer_data",
    "load_radial_velocity_data",
    "local_level_reference",
    "names",
    "solve_kepler",
    "transfer_matrix_log_Z",
]
