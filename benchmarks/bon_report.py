"""bon-report speed on a 250 x 256 validation dump, and scaling-law recovery on known laws.

    python -m benchmarks.bon_report

1. Writes a verl-v1-shaped validation dump (250 prompts x 256 samples, two data sources, gold
   scores) and times ``tea-verl bon-report`` end to end in a fresh process (interpreter start,
   reading, exact curves, fit with bootstrap, CSV/JSON/PNG): median of 3 runs.
2. Draws 250 prompts x 64 samples from generalised-Pareto laws with known (a, b, xi), fits
   ``J_k = a + b Phi_xi(k)`` with xi free, and prints the relative errors of a and b.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np


def write_dump(directory: str, prompts: int = 250, n: int = 256, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "100.jsonl")
    with open(path, "w") as f:
        for p in range(prompts):
            uid = f"{p:08x}-0000-4000-8000-{p:012x}"
            src = "ultrafeedback" if p % 2 else "hh_rlhf"
            sel = rng.normal(loc=rng.normal(), size=n)
            gold = 0.7 * sel + rng.normal(scale=0.7, size=n)
            for s in range(n):
                f.write(json.dumps({"input": "prompt text", "output": "response text", "gts": None, "score": sel[s],
                                    "step": 100, "reward": sel[s], "bon_selection_score": sel[s],
                                    "bon_gold_score": gold[s], "bon_response_length": 100,
                                    "bon_data_source": src, "uid": f"{uid}_{s}_0"}) + "\n")
    return path


def time_report(directory: str, repeats: int = 3) -> list[float]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "tea_verl.cli", "bon-report", directory, "--out",
                        os.path.join(directory, "out")], check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return times


def law_recovery(prompts: int = 250, n: int = 64, seed: int = 7):
    from tea_verl.metrics.curves import fit_scaling_law, summarize_curves

    rows = []
    for xi in (-0.3, 0.0, 0.2):
        a, b = 1.0, 2.0
        u = np.random.default_rng(seed).random((prompts, n))
        tail = -np.log1p(-u) if xi == 0 else ((1 - u) ** (-xi) - 1) / xi
        s, curves = summarize_curves("d", [(r, None) for r in a + b * tail], keep_rows=True)
        fit = fit_scaling_law(s.best_mean, s.best_sem, prompt_rows=curves)
        rows.append((xi, fit))
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--prompts", type=int, default=250)
    p.add_argument("--n", type=int, default=256)
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as d:
        write_dump(d, a.prompts, a.n)
        times = time_report(d)
    print(f"bon-report on {a.prompts} x {a.n} = {a.prompts * a.n} samples (fresh process, end to end): "
          f"median {statistics.median(times):.2f} s of {', '.join(f'{t:.2f}' for t in times)}")
    print("\nscaling-law fit, 250 prompts x 64 samples, generalised-Pareto law a = 1, b = 2, xi free:")
    print(f"{'true xi':>8} {'fitted xi':>10} {'a':>8} {'a err':>7} {'b':>8} {'b err':>7} {'R^2':>8}")
    for xi, fit in law_recovery():
        print(f"{xi:>8.2f} {fit.xi:>10.3f} {fit.a:>8.4f} {abs(fit.a - 1) * 100:>6.1f}% {fit.b:>8.4f} "
              f"{abs(fit.b - 2) / 2 * 100:>6.1f}% {fit.r2:>8.5f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
