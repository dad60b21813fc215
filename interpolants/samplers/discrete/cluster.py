r"""Cluster moves of the lattice spin models: Swendsen-Wang and Wolff, vectorised over walkers.

Both rest on the Fortuin-Kasteleyn representation. Given the spins, every bond <ij> whose
term is satisfied (Ising: J s_i s_j > 0; Potts: s_i = s_j) is opened independently with
probability p = 1 - exp(-2 beta |J|) (Ising) or p = 1 - exp(-beta) (Potts), and closed bonds
are never opened; the open bonds split the lattice into clusters.

* Swendsen-Wang (Phys. Rev. Lett. 58, 86 (1987)): every cluster is flipped with probability
  1/2 (Ising; for J > 0 the same as a fresh uniform value) or gets a fresh uniform value
  (Potts).
* Wolff (Phys. Rev. Lett. 62, 361 (1989)): only the cluster of a uniformly chosen site is
  flipped (Ising) or moved to one of the q - 1 other values (Potts). Here that cluster is
  read off the full bond percolation, which has the law of Wolff's grown cluster (the growth
  tests each bond of the cluster's boundary once), so a Wolff move costs as much as a
  Swendsen-Wang one: it is there to check and compare, not for speed.

Both leave the Boltzmann law invariant (detailed balance of the joint spin-bond law) and,
unlike single-site moves, decorrelate near beta_c in a few sweeps. Clusters are found by
iterated min-label propagation over the periodic lattice with pointer jumping: every site
ends labelled by the smallest site index of its cluster. On L = 2 the two bonds between a
pair of neighbours are tested independently, as the density counts both.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ...targets.discrete import value_index
from ...targets.spins import Ising, Potts
from ..api import chain_result, default_chains, initial_positions, warn_unconverged
from ..base import check_int, make_generator, progress_bar
from ..info import ChainInfo
from ..result import SampleResult

__all__ = ["MOVES", "ClusterInfo", "cluster_labels", "run_cluster", "swendsen_wang", "wolff"]


@dataclass(frozen=True, kw_only=True, eq=False)
class ClusterInfo(ChainInfo):
    """``info`` of :func:`run_cluster`: :class:`~.info.ChainInfo` (``step_size`` is NaN:
    cluster moves have none) and

    Attributes:
        move: "swendsen-wang" or "wolff".
        warmup: cluster sweeps discarded before the first kept draw.
        mean_cluster_fraction: the mean fraction of the sites in the cluster of a uniformly
            chosen site (the size of a Wolff cluster / N; near 1 when ordered), over fresh
            bonds on the last ``FRACTION_DRAWS`` = 20 draws of every chain.
        seconds: wall-clock seconds of the run.
    """

    move: str
    warmup: int
    mean_cluster_fraction: float
    seconds: float


def cluster_labels(right: Tensor, down: Tensor, backend: str = "auto") -> Tensor:
    r"""The clusters of open bonds on the L x L torus: labels (n, L * L), each site labelled
    by the smallest site index of its cluster (the same labels whatever the backend).

    Arguments:
        right, down: bool (n, L, L); right[k, r, c] opens the bond from (r, c) to
            (r, c + 1 mod L), down[k, r, c] the bond to (r + 1 mod L, c).
        backend: "torch": min-label propagation (each site takes the smallest label among
            itself and its open neighbours) alternating with pointer jumping (label <- label
            of label: labels always point to a member of the cluster and never exceed the
            site's index) until nothing changes, on any device; "scipy": the connected
            components of the bond graph of all walkers together
            (scipy.sparse.csgraph.connected_components, about 9 times faster on CPU at L = 16
            near beta_c); "auto": scipy for CPU tensors when it imports, else torch.
    """
    if backend not in ("auto", "torch", "scipy"):
        raise ValueError(f"backend must be 'auto', 'torch' or 'scipy', got {backend!r}")
    if backend == "auto":
        backend = "scipy" if right.device.type == "cpu" and _scipy_components() else "torch"
    if backend == "scipy":
        return _scipy_labels(right, down)
    return _torch_labels(right, down)


def _scipy_components() -> Any:
    try:
        from scipy.sparse.csgraph import connected_components
    except ImportError:  # pragma: no cover - scipy comes with POT
        return None
    return connected_components


def _scipy_labels(right: Tensor, down: Tensor) -> Tensor:
    import numpy as np
    from scipy.sparse import coo_matrix

    components = _scipy_components()
    if components is None:
        raise ValueError("backend='scipy' needs scipy")
    n, L, _ = right.shape
    total = n * L * L
    ids = torch.arange(total).view(n, L, L)
    src = torch.cat([ids[right], ids[down]]).numpy()
    dst = torch.cat([ids.roll(-1, 2)[right], ids.roll(-1, 1)[down]]).numpy()
    graph = coo_matrix((np.ones(len(src), dtype=np.int8), (src, dst)), shape=(total, total))
    _, comp = components(graph, directed=False)
    comp = torch.from_numpy(comp).long()
    first = torch.full((total,), total).scatter_reduce(0, comp, torch.arange(total), "amin")
    return (first[comp] % (L * L)).view(n, L * L)


def _torch_labels(right: Tensor, down: Tensor) -> Tensor:
    n, L, _ = right.shape
    big = L * L
    labels = torch.arange(big, device=right.device).expand(n, big).clone()
    left, up = right.roll(1, 2), down.roll(1, 1)
    links = ((right, -1, 2), (left, 1, 2), (down, -1, 1), (up, 1, 1))
    while True:
        grid = labels.view(n, L, L)
        new = grid
        for open_, shift, axis in links:
            new = torch.minimum(new, torch.where(open_, grid.roll(shift, axis), big))
        new = new.reshape(n, big)
        new = new.gather(1, new).gather(1, new.gather(1, new))
        if torch.equal(new, labels):
            return labels
        labels = new


def _bonds(x: Tensor, target: Any, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
    """The open Fortuin-Kasteleyn bonds (right, down), bool (n, L, L), given the states."""
    L = target.L
    s = x.reshape(-1, L, L)
    if isinstance(target, Ising):
        p = -math.expm1(-2 * target.beta * abs(target.J))
        sign = 1.0 if target.J >= 0 else -1.0
        satisfied = [sign * s * s.roll(-1, axis) > 0 for axis in (2, 1)]
    elif isinstance(target, Potts):
        p = -math.expm1(-target.beta)
        satisfied = [s == s.roll(-1, axis) for axis in (2, 1)]
    else:
        raise ValueError(f"target must be an interpolants.targets Ising or Potts, got {target}")
    shape = (2, *s.shape)
    draws = torch.rand(shape, generator=generator, dtype=torch.float64) < p
    return satisfied[0] & draws[0], satisfied[1] & draws[1]


def _check_target(target: Any) -> None:
    if not isinstance(target, (Ising, Potts)):
        raise ValueError(
            f"target must be an interpolants.targets Ising or Potts, got {type(target).__name__}"
        )
    if isinstance(target, Ising) and target.h != 0:
        raise ValueError(f"h must be 0 for cluster moves of the Ising model, got {target.h}")


def _checked(x: Tensor, target: Any) -> Tensor:
    """The value indices of x after checking the target and the states."""
    _check_target(target)
    if not isinstance(x, Tensor) or x.ndim != 2 or x.shape[1] != target.dim:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"x must have shape (n, {target.dim}), got {shape}")
    return value_index(x, target.values)


def swendsen_wang(x: Tensor, target: Any, generator: torch.Generator | None = None) -> Tensor:
    r"""One Swendsen-Wang sweep of every walker (Swendsen & Wang, PRL 58, 86 (1987)).

    Bonds between satisfied neighbours open with p = 1 - exp(-2 beta |J|) (Ising, h = 0 only)
    or 1 - exp(-beta) (Potts); every cluster is then flipped with probability 1/2 (Ising) or
    given a fresh uniform value (Potts). Pure: returns new states (n, dim), x is unchanged.

    Arguments:
        x: states (n, L * L) of ``target``.
        target: an :class:`~interpolants.targets.Ising` (h = 0, else ValueError) or
            :class:`~interpolants.targets.Potts`.
        generator: the source of every random draw.
    """
    idx = _checked(x, target)
    labels = cluster_labels(*_bonds(x, target, generator))
    n, dim = idx.shape
    if isinstance(target, Ising):
        flip = torch.rand((n, dim), generator=generator) < 0.5
        return torch.where(flip.gather(1, labels), -x, x)
    fresh = torch.randint(target.q, (n, dim), generator=generator)
    return target.values.to(x)[fresh.gather(1, labels)]


def wolff(x: Tensor, target: Any, generator: torch.Generator | None = None) -> Tensor:
    r"""One Wolff single-cluster move of every walker (Wolff, PRL 62, 361 (1989)).

    The cluster of a uniformly chosen site, under the bonds of :func:`swendsen_wang`, is
    flipped (Ising, h = 0 only) or shifted to one of the q - 1 other values, chosen uniformly
    (Potts). Pure: returns new states (n, dim).
    """
    idx = _checked(x, target)
    labels = cluster_labels(*_bonds(x, target, generator))
    n, dim = idx.shape
    seed = torch.randint(dim, (n, 1), generator=generator)
    inside = labels == labels.gather(1, seed)
    if isinstance(target, Ising):
        return torch.where(inside, -x, x)
    shift = torch.randint(1, target.q, (n, 1), generator=generator)
    return target.values.to(x)[torch.where(inside, (idx + shift) % target.q, idx)]


MOVES = {"swendsen-wang": swendsen_wang, "wolff": wolff}
FRACTION_DRAWS = 20  # draws per chain behind ClusterInfo.mean_cluster_fraction


class _Count:
    """What :func:`~.api.chain_result` reads of a counted density: name and evaluations."""

    def __init__(self, name: str, evaluations: int):
        self.name, self.evaluations = name, evaluations


def _cluster_fraction(x: Tensor, target: Any, generator: torch.Generator) -> Tensor:
    """Per walker: sum over clusters of size^2 / N^2 = the expected fraction of the sites in
    the cluster of a uniformly chosen site."""
    labels = cluster_labels(*_bonds(x, target, generator))
    sizes = torch.zeros_like(labels).scatter_add_(1, labels, torch.ones_like(labels))
    return sizes.double().square().sum(1) / target.dim**2


def run_cluster(
    target: Any,
    n: int = 1000,
    seed: int = 0,
    init: Tensor | None = None,
    *,
    move: str = "swendsen-wang",
    chains: int | None = None,
    warmup: int = 100,
    thin: int = 1,
    dtype: torch.dtype | None = None,
    progress: bool = False,
) -> SampleResult:
    r"""Cluster-move Markov chains on an Ising (h = 0) or Potts target; ``n`` pooled draws.

    ``chains`` walkers start from ``init`` or the uniform base, make ``warmup`` discarded
    sweeps of ``move`` (:func:`swendsen_wang` or :func:`wolff`), then ``thin`` sweeps per
    kept draw, ceil(n / chains) draws per chain. The result is that of the other Markov
    chain runners (:func:`~.api.chain_result`: pooled draws, IAT, ESS, R-hat, ...).
    ``evaluations`` counts one target evaluation per walker per sweep (the log density of
    the trace; the moves themselves need none); ``acceptance_rate`` is 1.

    Arguments:
        target: an :class:`~interpolants.targets.Ising` (h = 0) or
            :class:`~interpolants.targets.Potts`.
        n: draws returned (>= 1).
        seed: seeds the torch.Generator of every draw.
        init: (chains, L * L) starting states with entries among ``target.values``.
        move: "swendsen-wang" or "wolff".
        chains: parallel chains (default :func:`~.api.default_chains` of n).
        warmup: discarded sweeps (>= 0).
        thin: sweeps per kept draw (>= 1).
        dtype: float dtype of the states (default: that of ``init`` or the base).
        progress: show a progress bar.
    """
    start = time.perf_counter()
    if move not in MOVES:
        raise ValueError(f"move must be one of {sorted(MOVES)}, got {move!r}")
    _check_target(target)
    n = check_int("n", n)
    warmup, thin = check_int("warmup", warmup, 0), check_int("thin", thin)
    generator = make_generator(seed)
    if chains is None and init is None:
        chains = default_chains(n)
    x = initial_positions(target, chains, n, init, dtype, generator)
    _checked(x, target)
    chains = x.shape[0]
    per_chain = math.ceil(n / chains)
    step = MOVES[move]
    bar = progress_bar(warmup + per_chain * thin, progress, move)
    trace, draws = [], []
    for i in range(warmup + per_chain * thin):
        x = step(x, target, generator)
        trace.append(target.log_prob(x))
        if i >= warmup and (i - warmup + 1) % thin == 0:
            draws.append(x)
        bar.update(1)
    bar.close()
    last = torch.stack(draws[-FRACTION_DRAWS:]).flatten(0, 1)
    fraction = float(_cluster_fraction(last, target, generator).mean())
    info = ClusterInfo(
        target=target.name,
        chains=chains,
        draws_per_chain=per_chain,
        thin=thin,
        step_size=math.nan,
        move=move,
        warmup=warmup,
        mean_cluster_fraction=fraction,
        seconds=time.perf_counter() - start,
    )
    count = _Count(target.name, chains * len(trace))
    result = chain_result(torch.stack(draws), n, move, count, 1.0, torch.stack(trace), info)
    return warn_unconverged(result, target.name, per_chain)
