r"""Lattice spin models on the L x L torus: the Ising (``ising``) and Potts (``potts``) targets.

Sites are numbered row-major, i = row * L + column; a state is a float tensor (n, L * L).
Bonds are counted as the periodic formula gives, sum over sites of (bond to the right) +
(bond below), 2 L^2 bonds in all: on L = 2 each pair of neighbours is joined twice (both
directions wrap onto the same site) and the density, ratios and exact log Z all count both.

Exact references: log Z by Kaufman's formula (Ising, h = 0) or the transfer matrix
(:mod:`.spins_exact`); E|m|, E m^2, chi and the energy per site on L = 16 from long
Swendsen-Wang runs (:data:`_ISING_REFERENCES`, :data:`_POTTS_REFERENCES`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..checks import finite_float, int_at_least, positive_number
from .discrete import DiscreteTarget
from .spins_exact import (
    enumerate_moments,
    enumerate_states,
    kaufman_energy_per_site,
    kaufman_log_Z,
    transfer_matrix_log_Z,
)

__all__ = [
    "Ising",
    "Potts",
    "enumerate_moments",
    "enumerate_states",
    "kaufman_energy_per_site",
    "kaufman_log_Z",
    "lattice_colours",
    "transfer_matrix_log_Z",
]

#: The largest transfer matrix (q^L rows) a target builds for its log Z on construction
#: (about a second in float64 on one core).
AUTO_TRANSFER = 2187

#: Reference observables of :class:`Ising` (h = 0, J = 1), keyed by (L, beta), and of
#: :class:`Potts`, keyed by (L, q, beta) (beta matched to 1e-9): E|m|, E m^2,
#: chi = N (E m^2 - (E|m|)^2) and the energy per site e, with Monte Carlo standard errors.
#: Made by ``OMP_NUM_THREADS=1 python benchmarks/references/ising.py`` (2026-12-05, 7 minutes
#: on one core): 256 Swendsen-Wang chains
#: (:func:`~interpolants.samplers.discrete.cluster.swendsen_wang`)
#: in float64 from uniform states, 500 warm-up sweeps, then 5000 sweeps per chain, all kept.
#: Errors: batch means over the 256 chains for E|m|, E m^2 and e (the library's IAT-corrected
#: MCSE agrees within 5 %), jackknife over chains for chi. Diagnostics: split R-hat of |m| and
#: e <= 1.0032; integrated autocorrelation times of |m| (in sweeps) 1.2, 6.0 and 3.5 (Ising,
#: beta = 0.3, 0.4407, 0.6), 16.9 and 1.7 (Potts, beta_c and 0.8). Check: the Ising energies
#: differ from Kaufman's exact -(1/N) d log Z / d beta (-0.704533, -1.453167, -1.909086) by
#: -0.08, 0.76 and -0.46 standard errors.
_ISING_REFERENCES: dict[tuple[int, float], dict] = {
    (16, 0.3): {
        "abs_magnetisation": 0.13502,
        "abs_magnetisation_stderr": 0.0001,
        "magnetisation_sq": 0.0282843,
        "magnetisation_sq_stderr": 3.8e-05,
        "susceptibility": 2.57384,
        "susceptibility_stderr": 0.0037,
        "energy_per_site": -0.704545,
        "energy_per_site_stderr": 0.00015,
        "observables_source": "Swendsen-Wang, 256 chains x 5000 sweeps; "
        "benchmarks/references/ising.py",
        "date": "2026-12-05",
    },
    (16, 0.4407): {
        "abs_magnetisation": 0.713338,
        "abs_magnetisation_stderr": 0.00042,
        "magnetisation_sq": 0.545165,
        "magnetisation_sq_stderr": 0.00049,
        "susceptibility": 9.29645,
        "susceptibility_stderr": 0.033,
        "energy_per_site": -1.45287,
        "energy_per_site_stderr": 0.00039,
        "observables_source": "Swendsen-Wang, 256 chains x 5000 sweeps; "
        "benchmarks/references/ising.py",
        "date": "2026-12-05",
    },
    (16, 0.6): {
        "abs_magnetisation": 0.973642,
        "abs_magnetisation_stderr": 3.3e-05,
        "magnetisation_sq": 0.948359,
        "magnetisation_sq_stderr": 6.3e-05,
        "susceptibility": 0.0975204,
        "susceptibility_stderr": 0.00036,
        "energy_per_site": -1.90913,
        "energy_per_site_stderr": 9.7e-05,
        "observables_source": "Swendsen-Wang, 256 chains x 5000 sweeps; "
        "benchmarks/references/ising.py",
        "date": "2026-12-05",
    },
}

_POTTS_REFERENCES: dict[tuple[int, int, float], dict] = {
    (16, 3, 1.005052538742381): {
        "abs_magnetisation": 0.7094,
        "abs_magnetisation_stderr": 0.00065,
        "magnetisation_sq": 0.536594,
        "magnetisation_sq_stderr": 0.00079,
        "susceptibility": 8.53643,
        "susceptibility_stderr": 0.042,
        "energy_per_site": -1.62111,
        "energy_per_site_stderr": 0.00045,
        "observables_source": "Swendsen-Wang, 256 chains x 5000 sweeps; "
        "benchmarks/references/ising.py",
        "date": "2026-12-05",
    },
    (16, 3, 0.8): {
        "abs_magnetisation": 0.141181,
        "abs_magnetisation_stderr": 9.7e-05,
        "magnetisation_sq": 0.0268958,
        "magnetisation_sq_stderr": 3.7e-05,
        "susceptibility": 1.7827,
        "susceptibility_stderr": 0.0033,
        "energy_per_site": -1.16126,
        "energy_per_site_stderr": 0.00011,
        "observables_source": "Swendsen-Wang, 256 chains x 5000 sweeps; "
        "benchmarks/references/ising.py",
        "date": "2026-12-05",
    },
}


def _reference(table: dict, key: tuple) -> dict:
    """The entry of ``table`` whose key equals ``key`` (the last element, beta, to 1e-9)."""
    for k, v in table.items():
        if k[:-1] == key[:-1] and abs(k[-1] - key[-1]) < 1e-9:
            return dict(v)
    return {"observables": "not measured for these parameters (benchmarks/references/ising.py)"}


def lattice_colours(L: int) -> list[Tensor]:
    r"""A proper colouring of the L x L torus as boolean masks (L * L,).

    colour(r, c) = (g(r) + g(c)) mod k with g a proper colouring of the cycle C_L
    (g(i) = i mod 2, and g(L - 1) = 2 when L is odd): neighbours differ in one coordinate,
    so in g and in the colour. Even L: the checkerboard (k = 2); odd L: k = 3 colours (the
    minimum: a row is an odd cycle).
    """
    L = int_at_least("L", L, 2)
    g = torch.arange(L) % 2
    k = 2
    if L % 2:
        g[-1], k = 2, 3
    colour = ((g[:, None] + g[None, :]) % k).flatten()
    return [colour == c for c in range(k)]


class _Lattice(DiscreteTarget):
    """The shared parts of the L x L periodic spin models."""

    L: int
    beta: float

    def _grid(self, x: Tensor) -> Tensor:
        return x.reshape(-1, self.L, self.L)

    def magnetisation(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def abs_magnetisation(self, x: Tensor, log_weights: Tensor | None = None) -> Tensor:
        """E|m| over the samples (self-normalised when log importance weights are given)."""
        return _weighted_mean(self.magnetisation(x).abs(), log_weights)

    def susceptibility(self, x: Tensor, log_weights: Tensor | None = None) -> Tensor:
        r"""chi = N (E m^2 - (E|m|)^2) over the samples, N = L^2 (the connected
        susceptibility of |m|, finite in a finite box at every beta; N E m^2 is the
        two-point susceptibility); self-normalised with log importance weights."""
        m = self.magnetisation(x)
        mean_sq = _weighted_mean(m.square(), log_weights)
        return self.dim * (mean_sq - _weighted_mean(m.abs(), log_weights).square())


def _weighted_mean(values: Tensor, log_weights: Tensor | None) -> Tensor:
    if log_weights is None:
        return values.mean()
    return (torch.softmax(log_weights.to(values), 0) * values).sum()


class Ising(_Lattice):
    r"""The 2D Ising model on the L x L torus (Onsager, Phys. Rev. 65, 117 (1944)).

    log rho(s) = beta (J sum_<ij> s_i s_j + h sum_i s_i), s in {-1, +1}^{L^2}, the sum over
    nearest-neighbour bonds counted once each (see the module note for L = 2). The energy is
    H = -log rho / beta, and :meth:`energy_per_site` is H / N. Flipping site i to v changes
    the log density by R_i(v) = beta (v - s_i) (J sum_{j ~ i} s_j + h), zero for v = s_i
    (four neighbours by torch.roll, on L = 2 the same site twice); values are ordered
    [-1, +1]. Colours: the checkerboard for even L, three colours for odd L
    (:func:`lattice_colours`). Critical point at h = 0: beta_c J = log(1 + sqrt 2) / 2
    (:attr:`beta_c`).

    log Z: Kaufman's exact formula when h = 0 (:func:`kaufman_log_Z`, any L; J < 0 on odd L
    goes to the transfer matrix), the transfer matrix (:func:`transfer_matrix_log_Z`) when
    h != 0 and 2^L <= 2187, else None. ``references`` holds Swendsen-Wang reference values
    of E|m|, E m^2, chi and e for L = 16, h = 0, J = 1 at beta = 0.3, 0.4407 and 0.6.

    Arguments:
        L: the lattice side (integer >= 2); dim = L * L.
        beta: the inverse temperature (finite, >= 0).
        h: the external field (finite).
        J: the coupling (finite; J > 0 ferromagnetic).
        dtype: float32 or float64 of the states (default: torch's default dtype).
    """

    def __init__(
        self,
        L: int = 16,
        beta: float = 0.4407,
        h: float = 0.0,
        J: float = 1.0,
        dtype: torch.dtype | None = None,
    ):
        self.L = int_at_least("L", L, 2)
        self.beta = positive_number("beta", beta, allow_zero=True)
        self.h, self.J = finite_float("h", h), finite_float("J", J)
        refs: dict = {"reference": "Onsager 1944; Kaufman 1949"}
        if self.h == 0 and not (self.J < 0 and self.L % 2):
            log_Z = kaufman_log_Z(self.L, self.beta, self.J)
            refs["log_Z_source"] = "Kaufman's exact formula (kaufman_log_Z)"
            if self.beta >= 2e-4:
                refs["energy_per_site_exact"] = kaufman_energy_per_site(L, self.beta, self.J)
        elif 2**self.L <= AUTO_TRANSFER:
            log_Z = transfer_matrix_log_Z(self.L, self.beta, self.J, self.h)
            refs["log_Z_source"] = "transfer matrix in float64 (transfer_matrix_log_Z)"
        else:
            log_Z = None
            refs["log_Z_source"] = "unknown (h != 0 or frustrated, and L too large)"
        if self.J == 1.0 and self.h == 0:
            refs.update(_reference(_ISING_REFERENCES, (self.L, self.beta)))
        refs["log_Z"] = log_Z
        super().__init__(
            self._log_prob,
            dim=self.L * self.L,
            values=[-1.0, 1.0],
            colours=lattice_colours(self.L),
            log_Z=log_Z,
            name="ising",
            references=refs,
            dtype=dtype,
        )

    @property
    def beta_c(self) -> float:
        """The critical inverse temperature at h = 0: log(1 + sqrt 2) / (2 |J|) (inf if J = 0)."""
        return math.log1p(math.sqrt(2)) / (2 * abs(self.J)) if self.J else math.inf

    def _bonds(self, s: Tensor) -> Tensor:
        return (s * (s.roll(-1, 1) + s.roll(-1, 2))).flatten(1).sum(1)

    def _log_prob(self, x: Tensor) -> Tensor:
        s = self._grid(x)
        return self.beta * (self.J * self._bonds(s) + self.h * s.flatten(1).sum(1))

    def log_prob_and_ratios(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(log rho(x) (n,), R (n, dim, 2)): R[:, i, c] = beta (v_c - s_i) (J nb_i + h)."""
        self._check_x(x)
        s = self._grid(x)
        nb = s.roll(1, 1) + s.roll(-1, 1) + s.roll(1, 2) + s.roll(-1, 2)
        field = (self.J * nb + self.h).flatten(1)
        R = self.beta * (self.values.to(x) - x.unsqueeze(-1)) * field.unsqueeze(-1)
        return self._log_prob(x), R

    def magnetisation(self, x: Tensor) -> Tensor:
        """m = (1/N) sum_i s_i per state: (n,)."""
        self._check_x(x)
        return x.mean(1)

    def energy_per_site(self, x: Tensor) -> Tensor:
        """e = H / N = -(J sum_<ij> s_i s_j + h sum_i s_i) / N per state: (n,)."""
        self._check_x(x)
        s = self._grid(x)
        return -(self.J * self._bonds(s) + self.h * s.flatten(1).sum(1)) / self.dim


class Potts(_Lattice):
    r"""The q-state Potts model on the L x L torus (Wu, Rev. Mod. Phys. 54, 235 (1982)).

    log rho(s) = beta sum_<ij> [s_i = s_j], s in {0, ..., q - 1}^{L^2} (bonds as in the
    module note), H = -sum_<ij> [s_i = s_j], :meth:`energy_per_site` = H / N. Setting site
    i to c changes the log density by R_i(c) = beta (n_i(c) - n_i(s_i)), n_i(c) the number
    of neighbours of i with value c. Colours as :class:`Ising`. Critical point
    beta_c = log(1 + sqrt q) (:attr:`beta_c`; continuous for q <= 4, first order above).
    Order parameter :meth:`magnetisation` = (q max_c N_c / N - 1) / (q - 1), N_c the
    number of sites with value c (1 when ordered, about 0 when disordered).

    log Z by the transfer matrix when q^L <= 2187 (:func:`transfer_matrix_log_Z`), else
    None. ``references`` holds Swendsen-Wang reference values for L = 16, q = 3 at
    beta = beta_c and 0.8 where measured.

    Arguments:
        L: the lattice side (integer >= 2).
        q: the number of states (integer >= 2; q = 2 is Ising at beta_Ising = beta / 2).
        beta: the inverse temperature (finite, >= 0).
        dtype: float32 or float64 of the states (default: torch's default dtype).
    """

    def __init__(
        self, L: int = 16, q: int = 3, beta: float = 1.0, dtype: torch.dtype | None = None
    ):
        self.L = int_at_least("L", L, 2)
        self.n_states = int_at_least("q", q, 2)
        self.beta = positive_number("beta", beta, allow_zero=True)
        refs: dict = {"reference": "Wu 1982"}
        if self.n_states**self.L <= AUTO_TRANSFER:
            log_Z = transfer_matrix_log_Z(self.L, self.beta, q=self.n_states)
            refs["log_Z_source"] = "transfer matrix in float64 (transfer_matrix_log_Z)"
        else:
            log_Z = None
            refs["log_Z_source"] = "unknown (q^L too large for the transfer matrix)"
        refs.update(_reference(_POTTS_REFERENCES, (self.L, self.n_states, self.beta)))
        refs["log_Z"] = log_Z
        super().__init__(
            self._log_prob,
            dim=self.L * self.L,
            values=[float(c) for c in range(self.n_states)],
            colours=lattice_colours(self.L),
            log_Z=log_Z,
            name="potts",
            references=refs,
            dtype=dtype,
        )

    @property
    def beta_c(self) -> float:
        """The critical inverse temperature log(1 + sqrt q)."""
        return math.log1p(math.sqrt(self.n_states))

    def _bonds(self, s: Tensor) -> Tensor:
        same = (s == s.roll(-1, 1)).to(s.dtype) + (s == s.roll(-1, 2)).to(s.dtype)
        return same.flatten(1).sum(1)

    def _log_prob(self, x: Tensor) -> Tensor:
        return self.beta * self._bonds(self._grid(x))

    def log_prob_and_ratios(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(log rho(x) (n,), R (n, dim, q)): R[:, i, c] = beta (n_i(c) - n_i(x_i))."""
        self._check_x(x)
        s = self._grid(x).round().long()
        onehot = torch.nn.functional.one_hot(s, self.n_states).to(x.dtype)
        counts = sum(onehot.roll(k, d) for k in (1, -1) for d in (1, 2))
        counts = counts.flatten(1, 2)
        own = counts.gather(-1, x.round().long().unsqueeze(-1))
        return self._log_prob(x), self.beta * (counts - own)

    def magnetisation(self, x: Tensor) -> Tensor:
        """(q max_c N_c / N - 1) / (q - 1) per state: (n,)."""
        self._check_x(x)
        q = self.n_states
        counts = torch.nn.functional.one_hot(x.round().long(), q).sum(1).to(x.dtype)
        return (q * counts.max(1).values / self.dim - 1) / (q - 1)

    def energy_per_site(self, x: Tensor) -> Tensor:
        """e = H / N = -sum_<ij> [s_i = s_j] / N per state: (n,)."""
        self._check_x(x)
        return -self._bonds(self._grid(x)) / self.dim
