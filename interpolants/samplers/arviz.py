r"""``SampleResult.to_arviz()``: a sampler's result as an ``arviz.InferenceData``.

ArviZ is optional (``pip install "interpolants[arviz]"``); it is imported when
:func:`to_arviz` is called.

Variables. Coordinates named ``base[label]`` by the target (``target.coordinate_names``,
e.g. eight schools' ``mu``, ``log_tau``, ``theta[0]``, ..., ``theta[7]``) become one
variable per base name with a dimension ``{base}_dim_0`` whose coordinate values are the
labels (integers when they all are), other names a scalar variable each; a target that
names no coordinates gives one variable ``x`` with dimension ``x_dim_0``. ``az.summary``
then names its rows as :meth:`~.result.SampleResult.summary` does.

Markov chains (MALA, HMC, flow-MCMC; ``result.chain_samples``):

- ``posterior``: the post-warm-up draws with dims (chain, draw, ...).
- ``sample_stats``: ``lp`` (chain, draw), the target's unnormalised log density at every
  draw (from ``result.log_prob_trace``), ``step_size`` (chain, draw), the kernel's step
  size after warm-up, for MALA and HMC ``acceptance_rate`` (chain, draw), the acceptance
  probability of the move to each draw (the mean over the ``thin`` moves in between), and
  ``diverging`` (chain, draw), whether one of them diverged, and for flow-MCMC
  ``global_accepted`` (chain, draw), whether the iteration's global move was accepted. The
  totals are attributes of ``sample_stats`` too: ``acceptance_rate`` (the mean acceptance
  probability after warm-up) and ``divergences`` (the count after warm-up).
- ``warmup_sample_stats``: ``lp`` of the iterations before the kept ones (warm-up and, for
  flow-MCMC, training), with ``step_size`` where the result records it per iteration.

Weighted walkers (AIS, SMC, NETS, importance sampling; ``result.log_weights``):

- ``posterior``: one chain of n draws, a multinomial resample of the n walkers with
  probabilities their normalised weights, drawn with ``torch.Generator().manual_seed(seed)``
  (a different ``seed`` gives another resample). ArviZ's statistics of it see an unweighted
  sample: its ESS and MCSE ignore the duplicates (use ``result.summary()`` for the weighted
  standard errors), and R-hat needs chains.
- ``sample_stats``: ``walker`` (chain, draw), the index of the walker each draw copies, and
  ``log_marginal_likelihood`` and ``log_marginal_likelihood_stderr`` with dims (chain,):
  the run's log Z estimate and its standard error (as PyMC's SMC stores it).
- ``weighted_posterior`` (a group of its own): the walkers themselves, (chain=1, draw=n, ...).
- ``weighted_sample_stats``: ``log_weight`` (chain=1, draw=n) of every walker (unnormalised,
  log mean exp(log_weight) = log Z) and ``batch``, the independent run each walker comes from
  (SMC's ``result.groups``), when there are batches.

Every group's attributes hold ``inference_library`` ("interpolants"), its version, the
``method`` and, when known, the ``target``; ``to_dict()``'s numbers stay with the result.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .summary import coordinate_names

__all__ = ["to_arviz", "variables_of"]

_INDEXED = re.compile(r"^(?P<base>[^\[\]]+)\[(?P<label>[^\[\]]+)\]$")


def variables_of(names: Sequence[str]) -> dict[str, tuple[list[int], list[Any] | None]]:
    """Group coordinate names into variables: {variable: (coordinate indices, labels)}, labels
    None for a scalar variable. ``["mu", "theta[0]", "theta[1]"]`` ->
    ``{"mu": ([0], None), "theta": ([1, 2], [0, 1])}``; labels are ints when all are digits.
    A base name that is also a scalar name, or a scalar name given twice, raises ValueError."""
    out: dict[str, tuple[list[int], list[Any] | None]] = {}
    for i, name in enumerate(names):
        m = _INDEXED.match(name)
        base, label = (m["base"], m["label"]) if m else (name, None)
        if base in out and (label is None or out[base][1] is None):
            raise ValueError(f"coordinate name {name!r} clashes with another coordinate")
        idx, labels = out.setdefault(base, ([], None if label is None else []))
        idx.append(i)
        if labels is not None:
            labels.append(label)
    for base, (idx, labels) in out.items():
        if labels is not None and all(str(lab).isdigit() for lab in labels):
            out[base] = (idx, [int(lab) for lab in labels])
    return out


def _split(
    draws: np.ndarray, names: Sequence[str] | None
) -> tuple[dict[str, np.ndarray], dict[str, list[str]], dict[str, list[Any]]]:
    """Draws (chain, draw, dim) -> ({var: array}, dims, coords) for ``az.from_dict``."""
    if names is None:
        return {"x": draws}, {"x": ["x_dim_0"]}, {"x_dim_0": list(range(draws.shape[2]))}
    data, dims, coords = {}, {}, {}
    for var, (idx, labels) in variables_of(names).items():
        if labels is None:
            data[var] = draws[:, :, idx[0]]
            continue
        data[var] = draws[:, :, idx]
        dims[var] = [f"{var}_dim_0"]
        coords[f"{var}_dim_0"] = labels
    return data, dims, coords


def _chain_stats(result: Any) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """sample_stats and warmup_sample_stats of parallel chains (chain, draw)."""
    draws, chains, _ = result.chain_samples.shape  # type: ignore[union-attr]
    thin = int(result.info.get("thin", 1))
    stats: dict[str, np.ndarray] = {}
    warm: dict[str, np.ndarray] = {}
    trace = result.log_prob_trace
    step = result.info.get("step_size")
    if step is not None:
        stats["step_size"] = np.full((chains, draws), float(step))
    for key, name in (
        ("global_accepted", "global_accepted"),  # flow-MCMC's global moves
        ("draw_acceptance", "acceptance_rate"),
        ("draw_divergent", "diverging"),
    ):
        value = result.info.get(key)
        if isinstance(value, torch.Tensor) and tuple(value.shape) == (draws, chains):
            stats[name] = value.detach().cpu().numpy().T
    if trace is None or trace.ndim != 2 or trace.shape[1] != chains:
        return stats, warm
    before = trace.shape[0] - draws * thin
    if before < 0:
        return stats, warm
    kept = trace[before:][thin - 1 :: thin]
    stats["lp"] = kept.detach().double().cpu().numpy().T
    if before > 0:
        warm["lp"] = trace[:before].detach().double().cpu().numpy().T
        steps = result.info.get("warmup_step_size")
        if steps is not None and len(steps) == before:
            warm["step_size"] = np.broadcast_to(
                torch.as_tensor(steps).double().cpu().numpy(), (chains, before)
            ).copy()
    return stats, warm


def _attrs(result: Any) -> dict[str, Any]:
    package = sys.modules.get(__name__.split(".")[0])  # loaded: this module is inside it
    version = getattr(package, "__version__", "unknown")
    attrs = {
        "inference_library": "interpolants",
        "inference_library_version": version,
        "method": result.method,
    }
    if result.info.get("target") is not None:
        attrs["target"] = result.info["target"]
    return attrs


def _chains_to_arviz(az: Any, result: Any, names: Sequence[str] | None) -> Any:
    draws = result.chain_samples.detach().double().cpu().numpy().transpose(1, 0, 2)  # type: ignore[union-attr]
    data, dims, coords = _split(draws, names)
    stats, warm = _chain_stats(result)
    warmup = {"warmup_sample_stats": warm, "save_warmup": True} if warm else {}
    idata = az.from_dict(
        posterior=data, sample_stats=stats or None, coords=coords, dims=dims, **warmup
    )
    extra = {}
    if result.acceptance_rate is not None:
        extra["acceptance_rate"] = float(result.acceptance_rate)
    if result.info.get("divergences") is not None:
        extra["divergences"] = int(result.info["divergences"])
    if "sample_stats" in idata.groups():
        idata.sample_stats.attrs.update(extra)
    return idata


def _weighted_to_arviz(az: Any, result: Any, names: Sequence[str] | None, seed: int) -> Any:
    x = result.samples.detach().double().cpu()
    lw = result.log_weights.detach().double().cpu().flatten()  # type: ignore[union-attr]
    generator = torch.Generator().manual_seed(seed)
    walker = torch.multinomial(torch.softmax(lw, 0), x.shape[0], True, generator=generator)
    data, dims, coords = _split(x[walker].numpy()[None], names)
    walkers, _, _ = _split(x.numpy()[None], names)
    weighted = {"log_weight": lw.numpy()[None]}
    if result.groups is not None:
        weighted["batch"] = result.groups.detach().cpu().long().numpy()[None]
    idata = az.from_dict(
        posterior=data, sample_stats={"walker": walker.numpy()[None]}, coords=coords, dims=dims
    )
    extra = az.from_dict(posterior=walkers, sample_stats=weighted, coords=coords, dims=dims)
    idata.add_groups(
        {"weighted_posterior": extra.posterior, "weighted_sample_stats": extra.sample_stats}
    )
    if result.log_Z is not None:
        se = np.nan if result.log_Z_stderr is None else float(result.log_Z_stderr)
        idata.sample_stats["log_marginal_likelihood"] = ("chain", [float(result.log_Z)])
        idata.sample_stats["log_marginal_likelihood_stderr"] = ("chain", [se])
    return idata


def to_arviz(
    result: Any,
    names: Sequence[str] | None = None,
    target: Any = None,
    seed: int = 0,
) -> Any:
    """``result`` as an ``arviz.InferenceData`` (module docstring: the groups for chains and
    for weighted walkers).

    Arguments:
        result: a :class:`~.result.SampleResult`.
        names: the coordinates' names (default ``target.coordinate_names`` when the target
            has them, else one variable ``x``).
        target: the target that was sampled, for its coordinate names.
        seed: seeds the multinomial resample of weighted walkers.

    Raises:
        ImportError: when ArviZ is not installed.
    """
    try:
        import arviz as az
    except ImportError as err:
        raise ImportError(
            'to_arviz needs ArviZ: pip install "interpolants[arviz]" (or pip install arviz)'
        ) from err
    if names is not None or getattr(target, "coordinate_names", None) is not None:
        names = coordinate_names(result.dim, names, target)
    if result.chain_samples is not None:
        idata = _chains_to_arviz(az, result, names)
    elif result.log_weights is not None:
        idata = _weighted_to_arviz(az, result, names, seed)
    else:
        data, dims, coords = _split(result.samples.detach().double().cpu().numpy()[None], names)
        idata = az.from_dict(posterior=data, coords=coords, dims=dims)
    for group in idata.groups():
        idata[group].attrs.update(_attrs(result))
    return idata
