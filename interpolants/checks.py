"""Argument checks shared by the library's modules.

Each returns the checked value (as the type it names) or raises a ``ValueError`` that names
the argument and shows the value given. Booleans are not taken for numbers.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "finite_float",
    "finite_initial",
    "float_dtype",
    "fraction",
    "int_at_least",
    "is_int",
    "is_number",
    "positive_float",
    "positive_int",
    "positive_number",
]


def is_number(value: Any) -> bool:
    """An int or a float, not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_int(value: Any) -> bool:
    """An int, not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def positive_number(name: str, value: Any, allow_zero: bool = False) -> float:
    """``value`` as a finite float > 0 (>= 0 with ``allow_zero``), else ``ValueError``."""
    if (
        not (is_number(value) and math.isfinite(value))
        or value < 0
        or (value == 0 and not allow_zero)
    ):
        kind = "non-negative" if allow_zero else "positive"
        raise ValueError(f"{name} must be a {kind} number, got {value!r}")
    return float(value)


def int_at_least(name: str, value: Any, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum``, else ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def positive_int(name: str, value: Any) -> int:
    """``value`` as an int >= 1, else ``ValueError``: "NAME must be a positive integer"."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def positive_float(name: str, value: Any) -> float:
    """``value`` (an int or a float > 0) as a float, else ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def finite_float(name: str, value: Any) -> float:
    """``value`` (a finite int or float) as a float, else ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def fraction(name: str, value: Any) -> float:
    """``value`` as a float in the open interval (0, 1), else ``ValueError`` naming ``name``."""
    if not isinstance(value, (int, float)) or not 0.0 < float(value) < 1.0:
        raise ValueError(f"{name} must be a number in (0, 1), got {value!r}")
    return float(value)


def boolean(name: str, value: Any) -> bool:
    """``value`` as a bool if it is True or False (numpy's too) or the integer 1 or 0, else
    ``ValueError``: a string such as "no", which ``bool()`` would make True, is refused."""
    if isinstance(value, (bool, np.bool_)) or (is_int(value) and value in (0, 1)):
        return bool(value)
    raise ValueError(f"{name} must be True or False, got {value!r}")


def float_dtype(dtype: Any, name: str = "dtype") -> torch.dtype:
    """``dtype`` if it is torch.float32 or torch.float64, else ``ValueError``."""
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"{name} must be torch.float32 or torch.float64, got {dtype!r}")
    return dtype


def finite_initial(state: Any, name: str, values: tuple[Tensor, ...] = ()) -> None:
    """``ValueError`` naming ``name`` and the walkers whose log density is not finite.

    ``state`` has ``log_prob`` (n,) and ``grad`` (n, d) (a sampler's state); ``values`` are
    further (n, ...) tensors that must be finite walker by walker."""
    ok = torch.isfinite(state.log_prob) & torch.isfinite(state.grad).all(-1)
    for v in values:
        ok &= torch.isfinite(v.reshape(v.shape[0], -1)).all(-1)
    if not bool(ok.all()):
        bad = torch.nonzero(~ok).flatten().tolist()
        shown = ", ".join(map(str, bad[:20])) + (", ..." if len(bad) > 20 else "")
        raise ValueError(
            f"{name}: log_prob or its gradient is not finite at {len(bad)} initial walker(s), "
            f"indices [{shown}]; start the walkers inside the support (init= for MCMC, base= "
            "for AIS/SMC)"
        )
