"""Unnormalised target densities (BENCHMARKS.md) for the samplers."""

from .base import Target

__all__ = ["Target"]
