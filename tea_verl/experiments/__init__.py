"""Experiments users can run: the mismatch bandit (``tea-verl demo``, :mod:`.bandit`) and a tiny
language model trained through verl's trainer on the CPU (``tea-verl demo --lm``, ``python -m
benchmarks.lm``, :mod:`.lm`)."""
