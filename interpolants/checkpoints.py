"""Safe checkpoint files: tensors in safetensors, everything else as JSON in its header.

A checkpoint is a tree of dicts, lists, tuples, numbers, strings, None, torch dtypes and
tensors. :func:`save` writes the tensors with safetensors (Hugging Face's format for weights)
and the rest of the tree as JSON in the file's metadata; :func:`load` rebuilds the tree. Reading
a file creates only those types: unlike a pickle (``torch.load(weights_only=False)``), a file
cannot make the reader run code. Networks are stored as their state dicts with a description
(registered class name and keyword arguments, :mod:`interpolants.nn`) that the loader uses to
rebuild them.

Files are written to a temporary name in the same folder, then renamed over the target: a crash
never leaves half a file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["FORMAT", "FORMAT_VERSION", "CheckpointError", "load", "save"]

FORMAT = "interpolants"
FORMAT_VERSION = 2
"""Version 1 (interpolants 0.1) was a pickle written by ``torch.save``; it is refused on load."""


def _looks_pickled(path: Path) -> bool:
    """A torch.save zip archive, or a raw pickle (protocol 2 to 5): only read as bytes."""
    with open(path, "rb") as f:
        head = f.read(2)
    return head == b"PK" or (len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5)


class CheckpointError(ValueError):
    """A file that is not a checkpoint of this version (corrupt, foreign, or a pickle)."""


def _encode(value: Any, tensors: dict[str, Tensor], where: str) -> Any:
    """JSON-able form of ``value``; tensors go to ``tensors`` under a fresh key."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value)
    if isinstance(value, Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = value.detach().to("cpu", copy=True).contiguous()
        return {"__tensor__": key}
    if isinstance(value, torch.dtype):
        return {"__dtype__": str(value).removeprefix("torch.")}
    if isinstance(value, torch.device):
        return {"__device__": str(value)}
    if isinstance(value, (tuple, torch.Size)):
        return {"__tuple__": [_encode(v, tensors, f"{where}[{i}]") for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(v, tensors, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        items = [(k, _encode(v, tensors, f"{where}.{k}")) for k, v in value.items()]
        if all(isinstance(k, str) and not k.startswith("__") for k, _ in items):
            return dict(items)
        return {"__items__": [[_encode(k, tensors, where), v] for k, v in items]}
    raise TypeError(
        f"cannot save {type(value).__name__} at {where or 'the top'}: checkpoints hold tensors "
        "and plain data only (dict, list, tuple, number, string, None, dtype)"
    )


def _decode(value: Any, tensors: dict[str, Tensor]) -> Any:
    if isinstance(value, list):
        return [_decode(v, tensors) for v in value]
    if not isinstance(value, dict):
        return value
    if "__tensor__" in value:
        return tensors[value["__tensor__"]]
    if "__dtype__" in value:
        dtype = getattr(torch, value["__dtype__"], None)
        if not isinstance(dtype, torch.dtype):
            raise CheckpointError(f"unknown dtype {value['__dtype__']!r}")
        return dtype
    if "__device__" in value:
        return torch.device(value["__device__"])
    if "__tuple__" in value:
        return tuple(_decode(v, tensors) for v in value["__tuple__"])
    if "__items__" in value:
        return {_decode(k, tensors): _decode(v, tensors) for k, v in value["__items__"]}
    return {k: _decode(v, tensors) for k, v in value.items()}


def save(path: str | Path, tree: dict[str, Any], kind: str) -> None:
    """Write ``tree`` to ``path`` atomically (temporary file in the same folder, then rename).

    Arguments:
        path: the file to write (its folder must exist).
        tree: tensors and plain data (see the module docstring); anything else is a TypeError
            naming where it sits in the tree.
        kind: what the file holds (e.g. ``"model"``, ``"training"``), checked by :func:`load`.
    """
    from safetensors.torch import save_file

    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"folder {path.parent} does not exist (writing {path})")
    tensors: dict[str, Tensor] = {}
    body = _encode(tree, tensors, "")
    meta = {"format": FORMAT, "version": str(FORMAT_VERSION), "kind": kind}
    meta["tree"] = json.dumps(body)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=meta)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)  # mkstemp makes 0600; a result is readable as any file
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load(path: str | Path, kind: str | tuple[str, ...] | None = None) -> dict[str, Any]:
    """Read a file written by :func:`save`: tensors on the CPU, the tree as it was saved.

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: a pickle (interpolants 0.1 wrote those; they are refused unread,
            since unpickling can run code), a corrupt or foreign file, or a file of another
            ``kind``.
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            if meta.get("format") != FORMAT:
                raise CheckpointError(f"{path} is not an interpolants checkpoint")
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        if meta.get("version") != str(FORMAT_VERSION):
            raise CheckpointError(
                f"{path} is a checkpoint of format version {meta.get('version')}; this "
                f"interpolants reads version {FORMAT_VERSION}"
            )
        tree = _decode(json.loads(meta["tree"]), tensors)
    except CheckpointError:
        raise
    except (SafetensorError, OSError, ValueError, KeyError, TypeError) as err:
        if _looks_pickled(path):
            raise CheckpointError(
                f"{path} is a pickle (as torch.save writes), not a checkpoint of interpolants "
                ">= 0.2; it was not unpickled, since that can run arbitrary code (files of "
                "interpolants 0.1 were pickles: retrain the run with this version)"
            ) from None
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(f"{path} is corrupt or not a checkpoint ({reason})") from err
    wanted = (kind,) if isinstance(kind, str) else kind
    if wanted is not None and meta.get("kind") not in wanted:
        raise CheckpointError(
            f"{path} holds a {meta.get('kind')!r} checkpoint, expected {' or '.join(wanted)}"
        )
    return tree
