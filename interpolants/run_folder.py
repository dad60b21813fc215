"""The one run folder: config, metrics.jsonl, safe atomic checkpoints, resume, and the rule
that keeps two runs from mixing.

The rule (as Lightning and Hydra users know it): a run writes into a folder that is missing or
empty. A folder that already holds something is refused unless the run says what to do with
it:

- ``resume``: continue the run whose checkpoint is there (the caller checks that every setting
  which changes the result is the same before anything is written);
- ``overwrite``: replace it. The previous contents are moved aside into ``.replaced/`` when the
  new run starts and deleted only when it finishes; if it fails they are put back, so a failed
  run leaves the previous results untouched.

Whatever fails writes ``error.json`` (status, one-line reason) beside the results; an
interrupted run (Ctrl-C) keeps its last checkpoint and says how to resume. Nothing is written
before :meth:`RunFolder.accept`: a refused run leaves the folder as it was.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import checkpoints

__all__ = [
    "CHECKPOINT",
    "CONFIG",
    "ERROR",
    "METRICS",
    "METRICS_LOG",
    "Interrupt",
    "RunFolder",
    "TrainingInterrupted",
    "deferred_interrupt",
    "file_mode",
    "write_atomic",
]

CHECKPOINT = "checkpoint.safetensors"
CONFIG = "config.yaml"  # written as JSON, which every YAML parser reads as it is
METRICS = "metrics.json"
METRICS_LOG = "metrics.jsonl"
ERROR = "error.json"
REPLACED = ".replaced"


def write_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then rename it over ``path``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def file_mode() -> int:
    """The mode a new file gets under the process's umask (mkstemp's temporary files are
    0600; results renamed from them should be readable as any file the user writes)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def _check_makeable(folder: Path) -> None:
    """``ValueError`` unless ``folder`` exists or can be made: checked before any work, so
    that a run is not computed and then lost for want of its folder."""
    ancestor = folder.absolute()
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ValueError(f"cannot make the run folder {folder}: {ancestor} is a file")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ValueError(
            f"cannot make the run folder {folder}: no permission to write in {ancestor}"
        )


class RunFolder:
    """A run's folder, or nothing at all when ``path`` is None (every method is then a no-op).

    Arguments:
        path: the folder (created on :meth:`accept`), or None.
        resume: continue the run that is there.
        overwrite: replace what is there (kept aside until the new run finishes).
        writer: False on every process of a distributed run but the first (they read only;
            the first alone refuses a folder that holds a run).
        hint: what the refusal tells the user to do (default: name resume and overwrite).

    Raises:
        ValueError: the folder holds something and neither ``resume`` nor ``overwrite`` is
            set (the message names both), or both are set.
    """

    def __init__(
        self,
        path: str | Path | None,
        *,
        resume: bool = False,
        overwrite: bool = False,
        writer: bool = True,
        hint: str | None = None,
    ):
        if resume and overwrite:
            raise ValueError("resume and overwrite exclude each other: choose one")
        self.path = None if path is None else Path(path)
        self.resume, self.overwrite, self.writer = resume, overwrite, writer
        self.accepted = False
        if self.path is None:
            return
        if self.path.exists() and not self.path.is_dir():
            raise ValueError(f"{self.path} is a file, not a run folder")
        if writer:
            _check_makeable(self.path)
        held = [name for name in _entries(self.path) if name != ERROR]  # a failure alone: empty
        if held and not (resume or overwrite) and writer:  # the writer alone refuses
            shown = ", ".join(held[:4]) + (", ..." if len(held) > 4 else "")
            hint = hint or (
                "pass --resume (resume=True) to continue it, --overwrite (overwrite=True) to "
                "replace it, or choose another folder"
            )
            raise ValueError(f"{self.path} already holds a run ({shown}); {hint}")

    def __bool__(self) -> bool:
        return self.path is not None

    def __str__(self) -> str:
        return "(no folder)" if self.path is None else str(self.path)

    def file(self, name: str) -> Path:
        if self.path is None:
            raise ValueError("this run has no folder")
        return self.path / name

    # --- before the run is accepted: read only ----------------------------------------------
    def checkpoint(self, kind: str = "training") -> dict[str, Any] | None:
        """The checkpoint to resume from, or None when there is none (or no folder)."""
        if self.path is None or not self.resume:
            return None
        path = self.path / CHECKPOINT
        if not path.exists():
            if (self.path / "checkpoint.pt").exists():
                checkpoints.load(self.path / "checkpoint.pt")  # refused, with the reason
            return None
        return checkpoints.load(path, kind=kind)

    # --- accepting the run ------------------------------------------------------------------
    def accept(self, config: dict[str, Any] | None = None) -> None:
        """Start writing: create the folder, move a replaced run aside, clear a stale
        error.json, write ``config`` (plain data) to ``config.yaml`` (as JSON, a subset of
        YAML: the library needs no YAML writer)."""
        if self.accepted:
            return
        self.accepted = True
        if self.path is None or not self.writer:
            return
        self.path.mkdir(parents=True, exist_ok=True)
        if self.overwrite:
            aside = self.path / REPLACED
            if aside.exists():  # an earlier overwrite was cut short: its files are the good ones
                for name in _entries(self.path):
                    if name != REPLACED:
                        _remove(self.path / name)
            else:
                aside.mkdir()
                for name in _entries(self.path):
                    if name != REPLACED:
                        os.replace(self.path / name, aside / name)
        with contextlib.suppress(FileNotFoundError):
            (self.path / ERROR).unlink()
        if config is not None:
            write_atomic(self.path / CONFIG, json.dumps(config, indent=2))

    def _writes(self) -> bool:
        if self.path is not None and self.writer and not self.accepted:
            raise RuntimeError("RunFolder: accept() the run before writing to it")
        return self.path is not None and self.writer

    # --- while it runs ------------------------------------------------------------------------
    def log(self, row: dict[str, Any]) -> None:
        """Append one line to metrics.jsonl."""
        if self._writes():
            with open(self.file(METRICS_LOG), "a") as f:
                f.write(json.dumps(row) + "\n")

    def rewind(self, key: str, last: float | None) -> None:
        """Keep the metrics.jsonl lines with ``row[key] <= last`` (all of them go when
        ``last`` is None): lines logged after the checkpoint are written again by the resumed
        run; a line cut by a crash is dropped."""
        if not self._writes() or not self.file(METRICS_LOG).exists():
            return
        lines = self.file(METRICS_LOG).read_text().splitlines()
        kept = []
        for line in lines:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if last is not None and isinstance(row, dict) and row.get(key, last + 1) <= last:
                kept.append(line)
        if len(kept) < len(lines):
            write_atomic(self.file(METRICS_LOG), "".join(x + "\n" for x in kept))

    def save_checkpoint(self, tree: dict[str, Any], kind: str = "training") -> None:
        if self._writes():
            checkpoints.save(self.file(CHECKPOINT), tree, kind=kind)

    def write_json(self, name: str, value: Any) -> Path | None:
        if not self._writes():
            return None
        write_atomic(self.file(name), json.dumps(value, indent=2))
        return self.file(name)

    # --- the end ------------------------------------------------------------------------------
    def finish(self) -> None:
        """The run succeeded: the replaced run's files go."""
        if self.path is not None and self.writer and self.accepted:
            _remove(self.path / REPLACED)

    def fail(self, err: BaseException, interrupted: bool = False) -> None:
        """Write error.json; a failed (not interrupted) overwrite puts the previous run back.

        A folder that holds error.json alone counts as empty for the next run."""
        if self.path is None or not self.writer:
            return
        aside = self.path / REPLACED
        record: dict[str, Any] = {"status": "interrupted" if interrupted else "failed"}
        if self.overwrite and self.accepted and aside.is_dir() and not interrupted:
            for name in _entries(self.path):
                if name != REPLACED:
                    _remove(self.path / name)
            for name in _entries(aside):
                os.replace(aside / name, self.path / name)
            aside.rmdir()
            record["restored"] = "this run's files were removed, the run it was to replace put back"
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        record |= {"error": reason, "type": type(err).__name__}
        self.path.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path / ERROR, json.dumps(record, indent=2))

    @contextlib.contextmanager
    def running(self) -> Iterator[RunFolder]:
        """``with folder.running():`` the run's body; on an error :meth:`fail` (then the error
        goes on), on success :meth:`finish`."""
        try:
            yield self
        except KeyboardInterrupt as err:
            self.fail(err, interrupted=True)
            raise
        except BaseException as err:
            self.fail(err)
            raise
        self.finish()


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a training loop after a whole step; a checkpoint of it was written first
    (when the run has a folder) and the message says how to resume."""


class Interrupt:
    """Set by :func:`deferred_interrupt` when Ctrl-C was pressed."""

    requested = False


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[Interrupt]:
    """Ctrl-C sets a flag that the loop reads after a whole step (a second one stops at once),
    so the checkpoint written on the way out is a consistent state."""
    flag = Interrupt()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum: int, frame: Any) -> None:
        if flag.requested:
            raise KeyboardInterrupt
        flag.requested = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)
