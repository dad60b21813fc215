"""The user's own data files: ``.npy``, ``.npz``, ``.pt`` and ``.csv`` read into tensors, with a
one-line error naming the file for anything that cannot be used."""

from __future__ import annotations

import math
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["FILE_FORMATS", "DataFileError", "read_file"]

FILE_FORMATS = (".npy", ".npz", ".pt", ".csv")


class DataFileError(ValueError):
    """A user's data file that cannot be used; the message names the file."""


def _file_error(path: Path, message: str) -> DataFileError:
    return DataFileError(f"data file {path}: {message}")


def _pick(path: Path, arrays: dict[str, Any], key: str | None, defaults: tuple[str, ...]) -> Any:
    """arrays[key], or the one array / the first default name present when key is None."""
    if key is not None:
        if key not in arrays:
            raise _file_error(path, f"has no array {key!r}; it holds {sorted(arrays)}")
        return arrays[key]
    if len(arrays) == 1:
        return next(iter(arrays.values()))
    for name in defaults:
        if name in arrays:
            return arrays[name]
    raise _file_error(path, f"holds {sorted(arrays)}: name the data with 'array'")


def _read_csv(path: Path, label_column: str | int | None) -> tuple[Any, Any]:
    import csv

    with open(path, newline="") as f:
        rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    if not rows:
        raise _file_error(path, "is empty")

    def numeric(cell: str) -> bool:
        try:
            float(cell)
        except ValueError:
            return False
        return True

    header = None if all(numeric(c) for c in rows[0]) else [c.strip() for c in rows[0]]
    body = rows[1:] if header else rows
    width = len(rows[0])
    names = header or [str(i) for i in range(width)]
    for i, r in enumerate(body):
        if len(r) != width:
            raise _file_error(path, f"row {i + 1 + bool(header)} has {len(r)} columns, not {width}")
    labels = None
    if label_column is not None:
        key = str(label_column)
        if key in names:
            j = names.index(key)
        elif isinstance(label_column, int) and 0 <= label_column < width:
            j = label_column  # an index, with or without a header
        else:
            raise _file_error(path, f"has no column {label_column!r}; columns: {names}")
        labels = [r[j] for r in body]
        body = [r[:j] + r[j + 1 :] for r in body]
        names = names[:j] + names[j + 1 :]
    for j, name in enumerate(names):
        bad = next((r[j] for r in body if not numeric(r[j])), None)
        if bad is not None:
            raise _file_error(path, f"column {name!r} is not numeric (value {bad.strip()!r})")
    x = np.array([[float(c) for c in r] for r in body], dtype=np.float64).reshape(len(body), -1)
    if labels is not None:
        try:
            values = [float(v) for v in labels]
        except ValueError as err:
            raise _file_error(path, f"label column {label_column!r} is not numeric") from err
        if not all(math.isfinite(v) and v.is_integer() for v in values):
            raise _file_error(path, f"label column {label_column!r} holds non-integer labels")
        labels = np.array([int(v) for v in values])
    return x, labels


def read_file(
    path: str | Path,
    array: str | None = None,
    labels: str | None = None,
    label_column: str | int | None = None,
) -> tuple[Tensor, Tensor | None]:
    """The user's data from a file: (x as float32 (n, *event), integer labels (n,) or None).

    Arguments:
        path: ``.npy`` (one array), ``.npz`` (arrays by name), ``.pt`` (a tensor, a tuple
            (x, labels) or a dict of tensors; read with ``weights_only=True``, so no code
            runs) or ``.csv`` (numeric columns, an optional header line).
        array: the name of the data in a ``.npz`` or a ``.pt`` dict (default: the only one,
            else ``x`` or ``data``).
        labels: the name of the labels in a ``.npz`` or ``.pt`` dict (default: ``labels`` or
            ``y`` when present).
        label_column: the ``.csv`` column (header name or index) that holds labels.

    Raises:
        ValueError: a one-line message naming the file: unknown format, missing array or
            column, non-numeric values, NaN or inf (with the first bad row), an empty set,
            labels that are not integers or not one per row.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FILE_FORMATS:
        raise _file_error(path, f"unknown format {path.suffix!r}; use {', '.join(FILE_FORMATS)}")
    if not path.is_file():
        raise FileNotFoundError(f"data file {path} does not exist")
    y: Any = None
    try:
        if suffix == ".csv":
            x, y = _read_csv(path, label_column)
        elif suffix == ".npy":
            x = np.load(path, allow_pickle=False)
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as f:
                arrays = {k: f[k] for k in f.files}
            x = _pick(path, arrays, array, ("x", "data"))
            y = _pick_labels(path, arrays, labels)
        else:
            x, y = _read_pt(path, array, labels)
    except DataFileError:
        raise
    except (OSError, EOFError, RuntimeError, ValueError, pickle.UnpicklingError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise _file_error(path, f"cannot be read ({reason})") from err
    return _checked(path, x, y)


def _pick_labels(path: Path, arrays: dict[str, Any], labels: str | None) -> Any:
    if labels is not None:
        return _pick(path, arrays, labels, ())
    return next((arrays[k] for k in ("labels", "y") if k in arrays), None)


def _read_pt(path: Path, array: str | None, labels: str | None) -> tuple[Any, Any]:
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(obj, Tensor):
        return obj, None
    if isinstance(obj, (tuple, list)) and 1 <= len(obj) <= 2:
        return obj[0], obj[1] if len(obj) == 2 else None
    if isinstance(obj, dict):
        arrays = {str(k): v for k, v in obj.items() if isinstance(v, Tensor)}
        return _pick(path, arrays, array, ("x", "data")), _pick_labels(path, arrays, labels)
    raise _file_error(
        path, f"holds a {type(obj).__name__}; expected a tensor, (x, labels) or a dict"
    )


def _checked(path: Path, x: Any, y: Any) -> tuple[Tensor, Tensor | None]:
    x = np.asarray(x) if not isinstance(x, Tensor) else x
    if not isinstance(x, Tensor) and x.dtype.kind not in "biuf":
        raise _file_error(path, f"data must be numeric, got dtype {x.dtype}")
    x = torch.as_tensor(x)
    if x.is_complex() or x.dtype == torch.bool:
        raise _file_error(path, f"data must be real numbers, got dtype {x.dtype}")
    if x.ndim < 2:
        raise _file_error(path, f"data must have shape (n, *event), got {tuple(x.shape)}")
    if x.shape[0] == 0 or x[0].numel() == 0:
        raise _file_error(path, f"data is empty (shape {tuple(x.shape)})")
    x = x.float()
    bad = (~torch.isfinite(x.flatten(1))).any(1)
    if bool(bad.any()):
        kind = "NaN" if bool(torch.isnan(x).any()) else "inf"
        raise _file_error(path, f"data has {kind} values in {int(bad.sum())} row(s) "
                          f"(first: row {int(bad.nonzero()[0])})")  # fmt: skip
    if y is None:
        return x, None
    y = torch.as_tensor(np.asarray(y) if not isinstance(y, Tensor) else y)
    if (y.is_floating_point() and bool((y != y.round()).any())) or y.is_complex():
        raise _file_error(path, "labels must be integers")
    if y.shape != (x.shape[0],):
        raise _file_error(path, f"labels have shape {tuple(y.shape)}, expected ({x.shape[0]},)")
    return x, y.long()
