"""Data sets for generative modelling (docs/benchmarks.md); generated here or shipped with sklearn.

``load(name, n=..., split="train", seed=...)`` returns a float32 tensor (n, *event). The 2D toys
are drawn fresh from their definitions; ``digits`` is the fixed split of sklearn's 8x8 digits.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from ..distributions import GaussianMixture

__all__ = [
    "DATASETS",
    "TOYS",
    "Dequantized",
    "LogitTransform",
    "digits",
    "digits_labels",
    "gmm_data_distribution",
    "load",
    "true_nll",
]


def checkerboard(n: int, g: torch.Generator) -> Tensor:
    """Uniform on the 8 dark squares (i + j even) of a 4x4 board on [-4, 4]^2: NLL = log 32."""
    cell = torch.randint(0, 8, (n,), generator=g)
    row = cell // 2
    col = 2 * (cell % 2) + (row % 2)
    corner = torch.stack([col, row], 1).float() * 2 - 4
    return corner + 2 * torch.rand(n, 2, generator=g)


def moons(n: int, g: torch.Generator) -> Tensor:
    """Two interleaved half circles (radius 1, centres (0, 0), (1, 0.5)), noise 0.1, scaled x2."""
    upper = torch.rand(n, generator=g) < 0.5
    angle = math.pi * torch.rand(n, generator=g)
    x = torch.where(upper, angle.cos(), 1 - angle.cos())
    y = torch.where(upper, angle.sin(), 0.5 - angle.sin())
    pts = torch.stack([x - 0.5, y - 0.25], 1) + 0.1 * torch.randn(n, 2, generator=g)
    return 2 * pts


def eight_gaussians(n: int, g: torch.Generator) -> Tensor:
    """Eight equal Gaussians (std 0.5) at radius 2 sqrt 2 on the unit directions k pi / 4."""
    k = torch.randint(0, 8, (n,), generator=g).float() * (math.pi / 4)
    centres = 2 * math.sqrt(2) * torch.stack([k.cos(), k.sin()], 1)
    return centres + 0.5 * torch.randn(n, 2, generator=g)


def spirals(n: int, g: torch.Generator) -> Tensor:
    """Two Archimedean spiral arms r = theta, theta in [0, 3 pi], noise 0.1, scaled to ~[-4, 4]."""
    theta = 3 * math.pi * torch.rand(n, generator=g).sqrt()
    arm = torch.where(torch.rand(n, generator=g) < 0.5, 1.0, -1.0)
    pts = arm[:, None] * theta[:, None] * torch.stack([theta.cos(), theta.sin()], 1)
    return pts / 2.5 + 0.1 * torch.randn(n, 2, generator=g)


def pinwheel(n: int, g: torch.Generator, arms: int = 5) -> Tensor:
    """Five curved arms: radial N(1, 0.3^2), tangential N(0, 0.05^2), twisted by exp(radius)."""
    k = torch.randint(0, arms, (n,), generator=g).float() * (2 * math.pi / arms)
    r = 1 + 0.3 * torch.randn(n, generator=g)
    s = 0.05 * torch.randn(n, generator=g)
    angle = k + 0.25 * r.exp()
    c, si = angle.cos(), angle.sin()
    return 2 * torch.stack([c * r - si * s, si * r + c * s], 1)


def gmm_data_distribution() -> GaussianMixture:
    """The known mixture behind ``gmm-data``: 4 unequal 2D components, so NLL = its entropy."""
    means = torch.tensor([[-2.0, -2.0], [2.0, -1.0], [0.0, 2.5], [2.5, 2.5]])
    stds = torch.tensor([[0.5, 0.8], [0.7, 0.4], [1.0, 0.5], [0.3, 0.3]])
    return GaussianMixture(means, stds, torch.tensor([0.4, 0.3, 0.2, 0.1]))


def gmm_data(n: int, g: torch.Generator) -> Tensor:
    return gmm_data_distribution().sample(n, g)


DIGITS_TRAIN = 1400


def digits(
    split: str = "train", dequantize: bool = True, g: torch.Generator | None = None
) -> Tensor:
    """sklearn's 8x8 digits as (n, 1, 8, 8) in [0, 1]: a fixed permutation (seed 0) into 1400 train
    and 397 test images; grey levels v in {0..16} map to (v + u) / 17, u ~ U(0, 1) (uniform
    dequantisation), or to (v + 1/2) / 17 when ``dequantize`` is False."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:  # pragma: no cover - depends on the install
        raise ValueError(
            "the digits data set needs scikit-learn: pip install scikit-learn"
        ) from err
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    images = torch.tensor(load_digits().images, dtype=torch.float32)  # (1797, 8, 8), values 0..16
    v = images[_digits_split(split, len(images))][:, None]
    u = torch.rand(v.shape, generator=g) if dequantize else torch.full_like(v, 0.5)
    return (v + u) / 17


def _digits_split(split: str, n: int) -> Tensor:
    """The indices of ``split`` in sklearn's digits: the fixed permutation (seed 0)."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    return perm[:DIGITS_TRAIN] if split == "train" else perm[DIGITS_TRAIN:]


def digits_labels(split: str = "train") -> Tensor:
    """The class (0 to 9, int64) of each image of :func:`digits` ``(split)``, in its order."""
    from sklearn.datasets import load_digits

    target = torch.as_tensor(load_digits().target, dtype=torch.int64)
    return target[_digits_split(split, len(target))]


class Dequantized:
    """Images with integer grey levels v in {0, ..., levels - 1}, dequantised afresh at every
    draw: ``sample(n, g)`` returns (v + u) / levels, u ~ U(0, 1)^d, of n images drawn with
    replacement. Passed to :func:`~interpolants.train.fit` as data, every batch sees new noise,
    which keeps a model from memorising one dequantisation of a small data set.

    Arguments:
        levels_data: (n, *event) integer-valued grey levels.
        levels: the number of grey levels.
        transform: an optional map applied to the dequantised batch (e.g. a
            :class:`LogitTransform`).
    """

    def __init__(self, levels_data: Tensor, levels: int, transform: Any = None):
        if levels_data.ndim < 2 or len(levels_data) < 1:
            raise ValueError(
                f"levels_data must have shape (n, *event), got {tuple(levels_data.shape)}"
            )
        if levels_data.min() < 0 or levels_data.max() > levels - 1:
            raise ValueError(f"levels_data must lie in [0, {levels - 1}]")
        self.v, self.levels, self.transform = levels_data.float(), levels, transform
        self.event_shape = torch.Size(levels_data.shape[1:])

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        v = self.v[torch.randint(len(self.v), (n,), generator=generator)]
        x = (v + torch.rand(v.shape, generator=generator)) / self.levels
        return x if self.transform is None else self.transform(x)


class LogitTransform:
    r"""y = W (logit(a + (1 - 2a) x) - m) for x in [0, 1]^d: the logit pre-processing of RealNVP
    (Dinh, Sohl-Dickstein & Bengio, arXiv:1605.08803, section 4.1) followed by a
    standardisation fitted to ``x_fit``: m the mean of z = logit(a + (1 - 2a) x) and W = diag(1/s)
    (s its standard deviations) or, with ``whiten=True``, W = L^{-1} for the Cholesky factor
    L L^T of its covariance (then y is white: a model of y only learns what is not Gaussian).
    A density q of y gives x the density

        log p(x) = log q(y(x)) + log |det W| + sum_i [log(1 - 2a) - log u_i - log(1 - u_i)],
        u = a + (1 - 2a) x,

    the second and third terms being :meth:`log_det`, so NLLs in y turn into NLLs of x in
    [0, 1]^d.
    """

    def __init__(self, x_fit: Tensor, alpha: float = 0.05, whiten: bool = False):
        if not 0 < alpha < 0.5:
            raise ValueError(f"alpha must lie in (0, 0.5), got {alpha!r}")
        self.alpha, self.whiten, self.shape = alpha, whiten, x_fit.shape[1:]
        z = torch.logit(alpha + (1 - 2 * alpha) * x_fit.double()).flatten(1)
        self.mean = z.mean(0)
        if whiten:
            cov = torch.cov(z.T) + 1e-8 * torch.eye(z.shape[1], dtype=z.dtype)
            self.chol = torch.linalg.cholesky(cov)
            self._log_det_w = -float(self.chol.diagonal().log().sum())
        else:
            self.std = z.std(0).clamp_min(1e-6)
            self._log_det_w = -float(self.std.log().sum())

    def _z(self, x: Tensor) -> Tensor:
        return torch.logit(self.alpha + (1 - 2 * self.alpha) * x).flatten(1)

    def __call__(self, x: Tensor) -> Tensor:
        c = self._z(x) - self.mean.to(x)
        if self.whiten:
            y = torch.linalg.solve_triangular(self.chol.to(x), c.T, upper=False).T
        else:
            y = c / self.std.to(x)
        return y.reshape(x.shape)

    def inverse(self, y: Tensor) -> Tensor:
        w = y.flatten(1)
        c = w @ self.chol.to(y).T if self.whiten else w * self.std.to(y)
        u = torch.sigmoid(c + self.mean.to(y))
        return ((u - self.alpha) / (1 - 2 * self.alpha)).clamp(0, 1).reshape(y.shape)

    def log_det(self, x: Tensor) -> Tensor:
        """log |det dy/dx| per row of x (n, *event)."""
        u = self.alpha + (1 - 2 * self.alpha) * x.flatten(1)
        per = math.log(1 - 2 * self.alpha) - u.log() - (-u).log1p()
        return per.sum(1) + self._log_det_w


TOYS = {
    "checkerboard": checkerboard,
    "moons": moons,
    "8gaussians": eight_gaussians,
    "spirals": spirals,
    "pinwheel": pinwheel,
    "gmm-data": gmm_data,
}
DATASETS = (*TOYS, "digits")


def load(name: str, n: int = 100_000, split: str = "train", seed: int | None = None) -> Tensor:
    """n samples of data set ``name`` (float32). Toys: the train and test splits use different
    default seeds (0 and 1). ``digits``: the fixed split dequantised with ``seed``; n ignored."""
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; known: {', '.join(DATASETS)}")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if seed is None:
        seed = 0 if split == "train" else 1
    g = torch.Generator().manual_seed(seed)
    if name == "digits":
        return digits(split, g=g)
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    return TOYS[name](n, g)


def true_nll(name: str, points: Tensor | None = None) -> float | None:
    """The true mean NLL (nats) where it is known: log 32 for checkerboard; for gmm-data the
    exact -mean log rho(points) on the given test points (a paired comparison)."""
    if name == "checkerboard":
        return math.log(32)
    if name == "gmm-data" and points is not None:
        return float(-gmm_data_distribution().log_prob(points).mean())
    return None
