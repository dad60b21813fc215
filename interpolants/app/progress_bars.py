"""The progress bar the library's loops show (:mod:`interpolants.progress` asks for it)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["tqdm_bar"]


def tqdm_bar(
    *,
    iterable: Iterable[Any] | None,
    total: int | None,
    desc: str | None,
    initial: int,
    unit: str,
    leave: bool,
) -> Any:
    """A tqdm bar (``tqdm.auto``: a widget in notebooks, text in a terminal)."""
    from tqdm.auto import tqdm  # imported on the first bar, not with the package

    return tqdm(iterable, total=total, desc=desc, initial=initial, unit=unit, leave=leave)
