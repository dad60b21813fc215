"""Batches of training data: rows drawn uniformly with replacement, with their labels and
their indices, which a coupling (:mod:`interpolants.couplings`) turns into end points."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import TensorDataset

__all__ = ["DataBatch", "batch_sampler"]


@dataclass(frozen=True)
class DataBatch:
    """Rows drawn from the training data.

    Attributes:
        x1: (n, *event) points of rho_1.
        label: (n,) their labels when the data holds (x1, label) pairs, else None.
        index: (n,) their rows in the data set (a coupling that pairs every x1 with a row of
            another tensor reads it), or None for a sampler drawn afresh.
    """

    x1: Tensor
    label: Tensor | None = None
    index: Tensor | None = None


def batch_sampler(data: Any) -> Callable[[int, torch.Generator], DataBatch]:
    """``draw(n, generator)``: n rows drawn uniformly with replacement from a tensor or a
    Dataset (of x1 or (x1, label)), or fresh draws ``data.sample(n, generator)`` of a sampler
    (e.g. :class:`~interpolants.data.Dequantized`)."""
    if callable(getattr(data, "sample", None)):
        return lambda n, g: DataBatch(data.sample(n, g))
    labels = None
    if isinstance(data, TensorDataset):
        data, labels = data.tensors[0], (data.tensors[1] if len(data.tensors) > 1 else None)
    if isinstance(data, Tensor):
        if data.ndim < 2:
            raise ValueError(f"data must have shape (n, *event), got {tuple(data.shape)}")

        def rows(n: int, g: torch.Generator) -> DataBatch:
            index = torch.randint(len(data), (n,), generator=g)
            return DataBatch(data[index], None if labels is None else labels[index], index)

        return rows
    if hasattr(data, "__getitem__") and hasattr(data, "__len__"):
        return lambda n, g: _items(data, torch.randint(len(data), (n,), generator=g))
    raise TypeError(f"data must be a Tensor or a Dataset, got {type(data).__name__}")


def _items(data: Any, index: Tensor) -> DataBatch:
    """The items of a Dataset: x1 alone, or (x1, label) with integer or tensor labels."""
    items = [data[int(i)] for i in index]
    pairs = all(isinstance(it, (tuple, list)) and len(it) > 1 for it in items)
    x1 = torch.stack([it[0] if isinstance(it, (tuple, list)) else it for it in items])
    label = None
    if pairs and all(isinstance(it[1], (int, Tensor)) for it in items):
        label = torch.stack([torch.as_tensor(it[1]) for it in items])
    return DataBatch(x1, label, index)
