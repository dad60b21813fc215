r"""Couplings: the joint law of the end points (x0, x1) and what the fields are conditioned on
(stochastic interpolants with data-dependent couplings, Albergo, Goldstein, Boffi, Ranganath &
Vanden-Eijnden, arXiv 2310.03725).

A coupling factorises the law of the end points as rho(x0, x1) = rho_1(x1) rho_0(x0 | x1).
In every coupling below, x1 is first *observed*, y = m(x1) (the visible pixels, a
low-resolution image, a blurred image, the current state), and x0 and the conditioning are
built from y alone:

    x0 = mean(y) + scale(y) * zeta,   zeta ~ N(0, I),   cond = c(y),

so that the same recipe serves training (y from the data) and generation (y given by the user,
``model.sample(cond=y)``): :meth:`Conditioned.given` returns that law of x0 given y, a
:class:`Source`. The fields are called ``net(t, x, cond=c(y))``.

- :class:`Independent` (the default): x0 ~ rho_0 whatever x1; with labels, cond = the label
  (dropped to the null label with probability ``label_dropout`` for classifier-free guidance).
- :class:`Inpainting`: y = x1 with its hidden entries NaN; x0 = xi * x1 + (1 - xi) * sigma *
  zeta with xi the mask of visible entries; cond = (xi, xi * x1) (2C channels, or 2d
  features). The visible entries stay fixed along the way.
- :class:`SuperResolution`: y = D(x1), the factor x factor block means; x0 = U(y) + sigma *
  zeta with U the nearest-neighbour up-sampling; cond = U(y).
- :class:`Corruption` (and :class:`Blur`): y = f(x1) of x1's shape; x0 = y + sigma * zeta;
  cond = y.
- :class:`Paired`: y = the x0 row given with each x1 (forecasting's current state); x0 = y +
  sigma * zeta (sigma = 0 by default: the point mass); cond = y.
- :class:`Increment`: forecasting's increment form, y = the current state; x0 = 0, x1 = (the
  data row - y) / scale, cond = y.

Each conditioning coupling takes ``start="noise"`` as well: x0 ~ N(0, I) independent of y,
the conditioning unchanged. That is the paper's baseline (a conditional model from an
independent Gaussian base), trained and sampled the same way.

Example:
    >>> import torch, interpolants as si
    >>> from interpolants.data import DataBatch
    >>> pair = Independent().sample(DataBatch(torch.ones(4, 2)), torch.Generator().manual_seed(0))
    >>> pair.x0.shape, pair.cond
    (torch.Size([4, 2]), None)
    >>> paint = Inpainting(mask=torch.tensor([True, False]))
    >>> y = paint.observe(torch.ones(3, 2))
    >>> y[0]
    tensor([1., nan])
    >>> paint.given(y).sample()[:, 0]
    tensor([1., 1., 1.])
"""

from .base import Coupling, CouplingSample, DataBatch, Independent, Source, as_coupling
from .observed import (
    COUPLINGS,
    MASKS,
    Blur,
    CentreMask,
    Conditioned,
    Corruption,
    Increment,
    Inpainting,
    Paired,
    RandomMask,
    SuperResolution,
    centre_mask,
    coupling_from_spec,
    gaussian_blur,
    random_mask,
)

__all__ = [
    "COUPLINGS",
    "MASKS",
    "Blur",
    "CentreMask",
    "Conditioned",
    "Corruption",
    "Coupling",
    "CouplingSample",
    "DataBatch",
    "Increment",
    "Independent",
    "Inpainting",
    "Paired",
    "RandomMask",
    "Source",
    "SuperResolution",
    "as_coupling",
    "centre_mask",
    "coupling_from_spec",
    "gaussian_blur",
    "random_mask",
]
