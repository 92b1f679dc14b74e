"""Support across versions: verl 0.7.1 and 0.8.0 beside the installed 0.9.1, a source install of
verl's main (0.10.0.dev0), and TRL 1.16 beside the installed 1.12.

scripts/setup.sh installs the other versions without dependencies into ``.venv/versions/<name>``;
each test puts one first on PYTHONPATH in a fresh process, over this environment's packages (the
dependencies the suite runs those versions on). verl before 0.9.1 reads no entry points, so the
plugin comes in through ``VERL_USE_EXTERNAL_MODULES``, as the docs tell its users.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # starts Ray, trains or runs subprocesses: pytest -m 'not slow' leaves it out

ROOT = Path(__file__).resolve().parent.parent
VERSIONS = ROOT / ".venv" / "versions"
OLD_VERL = ("0.7.1", "0.8.0")


def _folder(name: str) -> Path:
    path = VERSIONS / name
    if not path.is_dir():
        pytest.skip(f"{path} is missing: scripts/setup.sh installs it")
    return path


def _env(first: Path | None, plugin_by_env: bool = True) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("VERL_USE_EXTERNAL_MODULES", "VERL_USE_EXTERNAL_PLUGINS")}
    env["PYTHONPATH"] = os.pathsep.join([*([str(first)] if first else []), str(ROOT)])
    if plugin_by_env:
        env["VERL_USE_EXTERNAL_MODULES"] = "tea_verl.plugin"
    return env


def _probe(first: Path | None, out: Path) -> dict:
    run = subprocess.run([sys.executable, str(ROOT / "tests" / "versions_probe.py"), str(out)], env=_env(first),
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    return _probe(None, tmp_path_factory.mktemp("probe") / "installed.json")


@pytest.fixture(scope="module", params=OLD_VERL)
def old(request, tmp_path_factory):
    return _probe(_folder(f"verl-{request.param}"), tmp_path_factory.mktemp("probe") / f"{request.param}.json")


def test_every_estimator_gives_the_same_credit_through_each_verls_own_compute_advantage(installed, old):
    assert installed["version"] == "0.9.1" and old["version"] in OLD_VERL
    assert str(VERSIONS) in old["file"]  # that version's code ran, not the installed one
    assert old["loaded_by"] == "VERL_USE_EXTERNAL_MODULES"
    assert old["registered"] == installed["registered"] == sorted(installed["credit"])
    for name, credit in installed["credit"].items():
        a, b = np.asarray(old["credit"][name]), np.asarray(credit)
        assert a.shape == b.shape == (384, 6) and np.isfinite(a).all()
        assert np.abs(b).max() > 0.1, name  # a credit that says something
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6, err_msg=f"{name} on verl {old['version']}")


def test_the_best_of_n_manager_is_built_through_each_verls_registry_and_scores_a_batch(installed, old):
    for probe in (installed, old):
        assert probe["manager_unavailable"] is None and len(probe["manager"]) == 8
        for row in probe["manager"]:
            assert row["class"] == "tea_verl.integrations.verl.reward_manager.BestOfNRewardManager"
            assert row["score"] == row["expected"] and row["gold"] == row["expected_gold"]
    assert old["manager"] == installed["manager"]


def _support_table() -> dict[str, dict[str, str]]:
    """The README's support table: feature -> {verl version: cell}."""
    text = (ROOT / "README.md").read_text()
    lines = []
    for ln in text[text.index("| feature |"):].splitlines():
        if not ln.startswith("|"):
            break
        lines.append(ln)
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = {}
    for ln in lines[2:]:
        cells = [c.strip() for c in ln.strip("|").split("|")]
        rows[cells[0]] = dict(zip(head[1:], cells[1:]))
    return rows


FEATURE_ROWS = {  # README row -> the feature key of tea_verl.integrations.verl.private.FEATURES
    "advantage estimators": "estimators",
    "`best_of_n` reward manager": "reward_manager",
    "best-of-N validation metrics": "validation",
    "CPU backend, `tea-verl smoke`": "cpu",
}


def test_the_readme_support_table_says_what_each_verl_does(installed, old):
    table = _support_table()
    assert set(table) == set(FEATURE_ROWS)
    for probe in (installed, old):
        for row, feature in FEATURE_ROWS.items():
            cell = table[row][probe["version"]]
            line = probe["features"][feature]
            assert (cell == "yes") == (line is None), (row, probe["version"], cell, line)
            if line is not None:  # one line: the version, what it needs, the way around
                assert line.startswith(f"verl {probe['version']} has no ") and "Instead:" in line and "\n" not in line


@pytest.mark.parametrize("version", OLD_VERL)
@pytest.mark.parametrize("command, needs", [
    (["-m", "tea_verl.cli", "smoke", "--steps", "1"], "CPU backend"),
    (["-m", "tea_verl.main_ppo"], "best-of-N validation metrics"),
])
def test_what_an_older_verl_lacks_is_refused_in_one_line(version, command, needs):
    run = subprocess.run([sys.executable, *command], env=_env(_folder(f"verl-{version}")), capture_output=True,
                         text=True, timeout=300, cwd=ROOT)
    assert run.returncode != 0
    assert "Traceback" not in run.stderr
    errors = [ln for ln in run.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and f"verl {version} has no {needs}" in errors[0] and "verl>=0.9.1" in errors[0], run.stderr[-2000:]


@pytest.mark.parametrize("version", OLD_VERL)
def test_preflight_composes_on_an_older_verl_and_says_how_the_plugin_was_loaded(version):
    run = subprocess.run([sys.executable, "-m", "tea_verl.cli", "preflight", "algorithm.adv_estimator=tea", "algorithm.tea.N=64",
                          "actor_rollout_ref.rollout.n=8"], env=_env(_folder(f"verl-{version}")), capture_output=True,
                         text=True, timeout=300, cwd=ROOT)
    assert "Traceback" not in run.stderr and "error:" not in run.stderr, run.stderr[-2000:]
    assert f"plugin: verl {version}, tea-verl loaded by VERL_USE_EXTERNAL_MODULES" in run.stdout
    assert f"note: verl {version} has no best-of-N validation metrics" in run.stdout
    assert "algorithm.adv_estimator" not in run.stdout  # tea is registered: the only problems are the launch's own
    assert "preflight: FAILED" in run.stdout and "data.train_files" in run.stdout


def _verl_main(tmp_path: Path) -> Path:
    """verl as a source install of its main reports itself: the installed code, version 0.10.0.dev0,
    with its metadata, in a folder of its own."""
    import verl

    src = Path(verl.__file__).parent
    folder = tmp_path / "verl-main"
    shutil.copytree(src, folder / "verl", ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "verl" / "version" / "version").write_text("0.10.0.dev0\n")
    info = folder / "verl-0.10.0.dev0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: verl\nVersion: 0.10.0.dev0\n")
    (info / "INSTALLER").write_text("pip\n")
    (info / "RECORD").write_text("")
    return folder


def test_pip_installs_tea_verl_next_to_a_verl_main_development_version(tmp_path):
    folder = _verl_main(tmp_path)
    env = _env(folder, plugin_by_env=False)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "install", "--dry-run", "--no-index",
           "--no-build-isolation", str(ROOT)]
    run = subprocess.run(pip, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert re.search(r"Would install .*tea-verl-0\.1\.0", run.stdout), run.stdout[-2000:]
    # the requirement before this change refused it: pip would replace the development version
    from packaging.requirements import Requirement

    assert not Requirement("verl>=0.9.1,<0.10").specifier.contains("0.10.0.dev0", prereleases=True)
    # and the plugin registers with it (through the entry point, as verl 0.9.1 and later read it)
    check = ("import verl; from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY as R; "
             "from tea_verl.integrations.verl import plugin; "
             "print(verl.__version__, sorted(k for k in ('bon','tea','prefix_tea','tea_gev','prefix_tea_gev') if k in R), plugin.LOADED_BY)")
    run = subprocess.run([sys.executable, "-c", check], env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split("\n")[-2] == "0.10.0.dev0 ['bon', 'prefix_tea', 'prefix_tea_gev', 'tea', 'tea_gev'] the verl.plugins entry point"


def test_the_trl_tests_pass_on_the_newest_trl():
    """tests/test_trl.py again, with TRL 1.16 first on the path (this environment keeps TRL 1.12,
    which verl's FSDP workers need)."""
    folder = _folder("trl-1.16.0")
    env = _env(folder, plugin_by_env=False)
    version = subprocess.run([sys.executable, "-c", "import trl; print(trl.__version__)"], env=env, capture_output=True,
                             text=True, timeout=300, cwd=ROOT)
    assert version.stdout.strip() == "1.16.0", version.stderr[-2000:]
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_trl.py"], env=env,
                         capture_output=True, text=True, timeout=900, cwd=ROOT)
    tail = run.stdout[-3000:]
    assert run.returncode == 0, tail
    assert re.search(r"\b\d+ passed\b", tail) and "failed" not in tail and "skipped" not in tail, tail


BLOCK_VERL = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):  # an environment where verl and what it brings are not installed
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("verl", "hydra", "omegaconf", "ray", "tensordict"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Block())
"""


def test_the_core_and_the_trl_and_openrlhf_adapters_run_without_verl():
    """The core install (no [verl] extra): the adapters' credit, and a verl command's one line."""
    code = BLOCK_VERL + """
import torch
from tea_verl.config import TeaConfig
from tea_verl.integrations.common import grouped_credit
import tea_verl.integrations.trl, tea_verl.integrations.openrlhf.patch
credit, _, _ = grouped_credit(torch.randn(64, generator=torch.Generator().manual_seed(0)), torch.arange(8).repeat_interleave(8),
                               "prefix_tea", TeaConfig(N=64))
assert torch.isfinite(credit).all() and credit.abs().max() > 0.1
assert not any(m.split(".")[0] == "verl" for m in sys.modules)
from tea_verl.cli import main
sys.exit(main(["smoke", "--steps", "1"]))
"""
    run = subprocess.run([sys.executable, "-c", code], env=_env(None, plugin_by_env=False), capture_output=True, text=True,
                         timeout=300, cwd=ROOT)
    assert run.returncode == 2, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    assert run.stderr.strip().splitlines()[-1].startswith("error: this command runs verl") and "pip install 'tea-verl[verl]'" in run.stderr
