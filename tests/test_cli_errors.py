"""Bad input on the command line: one line naming the problem and the fix, a non-zero exit, no traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # starts Ray, trains or runs subprocesses: pytest -m 'not slow' leaves it out


@pytest.fixture(scope="module")
def scores(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "scores.jsonl"
    with open(path, "w") as f:
        for p in range(12):
            for s in range(16):
                f.write(json.dumps({"uid": f"p{p}", "score": float((p * 7 + s * 3) % 11)}) + "\n")
    return str(path)


CASES = [
    (["preflight", "algorithm.tea.NN=64"], 2, "Could not override 'algorithm.tea.NN'"),
    (["preflight", "garbage"], 2, "Error parsing override 'garbage' (overrides are key=value"),
    (["preflight", "--config-name", "nope"], 2, "Cannot find primary config 'nope'"),
    (["bon-report", "{scores}", "--out", "/proc/nope/report"], 1, "cannot write the report to /proc/nope/report"),
    (["bon-report", "{scores}", "--shape", "2"], 2, "--shape is 'fit' or a number in [-2, 1)"),
    (["bon-report", "{scores}", "--step", "3"], 1, "--step 3 selects a step of a validation_data_dir, but"),
    (["demo", "--N", "4"], 2, "--N 4 is not above --m 8"),
    (["diagnose", "missing_dir", "--m", "8", "--N", "64"], 1, "missing_dir: no such file or directory"),
    (["diagnose", "{scores}", "--m", "0", "--N", "64"], 1, "--m (rollouts per prompt in training) must be >= 2, got 0"),
    (["smoke", "--steps", "0"], 2, "--steps must be >= 1"),
]


@pytest.mark.parametrize("args, status, message", CASES)
def test_bad_input_is_one_line(args, status, message, scores, tmp_path):
    args = [a.format(scores=scores) for a in args]
    proc = subprocess.run([sys.executable, "-m", "tea_verl.cli", *args], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "RAY_AUTH_MODE": "disabled"}, timeout=300)
    assert proc.returncode == status, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert message in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr + proc.stdout
    assert len([line for line in proc.stderr.splitlines() if "error:" in line]) == 1, proc.stderr


def test_discrete_scores_are_not_extrapolated_above_their_top_level(tmp_path):
    from tea_verl.metrics.report import analyse, format_report
    from tea_verl.metrics.samples import read_samples

    path = tmp_path / "passfail.jsonl"
    with open(path, "w") as f:
        for p in range(50):
            for s in range(8):
                f.write(json.dumps({"uid": f"p{p}", "score": float((p + s) % 5 == 0)}) + "\n")
    report = analyse(read_samples(str(path)), extrapolate_to=(128, 1024))
    fit = next(iter(report.sources.values())).fit
    assert fit is not None and max(fit.extrapolated.values()) <= 1.0
    text = format_report(report)
    assert "only 2 distinct values" in text and "extrapolating from k <= 8 sampled per prompt to 1024 (128x)" in text
