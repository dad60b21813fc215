"""Progress bars: the library asks for them here, the app layer draws them.

``progress_bar(total, enabled, desc)`` returns a bar from :data:`BAR_FACTORY`, which the
composition root (``interpolants/__init__.py``) sets to the app's tqdm bar
(:func:`interpolants.app.progress_bars.tqdm_bar`), as it sets ``train.DEFAULT_ON_END`` to the
app's plots: no library module imports tqdm. A disabled bar, or one asked for before a factory
is set, is :class:`SilentBar`, whose methods do nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

__all__ = ["BAR_FACTORY", "SilentBar", "progress_bar"]

#: (iterable, total, desc, initial, unit, leave) -> a bar with update, set_postfix, close
BAR_FACTORY: Callable[..., Any] | None = None


class SilentBar:
    """A bar that shows nothing: iterates over its iterable, every other method a no-op."""

    def __init__(self, iterable: Iterable[Any] | None = None, initial: int = 0):
        self.iterable, self.n = iterable, initial

    def __iter__(self) -> Iterator[Any]:
        return iter(self.iterable if self.iterable is not None else ())

    def update(self, n: float = 1) -> None:
        self.n += n

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass


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
    """A bar over ``total`` steps (of ``iterable`` when given), shown only if ``enabled``.

    Arguments:
        total: the number of steps (None: unknown).
        enabled: show the bar; when False it is a :class:`SilentBar`.
        desc: the label before the bar.
        iterable: iterate over this through the bar (``for x in progress_bar(...)``).
        initial: the step the bar starts at (a resumed run).
        unit: the name of one step.
        leave: keep the finished bar on screen.
    """
    if not enabled or BAR_FACTORY is None:
        return SilentBar(iterable, initial)
    return BAR_FACTORY(iterable=iterable, total=total, desc=desc, initial=initial, unit=unit,
                       leave=leave)  # fmt: skip
