"""Checks of the training data, and what identifies it in a run's config.

``as_data`` converts and refuses bad input with a message naming the argument,
``split_holdout`` keeps rows out of training, ``fingerprint`` describes data, bases and
couplings by shape, dtype and the SHA-256 of their bytes (two runs whose fingerprints agree
saw the same data).
"""

from __future__ import annotations

import hashlib
import inspect
import json
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import TensorDataset

__all__ = ["DATASET_ITEMS_HASHED", "as_data", "fingerprint", "split_holdout"]

DATASET_ITEMS_HASHED = 1000
"""A Dataset (read item by item, maybe from disk) is fingerprinted by its length and this many
evenly spread items; tensors and TensorDatasets by all of their bytes."""

NESTED_DEPTH = 3
"""How deep ``fingerprint`` describes objects held by objects (a coupling's base, a sampler's
transform); deeper ones by their class alone."""


def as_data(data: Any, name: str = "data") -> Any:
    """Check and convert training data: a numpy array becomes a tensor, a pair (x, labels) a
    TensorDataset, integers become
    float32; an empty set, a scalar per row, or NaN / inf values are a ValueError naming
    ``name``. A Dataset or a sampler (``sample(n, generator)``) passes unchanged."""
    if isinstance(data, tuple) and len(data) == 2:  # (x, labels)
        x, labels = (torch.as_tensor(np.asarray(v)) if isinstance(v, (np.ndarray, list)) else v
                     for v in data)  # fmt: skip
        if not isinstance(x, Tensor) or not isinstance(labels, Tensor):
            raise TypeError(f"{name} as a pair must be (x, labels), two arrays or tensors")
        if labels.ndim != 1 or len(labels) != len(x):
            raise ValueError(
                f"{name}: labels must have one entry per row of x ({len(x)}), got shape "
                f"{tuple(labels.shape)}"
            )
        data = TensorDataset(x, labels)
    if isinstance(data, np.ndarray):
        data = torch.from_numpy(np.ascontiguousarray(data))
    if isinstance(data, TensorDataset) and data.tensors:
        return TensorDataset(as_data(data.tensors[0], name), *data.tensors[1:])
    if isinstance(data, Tensor):
        if data.ndim < 2:
            raise ValueError(
                f"{name} must have shape (n, *event), got {tuple(data.shape)} (one point a row)"
            )
        if data.shape[0] == 0 or data[0].numel() == 0:
            raise ValueError(f"{name} is empty (shape {tuple(data.shape)})")
        if not data.is_floating_point():
            if data.is_complex():
                raise ValueError(f"{name} has complex dtype {data.dtype}; pass real numbers")
            data = data.float()
        _check_finite(data, name)
        return data
    if hasattr(data, "__len__") and not callable(getattr(data, "sample", None)) and len(data) == 0:
        raise ValueError(f"{name} is empty")
    return data


def _check_finite(data: Tensor, name: str) -> None:
    bad = ~torch.isfinite(data.flatten(1)).all(1)
    if bool(bad.any()):
        rows = bad.nonzero().flatten()
        kinds = " or ".join(
            k for k, f in (("NaN", torch.isnan), ("inf", torch.isinf)) if bool(f(data).any())
        )
        raise ValueError(
            f"{name} has {kinds} in {len(rows)} row(s) (first: row {int(rows[0])}); "
            "remove or impute them"
        )


def split_holdout(
    data: Any, holdout: float | Tensor | None, seed: int
) -> tuple[Any, Tensor | None]:
    """(training rows, held-out points): a fraction of the rows drawn by a generator seeded by
    ``seed`` (apart from the training stream), given held-out points, or none. ``data`` is a
    tensor or a TensorDataset (x, labels): its tensors are split alike, the held-out points
    are x. :func:`holdout_rows` gives the rows kept for training."""
    if holdout is None:
        return data, None
    x = data.tensors[0] if isinstance(data, TensorDataset) else data
    if isinstance(holdout, (Tensor, np.ndarray)):
        held = as_data(torch.as_tensor(holdout), "holdout")
        if not isinstance(x, Tensor) or held.shape[1:] != x.shape[1:]:
            shape = tuple(x.shape[1:]) if isinstance(x, Tensor) else type(data).__name__
            raise ValueError(f"holdout has events {tuple(held.shape[1:])}, data {shape}")
        return data, held.to(x.dtype)
    if not isinstance(x, Tensor):
        raise ValueError("holdout as a fraction needs data as a tensor; pass held-out points")
    is_number = isinstance(holdout, (int, float)) and not isinstance(holdout, bool)
    if not is_number or not 0 < holdout < 1:
        raise ValueError(f"holdout must be a fraction in (0, 1) or a tensor, got {holdout!r}")
    kept, held = holdout_split(len(data), holdout, seed)
    if isinstance(data, TensorDataset):
        return TensorDataset(*(t[kept] for t in data.tensors)), x[held]
    return data[kept], data[held]


def holdout_split(n: int, holdout: float, seed: int) -> tuple[Tensor, Tensor]:
    """(rows kept for training, rows held out) of n rows for a fraction ``holdout``, drawn by
    a generator seeded by ``seed``: the split of :func:`split_holdout`, for tensors that must
    be split alike (a coupling's paired rows, labels)."""
    k = round(holdout * n)
    if not 1 <= k < n:
        raise ValueError(f"holdout={holdout} of {n} rows leaves no training or test rows")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[k:], perm[:k]


def holdout_rows(n: int, holdout: Any, seed: int) -> Tensor | None:
    """The rows of n that :func:`split_holdout` keeps for training, in their order (None when
    it keeps them all): what a coupling that pairs each row with another tensor's row
    (:class:`~interpolants.couplings.Paired`) must keep of that tensor."""
    if holdout is None or isinstance(holdout, (Tensor, np.ndarray)):
        return None
    return holdout_split(n, holdout, seed)[0]


def fingerprint(value: Any) -> Any:
    """What identifies a data set, base, coupling or tensor in a run's config: shape, dtype and
    the SHA-256 of the bytes of every tensor (a Dataset's items, an object's tensor attributes
    and, to :data:`NESTED_DEPTH`, the objects it holds); plain values as they are. Two runs
    whose fingerprints agree saw the same data."""
    return _fingerprint(value, 0)


def _fingerprint(value: Any, depth: int) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Tensor):
        raw = value.detach().cpu().contiguous()
        digest = hashlib.sha256(
            raw.reshape(-1).view(torch.uint8).numpy().tobytes() if raw.numel() else b""
        )
        return {"shape": list(raw.shape), "dtype": str(raw.dtype).removeprefix("torch."),
                "sha256": digest.hexdigest()}  # fmt: skip
    if isinstance(value, (list, tuple)):
        return [_fingerprint(v, depth) for v in value]
    if isinstance(value, dict):
        return {str(k): _fingerprint(v, depth) for k, v in value.items()}
    if isinstance(value, TensorDataset):
        return {"class": "TensorDataset", "tensors": _fingerprint(list(value.tensors), depth)}
    if hasattr(value, "__getitem__") and hasattr(value, "__len__") and not hasattr(value, "sample"):
        return _dataset_fingerprint(value)
    nested = depth < NESTED_DEPTH
    attrs = {
        k: _fingerprint(v, depth + 1)
        for k, v in sorted(getattr(value, "__dict__", {}).items())
        if _plain(v) or (nested and _holds_state(v))
    }
    return {"class": type(value).__name__, **attrs}


def _dataset_fingerprint(value: Any) -> dict[str, Any]:
    h = hashlib.sha256()
    n = len(value)  # up to DATASET_ITEMS_HASHED items, evenly spread, with the length
    for i in sorted({k * n // DATASET_ITEMS_HASHED for k in range(DATASET_ITEMS_HASHED)}):
        item = value[i]
        for part in item if isinstance(item, (tuple, list)) else (item,):
            h.update(json.dumps(fingerprint(torch.as_tensor(part))).encode())
    return {"class": type(value).__name__, "len": len(value), "sha256": h.hexdigest()}


def _plain(value: Any) -> bool:
    """A value recorded as it is: None, a number, a string, a tensor, or a tuple of those."""
    if isinstance(value, tuple):
        return all(_plain(v) for v in value)
    return value is None or isinstance(value, (bool, int, float, str, Tensor, torch.Size))


def _holds_state(value: Any) -> bool:
    """An instance whose attributes describe it (a distribution, a transform), not a function,
    method, class or module."""
    kinds = (inspect.isroutine, inspect.isclass, inspect.ismodule)
    return hasattr(value, "__dict__") and not any(is_kind(value) for is_kind in kinds)
