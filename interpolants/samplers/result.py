"""The bundle every sampler returns: samples, weights, log Z with its error, diagnostics."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from .arviz import to_arviz
from .diagnostics import mcse_mean, weighted_mean_and_stderr
from .info import Info
from .summary import Summary, summarize

__all__ = ["SampleResult"]


def _scalar(v: Any) -> Any:
    """A JSON-friendly scalar (None for NaN/inf), or None when ``v`` is not a scalar."""
    if isinstance(v, Tensor):
        if v.numel() != 1:
            return None
        v = v.item()
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    return None


@dataclass
class SampleResult:
    r"""What :func:`interpolants.samplers.sample` returns.

    Attributes:
        samples: (n, dim) draws; pooled post-warm-up chain draws for MCMC (draw-major:
            all chains at one iteration, then the next), walkers for AIS/SMC.
        method: the method name.
        log_weights: (n,) log importance weights with log mean exp(log_weights) = log Z_hat,
            or None for unweighted MCMC draws.
        log_Z, log_Z_stderr: the free-energy estimate log Z_hat and its standard error
            (None for MCMC).
        ess: normalised effective sample size in [0, 1]: (sum w)^2 / (n sum w^2) for weighted
            samples; for MCMC min over dimensions of ESS / (draws) from the autocorrelation,
            clipped at 1.
        evaluations: walker-evaluations of the target: one per walker per call of log_prob
            with its gradient (base-density evaluations are not counted).
        acceptance_rate: mean Metropolis acceptance probability after warm-up (MCMC) or over
            all moves (AIS/SMC).
        iat: (dim,) integrated autocorrelation times per dimension (MCMC).
        rhat: (dim,) split R-hat per dimension (MCMC; BDA3, on the raw draws).
        rank_rhat: (dim,) rank-normalised split R-hat, max of bulk and folded (Vehtari et al.
            2021, :func:`~.diagnostics.rank_rhat`) per dimension (MCMC).
        ess_bulk, ess_tail: (dim,) bulk and tail ESS in draws per dimension (MCMC;
            :func:`~.diagnostics.ess_bulk`, :func:`~.diagnostics.ess_tail`).
        warnings: one line per failed convergence check
            (:func:`~.diagnostics.convergence_warnings`; filled by the MALA and HMC runners).
        log_prob_trace: (iterations, chains) target log density of every chain at every
            iteration, warm-up included (``info["warmup"]`` iterations first), for trace plots.
        chain_samples: (draws, chains, dim) the post-warm-up draws per chain (MCMC).
        groups: (n,) labels of the independent batches the weighted samples come from (SMC),
            used for standard errors; None when the samples are independent.
        info: method-specific details (step size, temperatures, ESS per level, ...): an
            :class:`~.info.Info` subclass of the method family (:class:`~.info.MCMCInfo`,
            :class:`~.info.AnnealingInfo`, :class:`~.info.NETSInfo`, ...), whose fields are
            attributes and also keys of a read-only mapping (``info["step_size"]``).
    """

    samples: Tensor
    method: str
    log_weights: Tensor | None = None
    log_Z: float | None = None
    log_Z_stderr: float | None = None
    ess: float | None = None
    evaluations: int = 0
    acceptance_rate: float | None = None
    iat: Tensor | None = None
    rhat: Tensor | None = None
    rank_rhat: Tensor | None = None
    ess_bulk: Tensor | None = None
    ess_tail: Tensor | None = None
    log_prob_trace: Tensor | None = None
    chain_samples: Tensor | None = None
    groups: Tensor | None = None
    info: Info = field(default_factory=Info)
    warnings: list[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        return self.samples.shape[0]

    @property
    def dim(self) -> int:
        return self.samples.shape[1]

    def expectation(self, f: Callable[[Tensor], Tensor]) -> tuple[Tensor, Tensor]:
        r"""E[f(X)] over the target and its standard error.

        Weighted samples: self-normalised importance sampling with the delta-method error
        (over walkers for AIS, over independent batches for SMC, see
        :func:`~.diagnostics.weighted_mean_and_stderr`). MCMC: the mean over all chains'
        draws (``chain_samples``) with the Monte Carlo standard error sqrt(var / ESS), ESS
        that of the split chains (:func:`~.diagnostics.mcse_mean`, as ArviZ's
        ``mcse(method="mean")``; arXiv:1903.08008). Otherwise independent draws:
        std / sqrt(n).

        Arguments:
            f: x (m, dim) -> (m,) or (m, k).

        Returns:
            (mean, stderr) of shape () or (k,), float64.
        """
        if self.chain_samples is not None:
            draws, chains, dim = self.chain_samples.shape
            v = f(self.chain_samples.reshape(-1, dim))
            squeeze = v.ndim == 1
            mean, se = mcse_mean(v.reshape(draws, chains, -1))
            return (mean[0], se[0]) if squeeze else (mean, se)
        v = f(self.samples)
        if self.log_weights is not None:
            return weighted_mean_and_stderr(v, self.log_weights, self.groups)
        v = v.double()
        return v.mean(0), v.std(0) / math.sqrt(v.shape[0])

    def summary(
        self,
        names: Sequence[str] | None = None,
        target: Any = None,
        hdi_prob: float = 0.94,
        show: bool = True,
    ) -> Summary:
        """Print (unless ``show=False``) and return the table of ``arviz.summary``: one row per
        coordinate with mean, sd, hdi_3%, hdi_97%, mcse_mean, mcse_sd, ess_bulk, ess_tail,
        r_hat (:mod:`~.summary`: their definitions for chains, after Vehtari et al. 2021,
        arXiv:1903.08008, and what they mean for weighted walkers).

        Arguments:
            names: the rows' names (default ``target.coordinate_names``, else x[0], x[1], ...).
            target: the sampled target, for its coordinate names.
            hdi_prob: the probability of the highest-density interval (columns
                ``hdi_{50 (1 - p)}%`` and ``hdi_{100 - 50 (1 - p)}%``).
            show: print the table.

        Returns:
            a :class:`~.summary.Summary` (``summary["mean"]``, ``summary.row(name)``,
            ``summary.to_csv(path)``, ``str(summary)``).
        """
        table = summarize(self, names, target, hdi_prob)
        if show:
            print(table)
        return table

    def to_arviz(
        self, names: Sequence[str] | None = None, target: Any = None, seed: int = 0
    ) -> Any:
        """The result as an ``arviz.InferenceData`` (needs ``pip install
        "interpolants[arviz]"``): ``posterior`` (chain, draw, ...) of the chains, or a seeded
        multinomial resample of weighted walkers, ``sample_stats`` (``lp``, ``step_size``;
        ``log_marginal_likelihood`` and its stderr for weighted results), the raw walkers and
        their log weights in the groups ``weighted_posterior`` and ``weighted_sample_stats``.
        See :mod:`~.arviz` for the details.

        Arguments:
            names: the coordinates' names (default ``target.coordinate_names``, else one
                variable ``x``).
            target: the sampled target, for its coordinate names.
            seed: seeds the resample of weighted walkers.
        """
        return to_arviz(self, names, target, seed)

    def to_dict(self) -> dict[str, Any]:
        """Scalar metrics for metrics.json (NaN and inf become None): ``rhat_max``,
        ``rank_rhat_max``, ``ess_bulk_min``, ``ess_tail_min`` for chains, the scalar entries
        of ``info`` and its records (tuples of dicts, e.g. SMC's ``escalations``, as lists
        of their scalar entries; None, tensors of more than one element, other lists and
        objects left out), ``warnings`` when there are any."""
        out: dict[str, Any] = {
            "method": self.method,
            "n": self.n,
            "dim": self.dim,
            "log_Z": _scalar(self.log_Z),
            "log_Z_stderr": _scalar(self.log_Z_stderr),
            "ess": _scalar(self.ess),
            "evaluations": int(self.evaluations),
            "acceptance_rate": _scalar(self.acceptance_rate),
        }
        if self.rhat is not None:
            out["rhat_max"] = _scalar(torch.nan_to_num(self.rhat, nan=math.inf).max())
        if self.rank_rhat is not None:
            out["rank_rhat_max"] = _scalar(torch.nan_to_num(self.rank_rhat, nan=math.inf).max())
        for key, ess in (("ess_bulk_min", self.ess_bulk), ("ess_tail_min", self.ess_tail)):
            if ess is not None:
                out[key] = _scalar(torch.nan_to_num(ess, nan=-math.inf).min())
        if self.iat is not None:
            out["iat_mean"] = _scalar(self.iat.mean())
            out["iat_max"] = _scalar(torch.nan_to_num(self.iat, nan=math.inf).max())
        for key, value in self.info.items():
            s = _scalar(value)
            if isinstance(value, tuple) and value and all(isinstance(v, dict) for v in value):
                s = [{k: _scalar(x) for k, x in v.items()} for v in value]
            if s is not None and key not in out:
                out[key] = s
        if self.warnings:
            out["warnings"] = list(self.warnings)
        return out

    def __repr__(self) -> str:
        parts = [f"method={self.method!r}", f"samples={tuple(self.samples.shape)}"]
        if self.log_Z is not None:
            se = "" if self.log_Z_stderr is None else f" ± {self.log_Z_stderr:.4f}"
            parts.append(f"log_Z={self.log_Z:.4f}{se}")
        if self.ess is not None:
            parts.append(f"ess={self.ess:.3f}")
        if self.acceptance_rate is not None:
            parts.append(f"acceptance_rate={self.acceptance_rate:.3f}")
        parts.append(f"evaluations={self.evaluations}")
        return f"SampleResult({', '.join(parts)})"
