"""Couplings and labels in the command line: the ``coupling:`` section of a training config,
the held-out conditions a conditional run is evaluated on, and ``generate --cond``.

A config's ``coupling:`` mapping (arXiv 2310.03725) builds one of
:mod:`interpolants.couplings`::

    coupling: {kind: inpainting, mask: random, keep: 0.5, noise: 1.0, start: coupled}
    #          mask: random (keep: the visible fraction), centre (size: pixels or a fraction
    #          of each side hidden), or PATH.npy (a boolean mask of one event, True = visible)
    coupling: {kind: super_resolution, factor: 2, noise: 0.5}
    coupling: {kind: blur, sigma: 1.0, noise: 0.5}
    coupling: {kind: paired, path: x0.npy, noise: 0.0}   # one x0 row per data row

A user's corruption function (:class:`~interpolants.couplings.Corruption`) cannot be written
in YAML: train it in Python, ``si.fit(x, base=si.couplings.Corruption(fn))``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import TensorDataset

from .. import checkpoints
from .. import data as datasets
from ..couplings import (
    Blur,
    Conditioned,
    Coupling,
    Independent,
    Inpainting,
    Paired,
    RandomMask,
    SuperResolution,
    centre_mask,
)
from ..couplings.observed import STARTS

__all__ = [
    "COUPLING_KEYS",
    "HELDOUT_COND",
    "build_coupling",
    "check_coupling",
    "eval_conditions",
    "held_conditions",
    "prepare_conditioning",
    "read_cond",
    "read_pairs",
    "resolve_coupling_paths",
    "split_rows",
]

_COMMON = ("kind", "noise", "start")
COUPLING_KEYS: dict[str, tuple[str, ...]] = {
    "inpainting": (*_COMMON, "mask", "keep", "size"),
    "super_resolution": (*_COMMON, "factor"),
    "blur": (*_COMMON, "sigma"),
    "paired": (*_COMMON, "path"),
}
"""The keys of each ``coupling: {kind: ...}`` of a training config."""

HELDOUT_COND = "heldout_cond.safetensors"
"""The conditions of the held-out rows of a user's file (their labels, or their paired x0
rows), beside ``heldout.safetensors``, written when a conditional run ends."""

_MASKS = ("random", "centre", "center")
_PAIR_FORMATS = (".npy", ".npz", ".pt")
_LABEL_LIST = re.compile(r"^\s*-?\d+(\s*,\s*-?\d+)*\s*,?\s*$")


def _number(spec: dict[str, Any], key: str, where: str, low: float, strict: bool) -> None:
    value = spec.get(key)
    if value is None:
        return
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not (value > low if strict else value >= low):
        bound = f"> {low}" if strict else f">= {low}"
        raise ValueError(f"{where}: {key} must be a number {bound}, got {value!r}")


def check_coupling(spec: Any, where: str = "coupling") -> dict[str, Any]:
    """The ``coupling:`` section checked: a mapping with a known ``kind`` and only its keys,
    values well typed; a ValueError naming the key otherwise."""
    if not isinstance(spec, dict):
        raise ValueError(f"{where}: must be a mapping such as {{kind: inpainting}}, got {spec!r}")
    kind = spec.get("kind")
    if kind == "corruption":
        raise ValueError(
            f"{where}: kind corruption takes a Python function, which YAML cannot hold: train "
            "it in Python, si.fit(x, base=si.couplings.Corruption(fn)); or use kind blur"
        )
    if kind not in COUPLING_KEYS:
        raise ValueError(
            f"{where}: kind: unknown coupling {kind!r}; known: {sorted(COUPLING_KEYS)}"
        )
    unknown = sorted(set(spec) - set(COUPLING_KEYS[kind]))
    if unknown:
        raise ValueError(
            f"{where}: unknown key(s) {unknown} for kind {kind}; known: {list(COUPLING_KEYS[kind])}"
        )
    _number(spec, "noise", where, 0, strict=False)
    if spec.get("start", "coupled") not in STARTS:
        raise ValueError(f"{where}: start must be one of {STARTS}, got {spec.get('start')!r}")
    if kind == "inpainting":
        _check_mask(spec, where)
    elif kind == "super_resolution":
        factor = spec.get("factor", 2)
        if not isinstance(factor, int) or isinstance(factor, bool) or factor < 1:
            raise ValueError(f"{where}: factor must be a positive integer, got {factor!r}")
    elif kind == "blur":
        _number(spec, "sigma", where, 0, strict=True)
    else:
        path = spec.get("path")
        if not isinstance(path, str) or Path(path).suffix.lower() not in _PAIR_FORMATS:
            raise ValueError(
                f"{where}: path: kind paired needs the x0 rows, a {'/'.join(_PAIR_FORMATS)} "
                f"file with one row per data row; got {path!r}"
            )
    return dict(spec)


def _check_mask(spec: dict[str, Any], where: str) -> None:
    mask = spec.get("mask", "random")
    is_file = isinstance(mask, str) and mask.lower().endswith(".npy")
    if not isinstance(mask, str) or not (mask in _MASKS or is_file):
        raise ValueError(
            f"{where}: mask must be random, centre or a .npy file of one event's boolean mask "
            f"(True = visible), got {mask!r}"
        )
    if "keep" in spec and mask != "random":
        raise ValueError(f"{where}: keep applies to mask: random (got mask: {mask})")
    if "size" in spec and mask not in ("centre", "center"):
        raise ValueError(f"{where}: size applies to mask: centre (got mask: {mask})")
    keep = spec.get("keep", 0.5)
    if not isinstance(keep, (int, float)) or isinstance(keep, bool) or not 0 < keep < 1:
        raise ValueError(f"{where}: keep must be a fraction in (0, 1), got {keep!r}")
    size = spec.get("size", 0.5)
    bad_size = isinstance(size, bool) or not isinstance(size, (int, float)) or size <= 0
    if bad_size or (isinstance(size, float) and size > 1):
        raise ValueError(
            f"{where}: size must be a number of pixels (an integer) or a fraction of each side "
            f"in (0, 1], got {size!r}"
        )


def resolve_coupling_paths(spec: dict[str, Any], folder: Path) -> dict[str, Any]:
    """The coupling's file paths (a mask file, paired rows) made absolute, relative to the
    config file's ``folder``."""
    spec = dict(spec)
    for key in ("path", "mask"):
        value = spec.get(key)
        if isinstance(value, str) and Path(value).suffix.lower() in _PAIR_FORMATS:
            spec[key] = str((folder / value).resolve())
    return spec


def _read_mask(path: str, event: tuple[int, ...]) -> Tensor:
    if not Path(path).is_file():
        raise FileNotFoundError(f"coupling: mask: file {path} does not exist")
    try:
        mask = torch.as_tensor(np.load(path, allow_pickle=False))
    except (OSError, ValueError) as err:
        raise ValueError(f"coupling: mask: {path} cannot be read ({err})") from err
    if mask.dtype != torch.bool:
        if mask.is_complex() or not bool(((mask == 0) | (mask == 1)).all()):
            raise ValueError(f"coupling: mask: {path} must be boolean (True = visible) or 0/1")
        mask = mask.bool()
    if tuple(mask.shape) != event:
        raise ValueError(
            f"coupling: mask: {path} has shape {tuple(mask.shape)}; the data's events are {event}"
        )
    if bool(mask.all()):
        raise ValueError(f"coupling: mask: {path} shows every entry: nothing to in-paint")
    return mask


def build_coupling(spec: dict[str, Any], x: Tensor, x0: Tensor | None = None) -> Conditioned:
    """The coupling of a checked ``coupling:`` section for data ``x`` (n, *event): the
    in-painting mask read or drawn for its events, super-resolution's factor checked against
    them; ``x0`` the paired rows (:func:`read_pairs`)."""
    kind, event = spec["kind"], tuple(x.shape[1:])
    common = {
        "noise": spec.get("noise", _default_noise(kind)),
        "start": spec.get("start", "coupled"),
    }
    if kind == "inpainting":
        mask = spec.get("mask", "random")
        if mask == "random":
            return Inpainting(RandomMask(spec.get("keep", 0.5)), **common)  # keep: fingerprinted
        if mask in ("centre", "center"):
            try:
                fixed = centre_mask(spec.get("size", 0.5))(1, torch.Size(event), None)[0]
            except ValueError as err:
                raise ValueError(f"coupling: size: {err}") from None
            return Inpainting(fixed.clone(), **common)
        return Inpainting(_read_mask(mask, event), **common)
    if kind == "super_resolution":
        factor = spec.get("factor", 2)
        if len(event) != 3 or event[1] % factor or event[2] % factor:
            raise ValueError(
                f"coupling: factor: super_resolution needs images (C, H, W) with H and W "
                f"divisible by factor {factor}; the data's events are {event}"
            )
        return SuperResolution(factor, **common)
    if kind == "blur":
        return Blur(spec.get("sigma", 1.0), **common)
    if x0 is None:
        raise ValueError("coupling: path: kind paired needs its x0 rows")
    return Paired(x0, **common)


def _default_noise(kind: str) -> float:
    return {"inpainting": 1.0, "paired": 0.0}.get(kind, 0.5)


def read_pairs(spec: dict[str, Any], x: Tensor) -> Tensor:
    """The x0 rows of a paired coupling, checked against the data ``x``: one row per data row,
    of the data's events."""
    try:
        x0, _ = datasets.read_file(spec["path"])
    except FileNotFoundError:
        raise FileNotFoundError(f"coupling: path: file {spec['path']} does not exist") from None
    except ValueError as err:
        raise ValueError(f"coupling: path: {err}") from None
    if tuple(x0.shape) != tuple(x.shape):
        raise ValueError(
            f"coupling: path: {spec['path']} holds {tuple(x0.shape)}; the data are "
            f"{tuple(x.shape)} (one x0 row per data row, of the same shape)"
        )
    return x0.to(x.dtype)


def split_rows(
    tensors: dict[str, Tensor], holdout: float, seed: int
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """(training rows, held-out rows) of aligned tensors, split as
    :func:`~interpolants.data.split_holdout` splits a tensor with the same ``seed``."""
    n = len(next(iter(tensors.values())))
    try:
        kept, out = datasets.holdout_split(n, holdout, seed)
    except ValueError as err:
        raise ValueError(f"data: {err}") from None
    train = {name: t[kept] for name, t in tensors.items()}
    held = {name: t[out] for name, t in tensors.items()}
    return train, held


def held_conditions(folder: Path) -> dict[str, Tensor]:
    """The held-out rows' conditions a conditional run kept (:data:`HELDOUT_COND`)."""
    path = folder / HELDOUT_COND
    if not path.exists():
        raise ValueError(
            f"{folder} has no {HELDOUT_COND} (the held-out rows' labels or x0 rows, written "
            "when training ends): finish the run (--resume) to evaluate it"
        )
    return checkpoints.load(path, kind="data")


def eval_conditions(
    folder: Path, record: dict[str, Any], model: Any, test: Tensor, generator: torch.Generator
) -> tuple[Tensor | None, Tensor | None]:
    """(cond, observations to show) of the test rows of a conditional run: a coupling's
    observations of them (paired: their x0 rows), or their labels; (None, None) for an
    unconditioned model."""
    coupling: Coupling | None = getattr(model, "coupling", None)
    spec = (record.get("data") or {}) if record else {}
    if isinstance(coupling, Independent):
        if "name" in spec:
            labels = datasets.digits_labels("test")[: len(test)]
        else:
            labels = held_conditions(folder)["labels"][: len(test)]
        return labels, None
    if not isinstance(coupling, Conditioned):
        return None, None
    cspec = record.get("coupling") if record else None
    if cspec is None:
        raise ValueError(f"{folder}: the run's config.yaml does not record its coupling")
    if cspec["kind"] == "paired":
        y = held_conditions(folder)["x0"][: len(test)]
        return y, y
    y = build_coupling(cspec, test).observe(test, generator)
    return y, y


def _load_cond_file(path: Path) -> Tensor:
    suffix = path.suffix.lower()
    if suffix not in datasets.FILE_FORMATS:
        raise ValueError(
            f"--cond: {path}: unknown format {path.suffix!r}; use "
            f"{', '.join(datasets.FILE_FORMATS)} or a list of labels such as 0,1,2"
        )
    try:
        if suffix == ".npy":
            value: Any = np.load(path, allow_pickle=False)
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as f:
                arrays = {k: f[k] for k in f.files}
            value = _only(arrays, path)
        elif suffix == ".pt":
            value = torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(value, dict):
                value = _only({k: v for k, v in value.items() if isinstance(v, Tensor)}, path)
        else:
            value = np.genfromtxt(path, delimiter=",", dtype=np.float64, ndmin=2)
            if len(value) and np.isnan(value[0]).all():  # a header line
                value = value[1:]
    except (OSError, ValueError, RuntimeError, EOFError) as err:
        raise ValueError(f"--cond: {path} cannot be read ({str(err).splitlines()[0]})") from err
    if not isinstance(value, (Tensor, np.ndarray)):
        raise ValueError(f"--cond: {path} holds a {type(value).__name__}; expected an array")
    return torch.as_tensor(value)


def _only(arrays: dict[str, Any], path: Path) -> Any:
    for name in ("cond", "x", "y", "labels", "data"):
        if name in arrays:
            return arrays[name]
    if len(arrays) == 1:
        return next(iter(arrays.values()))
    raise ValueError(f"--cond: {path} holds {sorted(arrays)}: name the array cond")


def read_cond(text: str, model: Any, record: dict[str, Any], n: int | None) -> Tensor:
    """The conditions of ``generate --cond TEXT`` for ``model``: a list of labels (``0,1,2``)
    or a file of labels or observations, checked against what the model takes (a ValueError
    naming --cond otherwise); labels are repeated to fill ``n`` when it is a multiple."""
    coupling = getattr(model, "coupling", None)
    if coupling is None:
        raise ValueError(
            "--cond: this model is not conditioned (trained without labels or a coupling)"
        )
    path = Path(text)
    listed = not path.exists() and bool(_LABEL_LIST.match(text))
    if listed:
        cond = torch.tensor([int(v) for v in text.replace(" ", "").strip(",").split(",")])
    elif path.is_file():
        cond = _load_cond_file(path)
    else:
        raise FileNotFoundError(f"--cond: file {text} does not exist (nor is it a list of labels)")
    if isinstance(coupling, Independent):
        return _labels(cond, coupling, n)
    if listed:
        raise ValueError(
            f"--cond: this model is conditioned by {coupling!r}: pass a file of observations, "
            "not a list of labels"
        )
    return _observations(cond, coupling, record)


def _labels(cond: Tensor, coupling: Independent, n: int | None) -> Tensor:
    cond = cond.reshape(-1) if cond.ndim == 2 and 1 in cond.shape else cond
    if cond.is_floating_point():
        if bool(torch.isnan(cond).any()) or not bool((cond == cond.round()).all()):
            raise ValueError("--cond: labels must be integers (class indices)")
        cond = cond.long()
    if cond.ndim != 1 or cond.dtype == torch.bool:
        raise ValueError(
            f"--cond: labels must be a list (n,) of integers, got shape {tuple(cond.shape)}"
        )
    top = coupling.classes
    if len(cond) == 0 or not 0 <= int(cond.min()) <= int(cond.max()) < top:
        got = f"[{int(cond.min())}, {int(cond.max())}]" if len(cond) else "none"
        raise ValueError(f"--cond: labels must lie in [0, {top}) (the model's classes), got {got}")
    if n is not None and n != len(cond) and len(cond) > 1:
        if n % len(cond):
            raise ValueError(
                f"-n {n} is not a multiple of the {len(cond)} labels of --cond: omit -n for one "
                "sample per label"
            )
        cond = cond.repeat_interleave(n // len(cond))
    return cond


def _observations(cond: Tensor, coupling: Conditioned, record: dict[str, Any]) -> Tensor:
    event = tuple(record.get("event_shape") or ())
    if isinstance(coupling, SuperResolution) and len(event) == 3:
        f = coupling.factor
        shape = (event[0], event[1] // f, event[2] // f)
        what = f"low-resolution images {shape} (the events {event} over factor {f})"
    else:
        shape = event
        what = f"observations of the events' shape {shape}"
    if not shape:
        raise ValueError("--cond: the run does not record its events' shape; sample in Python")
    cond = cond.to(torch.float32) if not cond.is_floating_point() else cond.float()
    size = int(np.prod(shape))
    if tuple(cond.shape) == shape:
        cond = cond[None]
    if tuple(cond.shape[1:]) != shape:
        if cond.ndim == 2 and cond.shape[1] == size:
            cond = cond.reshape(len(cond), *shape)
        elif cond.ndim == 1 and cond.numel() == size:
            cond = cond.reshape(1, *shape)
        else:
            raise ValueError(
                f"--cond: rows of shape {tuple(cond.shape[1:])}; this model takes {what}, "
                f"one per row (or flat rows of {size} numbers)"
            )
    if isinstance(coupling, Inpainting):
        bad = torch.isinf(cond)
    else:
        bad = ~torch.isfinite(cond)
    if bool(bad.any()):
        row = int(bad.flatten(1).any(1).nonzero()[0])
        allowed = (
            " (NaN marks hidden entries only for in-painting)"
            if not isinstance(coupling, Inpainting)
            else ""
        )
        raise ValueError(f"--cond: row {row} holds NaN or inf{allowed}")
    if isinstance(coupling, Inpainting) and coupling.mask is None:
        shown = (~torch.isnan(cond)).flatten(1).all(1)
        if bool(shown.any()):
            raise ValueError(
                f"--cond: row {int(shown.nonzero()[0])} shows every entry: mark the missing "
                "entries of each observation with NaN"
            )
    return cond


def prepare_conditioning(
    cspec: dict[str, Any] | None,
    data: Any,
    holdout: float | None,
    seed: int,
    labels_asked: bool,
) -> tuple[Any, Conditioned | None, float | Tensor | None, dict[str, Tensor]]:
    """(training data, coupling, holdout for fit, held-out conditions) of a run's data.

    With a coupling the data's labels are dropped (the coupling conditions on its
    observations; labels asked for in the config are a ValueError); paired x0 rows are read.
    When rows carry conditions (labels, x0 rows) and a fraction is held out, the rows are split
    here, alike, and fit gets the held-out points (so that each x0 row stays with its x1)."""
    if isinstance(data, TensorDataset):
        x, labels = data.tensors[0], (data.tensors[1] if len(data.tensors) > 1 else None)
    else:
        x, labels = data, None
    tensors: dict[str, Tensor] = {"x": x}
    if cspec is not None:
        if labels_asked:
            raise ValueError(
                "data: labels: a coupling conditions on its observations, not on labels; "
                "drop labels or the coupling"
            )
        if not isinstance(x, Tensor):
            raise ValueError("coupling: needs the data as rows (a file or a built-in data set)")
        if cspec["kind"] == "paired":
            tensors["x0"] = read_pairs(cspec, x)
    elif labels is not None:
        tensors["labels"] = labels
    held: dict[str, Tensor] = {}
    if holdout is not None and len(tensors) > 1:
        tensors, held = split_rows(tensors, holdout, seed)
        holdout = held.pop("x")  # type: ignore[assignment]
    coupling = None if cspec is None else build_coupling(cspec, tensors["x"], tensors.get("x0"))
    if "labels" in tensors:
        return TensorDataset(tensors["x"], tensors["labels"]), None, holdout, held
    return (tensors["x"] if cspec is not None else data), coupling, holdout, held
