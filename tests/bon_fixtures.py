"""Shared helpers for the best-of-N validation tests."""

from benchmarks.common import compose_tea_trainer as compose  # noqa: F401
