"""The package's one progress bar."""

from __future__ import annotations

from typing import Any

__all__ = ["progress_bar"]


def progress_bar(total: int, enabled: bool, desc: str) -> Any:
    """A tqdm bar of ``total`` steps (disabled unless ``enabled``)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, desc=desc, leave=False)
