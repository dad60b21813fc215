r"""Fields on the L x L torus: the colouring that gives a local map's Jacobian from few VJPs.

The drifts whose Jacobian is sparse say so by ``jacobian_sparsity()``: a colouring of the
coordinates and the pattern of possible non-zeros (a :data:`Sparsity`), so that the exact
Jacobians of NETS's log-determinant take one VJP per colour instead of one per coordinate.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["Sparsity", "lattice_coloring"]

#: (colours (d,), pattern (d, d)): grad b may be non-zero only where pattern is True, and no
#: two coordinates of one colour share a column of the pattern
Sparsity = tuple[Tensor, Tensor]


def lattice_coloring(L: int, radius: int) -> Sparsity:
    r"""Colours and Jacobian pattern of a map of fields on the L x L torus whose output at a
    site depends on the input within Chebyshev distance ``radius`` (a stack of r 3x3
    convolutions has radius r).

    d b_i / d x_j = 0 unless dist(i, j) <= R, so two sites at distance > 2R never have a
    non-zero in the same column. Colouring site (a, b) by (a mod m, b mod m), m the smallest
    divisor of L with m >= 2R + 1, puts same-coloured sites at least m apart on the torus; the
    VJP with the indicator of colour c then holds, at column j, the one entry d b_i / d x_j
    with i of colour c near j. So m^2 VJPs give the whole Jacobian (the column grouping of
    Curtis, Powell and Reid, J. Inst. Math. Appl. 13, 117, 1974): 64 instead of 256 at
    L = 16 for R = 3. When no such m < L exists every site has its own colour.

    Arguments:
        L: the lattice side.
        radius: R, the reach of the map.

    Returns:
        colours (L * L,) int64 in [0, m^2) and the pattern (L * L, L * L) bool, both in the
        row-major order of the flattened field.

    Example:
        >>> colours, pattern = lattice_coloring(16, 3)
        >>> int(colours.max()) + 1, pattern.shape
        (64, torch.Size([256, 256]))
    """
    if L < 1 or radius < 0:
        raise ValueError(f"L must be >= 1 and radius >= 0, got {L}, {radius}")
    m = next((k for k in range(2 * radius + 1, L) if L % k == 0), L)
    a, b = torch.meshgrid(torch.arange(L), torch.arange(L), indexing="ij")
    a, b = a.flatten(), b.flatten()
    colours = (a % m) * m + b % m

    def torus(u: Tensor) -> Tensor:
        gap = (u[:, None] - u[None]).abs()
        return torch.minimum(gap, L - gap)

    pattern = torch.maximum(torus(a), torus(b)) <= radius
    return colours, pattern
