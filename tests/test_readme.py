"""The README's two commands are the ones CI and users run; keep them in step with .ci/run."""

from __future__ import annotations

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _readme():
    return open(os.path.join(ROOT, "README.md")).read()


def test_ci_runs_the_readme_test_command_verbatim():
    ci = open(os.path.join(ROOT, ".ci", "run")).read().strip().splitlines()[-1]
    assert ci in _readme(), f".ci/run's command {ci!r} is not the README's test command"


def test_readme_main_job_command_uses_the_setup_script():
    assert re.search(r"^bash scripts/setup\.sh && \.venv/bin/tea-verl demo$", _readme(), re.M)


def test_cli_config_dir_points_at_the_hydra_config():
    out = subprocess.run([sys.executable, "-m", "tea_verl.cli", "config-dir"], capture_output=True, text=True, check=True)
    assert os.path.isfile(os.path.join(out.stdout.strip(), "tea_trainer.yaml"))


def test_ci_runs_the_readme_main_job_command_verbatim_too():
    ci = [line.strip() for line in open(os.path.join(ROOT, ".ci", "run"))]
    main_job = re.search(r"^(bash scripts/setup\.sh && \.venv/bin/tea-verl demo)$", _readme(), re.M).group(1)
    assert main_job in ci, "the README's main-job command must run in .ci/run on the fresh clone"
