r"""Quadratic objectives whose unique minimisers are the interpolant's fields (arXiv 2303.08797).

Over t ~ U(0, 1), (x0, x1) and z:

- velocity:  L_b(b)     = E[ |b(t, x_t)|^2 - 2 dx_t/dt . b(t, x_t) ]      -> b = E[dx_t | x_t]
- denoiser:  L_eta(eta) = E[ |eta(t, x_t)|^2 - 2 z . eta(t, x_t) ]        -> eta = E[z | x_t]
- score:     L_s(s)     = E[ |s(t, x_t)|^2 + 2 gamma^{-1} z . s(t, x_t) ] -> s = -E[z | x_t] / gamma

For the one-sided interpolant (gamma = 0, x0 ~ N(0, I)) the noise is x0 and gamma is alpha.
Each is |f - target|^2 less E|target|^2, a constant: the minimum of L_b is -E|b(t, x_t)|^2.
The functions return the batch mean (``reduction="mean"``) or per-sample values ("none").
"""

from __future__ import annotations

from torch import Tensor

from .interpolant import Interpolant, InterpolantSample
from .interpolant import broadcast_like as _bcast

__all__ = ["denoiser_loss", "score_loss", "velocity_loss"]


def _reduce(per_sample: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return per_sample.mean()
    if reduction == "none":
        return per_sample
    raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")


def _check(pred: Tensor, s: InterpolantSample, name: str) -> None:
    if pred.shape != s.xt.shape:
        raise ValueError(
            f"{name} has shape {tuple(pred.shape)}; expected that of x_t {tuple(s.xt.shape)}"
        )


def _quadratic(pred: Tensor, target: Tensor, reduction: str) -> Tensor:
    """|f|^2 - 2 target . f summed over the event dimensions."""
    return _reduce((pred * (pred - 2 * target)).flatten(1).sum(1), reduction)


def velocity_loss(velocity: Tensor, sample: InterpolantSample, reduction: str = "mean") -> Tensor:
    """E |b|^2 - 2 dx_t/dt . b, minimised by b = E[dx_t/dt | x_t] (2303.08797, eq. for L_b)."""
    _check(velocity, sample, "velocity")
    return _quadratic(velocity, sample.dxt, reduction)


def _noise(interpolant: Interpolant, sample: InterpolantSample) -> Tensor:
    return sample.x0 if interpolant.is_deterministic else sample.z


def denoiser_loss(
    denoiser: Tensor, sample: InterpolantSample, interpolant: Interpolant, reduction: str = "mean"
) -> Tensor:
    """E |eta|^2 - 2 z . eta, minimised by eta = E[z | x_t] (x0 in place of z when gamma = 0)."""
    _check(denoiser, sample, "denoiser")
    return _quadratic(denoiser, _noise(interpolant, sample), reduction)


def score_loss(
    score: Tensor, sample: InterpolantSample, interpolant: Interpolant, reduction: str = "mean"
) -> Tensor:
    """E |s|^2 + 2 gamma^{-1} z . s, minimised by s = -E[z | x_t] / gamma (2303.08797).

    gamma^{-1} blows up at the end points: sample t away from them (``sample_times(trim=...)``).
    """
    _check(score, sample, "score")
    scale = _bcast(interpolant.noise_scale(sample.t), sample.xt)
    return _quadratic(score, -_noise(interpolant, sample) / scale, reduction)
