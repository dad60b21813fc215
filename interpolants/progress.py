"""Progress bars: the library's one use of tqdm.

``progress_bar(total, enabled, desc)`` is a tqdm bar, disabled (every call a no-op) unless
``enabled``; given ``iterable`` it wraps it, like ``tqdm(iterable)``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["progress_bar"]


def progress_bar(
    total: int | None,
    enabled: bool = True,
    desc: str | None = None,
    *,
    iterable: Iterable[Any] | None = None,
    initial: int = 0,
    unit: str = "it",
    leave: bool = False,
) -> Any:
    """A tqdm bar over ``total`` steps (of ``iterable`` when given), shown only if ``enabled``.

    Arguments:
        total: the number of steps (None: unknown).
        enabled: show the bar; when False it is disabled and its methods do nothing.
        desc: the label before the bar.
        iterable: iterate over this through the bar (``for x in progress_bar(...)``).
        initial: the step the bar starts at (a resumed run).
        unit: the name of one step.
        leave: keep the finished bar on screen.
    """
    from tqdm.auto import tqdm

    return tqdm(
        iterable,
        total=total,
        desc=desc,
        initial=initial,
        unit=unit,
        leave=leave,
        disable=not enabled,
    )
