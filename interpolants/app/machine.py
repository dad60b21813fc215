"""What a benchmark ran on, recorded beside its results."""

from __future__ import annotations

import os
import platform
from datetime import date
from typing import Any

import torch

__all__ = ["machine_info"]


def machine_info() -> dict[str, Any]:
    """What a benchmark ran on: cores, torch threads and version, Python, date."""
    return {
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "date": date.today().isoformat(),
    }
