r"""``SampleResult.summary()``: one row per coordinate, the columns of ``arviz.summary``.

The table (:class:`Summary`, no pandas needed) has the columns ``mean``, ``sd``,
``hdi_3%``, ``hdi_97%`` (for ``hdi_prob`` = 0.94, ArviZ's default), ``mcse_mean``,
``mcse_sd``, ``ess_bulk``, ``ess_tail``, ``r_hat``; its rows are named by the target's
coordinate names where it has them (``target.coordinate_names``, e.g. ``mu``,
``theta[0]``), else ``x[0]``, ``x[1]``, ...

Markov chains (``result.chain_samples``, (draws, chains, dim)): the definitions of ArviZ
0.23's ``summary`` (Vehtari et al. 2021, arXiv:1903.08008), computed by
:mod:`.diagnostics`: sd with ddof 1, :func:`~.diagnostics.hdi`,
:func:`~.diagnostics.mcse_mean`, :func:`~.diagnostics.mcse_sd`, bulk and tail ESS, and the
rank-normalised split R-hat (one chain is cut in two, where ArviZ gives NaN).

Weighted walkers (AIS, SMC, NETS, importance sampling; ``result.log_weights``), with
normalised weights W_i: ``mean`` = sum W_i x_i and ``sd`` = sqrt(sum W_i (x_i - mean)^2)
(self-normalised importance sampling); ``hdi_*`` the shortest interval [x_(i), x_(j)] of
the sorted walkers whose weights sum to at least ``hdi_prob``; ``mcse_mean`` the
delta-method standard error of the mean (over independent batches where
``result.groups`` labels them, see :func:`~.diagnostics.weighted_mean_and_stderr`);
``mcse_sd`` = se(var) / (2 sd) with se(var) that same standard error of the weighted mean of
(x - mean)^2; ``ess_bulk`` = ``ess_tail`` = Kong's ESS of the weights (sum w)^2 / sum w^2 in
walkers, the same in every row; ``r_hat`` NaN (there are no chains). Unweighted draws without
chains are summarised as one chain.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .diagnostics import (
    ess_bulk,
    ess_of_weights,
    ess_tail,
    hdi,
    mcse_mean,
    mcse_sd,
    rank_rhat,
    weighted_mean_and_stderr,
)

__all__ = ["Summary", "coordinate_names", "summarize", "weighted_hdi"]


@dataclass(frozen=True, eq=False)
class Summary:
    """A small table: ``values[i, j]`` is row ``index[i]``, column ``columns[j]``.

    Attributes:
        index: the row names (one per coordinate).
        columns: the column names.
        values: (rows, columns) float64.
        note: what the columns mean where they differ from ArviZ's (weighted results), or "".

    ``summary["mean"]`` is a column as a (rows,) tensor, ``summary.row("mu")`` a row as a
    dict; ``str(summary)`` the printed table; :meth:`to_csv` writes it with a header line
    ``name,mean,sd,...``; :meth:`to_dict` gives {row: {column: value}}.
    """

    index: tuple[str, ...]
    columns: tuple[str, ...]
    values: Tensor
    note: str = ""

    def __getitem__(self, column: str) -> Tensor:
        if column not in self.columns:
            raise KeyError(f"no column {column!r}; columns are {', '.join(self.columns)}")
        return self.values[:, self.columns.index(column)]

    def row(self, name: str) -> dict[str, float]:
        """The row ``name`` as {column: value}."""
        if name not in self.index:
            raise KeyError(f"no row {name!r}")
        return dict(zip(self.columns, self.values[self.index.index(name)].tolist(), strict=True))

    def to_dict(self) -> dict[str, dict[str, float]]:
        """{row name: {column: value}} in row order."""
        return {name: self.row(name) for name in self.index}

    def csv(self) -> str:
        """The table as CSV text: a header ``name,<columns>``, then one line per row with the
        values at full precision (``nan`` where undefined)."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["name", *self.columns])
        for name, values in zip(self.index, self.values.tolist(), strict=True):
            writer.writerow([name, *(repr(float(v)) for v in values)])
        return buffer.getvalue()

    def to_csv(self, path: str | Path) -> None:
        """Write :meth:`csv` to ``path``."""
        Path(path).write_text(self.csv())

    def __str__(self) -> str:
        cells = [[_format(v, c) for v, c in zip(r, self.columns, strict=True)]
                 for r in self.values.tolist()]  # fmt: skip
        first = max([len(n) for n in self.index] + [0])
        widths = [max([len(c)] + [len(r[j]) for r in cells]) for j, c in enumerate(self.columns)]

        def line(first_cell: str, row: Sequence[str]) -> str:
            pad = "".join(f"  {v:>{w}}" for v, w in zip(row, widths, strict=True))
            return f"{first_cell:<{first}}{pad}"

        lines = [line("", self.columns)]
        lines += [line(name, r) for name, r in zip(self.index, cells, strict=True)]
        if self.note:
            lines.append(self.note)
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"Summary(rows={len(self.index)}, columns={list(self.columns)})"


def _format(value: float, column: str) -> str:
    if math.isnan(value):
        return "nan"
    if column.startswith("ess"):
        return f"{value:.0f}"
    if column == "r_hat":
        return f"{value:.3f}"
    return f"{value:.4g}"


def coordinate_names(dim: int, names: Sequence[str] | None = None, target: Any = None) -> list[str]:
    """The names of the ``dim`` coordinates: ``names`` when given, else the target's
    ``coordinate_names`` when it has them (None for a target that names none), else
    ``x[0]``, ..., ``x[dim - 1]``. Raises ValueError for a wrong count or repeated names."""
    if names is None and target is not None:
        names = getattr(target, "coordinate_names", None)
    if names is None:
        return [f"x[{i}]" for i in range(dim)]
    names = [str(n) for n in names]
    if len(names) != dim:
        raise ValueError(f"{len(names)} coordinate names for {dim} coordinates")
    if len(set(names)) != dim:
        raise ValueError("coordinate names must be distinct")
    return names


def weighted_hdi(x: Tensor, log_weights: Tensor, prob: float = 0.94) -> Tensor:
    """The shortest interval [x_(i), x_(j)] of the sorted samples whose normalised weights
    sum to at least ``prob``, per coordinate: x (n, k), log weights (n,) -> (k, 2)."""
    if not 0 < prob <= 1:
        raise ValueError(f"prob must be in (0, 1], got {prob!r}")
    x = x.double().reshape(x.shape[0], -1)
    s, order = x.sort(0)
    w = torch.softmax(log_weights.double().flatten(), 0).to(x.device)[order]  # (n, k)
    cum = torch.cat([torch.zeros(1, x.shape[1], dtype=x.dtype), w.cumsum(0)]).T.contiguous()
    end = torch.searchsorted(cum, cum[:, :-1] + prob - 1e-12)  # (k, n): j + 1 for start i
    valid = end <= x.shape[0]
    j = (end - 1).clamp(max=x.shape[0] - 1).T  # (n, k)
    width = torch.where(valid.T, s.gather(0, j) - s, math.inf)
    i = width.argmin(0)
    return torch.stack([s.gather(0, i[None])[0], s.gather(0, j.gather(0, i[None]))[0]], 1)


def _hdi_columns(hdi_prob: float) -> tuple[str, str]:
    alpha = 1 - hdi_prob
    return f"hdi_{100 * alpha / 2:g}%", f"hdi_{100 * (1 - alpha / 2):g}%"


def _chain_rows(x: Tensor, hdi_prob: float) -> list[Tensor]:
    mean, se_mean = mcse_mean(x)
    sd, se_sd = mcse_sd(x)
    h = hdi(x, hdi_prob)
    return [mean, sd, h[:, 0], h[:, 1], se_mean, se_sd, ess_bulk(x), ess_tail(x), rank_rhat(x)]


def _weighted_rows(result: Any, hdi_prob: float) -> list[Tensor]:
    x = result.samples.detach().double().cpu()
    lw = result.log_weights.detach().double().cpu().flatten()  # type: ignore[union-attr]
    groups = None if result.groups is None else result.groups.cpu()
    mean, se_mean = weighted_mean_and_stderr(x, lw, groups)
    var, se_var = weighted_mean_and_stderr((x - mean).square(), lw, groups)
    sd = var.sqrt()
    h = weighted_hdi(x, lw, hdi_prob)
    ess = torch.full_like(mean, float(ess_of_weights(lw, 0)) * x.shape[0])
    return [mean, sd, h[:, 0], h[:, 1], se_mean, se_var / (2 * sd), ess, ess,
            torch.full_like(mean, math.nan)]  # fmt: skip


def summarize(
    result: Any,
    names: Sequence[str] | None = None,
    target: Any = None,
    hdi_prob: float = 0.94,
) -> Summary:
    """The :class:`Summary` of a result (module docstring: what each column means for chains
    and for weighted walkers). ``names`` (or ``target.coordinate_names``) name the rows."""
    if not 0 < hdi_prob <= 1:
        raise ValueError(f"hdi_prob must be in (0, 1], got {hdi_prob!r}")
    index = tuple(coordinate_names(result.dim, names, target))
    columns = ("mean", "sd", *_hdi_columns(hdi_prob), "mcse_mean", "mcse_sd", "ess_bulk",
               "ess_tail", "r_hat")  # fmt: skip
    note = ""
    if result.chain_samples is not None:
        cols = _chain_rows(result.chain_samples.detach().double().cpu(), hdi_prob)
    elif result.log_weights is not None:
        cols = _weighted_rows(result, hdi_prob)
        note = (f"weighted {result.method} walkers: self-normalised mean and sd, delta-method "
                "mcse, ess = Kong's ESS of the weights, no r_hat")  # fmt: skip
    else:
        cols = _chain_rows(result.samples.detach().double().cpu()[:, None, :], hdi_prob)
    return Summary(index, columns, torch.stack(cols, 1), note)
