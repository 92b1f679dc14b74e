"""The house by concern: the layers contract, no private name across modules, one table of estimators,
the kept public paths, and every verl name the package relies on."""

from __future__ import annotations

import ast
import inspect
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
LINT = shutil.which("lint-imports", path=os.path.dirname(sys.executable)) or shutil.which("lint-imports")


def _lint(cwd: pathlib.Path) -> subprocess.CompletedProcess:
    assert LINT, "lint-imports is missing: pip install -e '.[test]' installs import-linter"
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run([LINT, "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_the_layers_contract_is_kept():
    out = _lint(ROOT)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "3 kept, 0 broken" in out.stdout


@pytest.mark.parametrize(
    "module,line,contract",
    [
        ("estimators/layout.py", "from tea_verl.metrics import curves", "each subpackage imports only the ones below it"),
        ("metrics/samples.py", "from tea_verl.metrics import report", "no import loop"),
        ("metrics/quality.py", "from verl.trainer.ppo.core_algos import get_adv_estimator_fn", "never import verl or Ray"),
    ],
)
def test_the_contract_catches_an_upward_import_and_a_loop(tmp_path, module, line, contract):
    """The contract is not vacuous: a copy of the package with one bad import breaks it."""
    shutil.copytree(ROOT / "tea_verl", tmp_path / "tea_verl", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "tea_verl" / module
    target.write_text(target.read_text() + f"\n\ndef _bad():\n    {line}  # noqa\n")
    out = _lint(tmp_path)
    assert out.returncode != 0
    assert f"{contract}" in out.stdout and "BROKEN" in out.stdout, out.stdout[-3000:]


def _python_files():
    for root in ("tea_verl", "tests", "benchmarks", "recipes"):
        yield from sorted((ROOT / root).rglob("*.py"))


def test_no_private_name_crosses_a_module_boundary():
    """No ``from tea_verl.x import _name`` and no ``module._name`` of an imported tea_verl or
    benchmarks module, anywhere in the tree (tests and benchmarks included)."""
    crossings = []
    for path in _python_files():
        tree = ast.parse(path.read_text())
        modules: dict[str, str] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in ("tea_verl", "benchmarks"):
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        crossings.append(f"{path.relative_to(ROOT)}:{node.lineno}: from {node.module} import {alias.name}")
                    else:
                        modules[alias.asname or alias.name] = f"{node.module}.{alias.name}"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] in ("tea_verl", "benchmarks"):
                        modules[alias.asname or alias.name.split(".")[0]] = alias.name
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                    and isinstance(node.value, ast.Name) and node.value.id in modules):
                crossings.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value.id}.{node.attr}")
    assert crossings == []


def test_the_estimator_names_are_listed_once():
    """Outside the estimator table, no tuple, list, set or dict literal names two or more of the
    registered estimators (the package and the benchmarks read the table instead)."""
    from tea_verl.estimators.table import ESTIMATORS

    lists = []
    for path in _python_files():
        if path.parts[-3:] == ("tea_verl", "estimators", "table.py") or "tests" in path.relative_to(ROOT).parts[:1]:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            items = node.keys if isinstance(node, ast.Dict) else getattr(node, "elts", None) if isinstance(node, (ast.Tuple, ast.List, ast.Set)) else None
            if items is None:
                continue
            names = [e.value for e in items if isinstance(e, ast.Constant) and e.value in ESTIMATORS]
            if len(names) >= 2:
                lists.append(f"{path.relative_to(ROOT)}:{node.lineno}: {names}")
    assert lists == []


def test_the_table_drives_registration_labels_and_limits():
    import verl  # noqa: F401  (the plugin registers)
    from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY

    from tea_verl.estimators import gaussian
    from tea_verl.estimators.table import COMPARISON, ESTIMATORS, GAUSSIAN, GEV, LABELS, METHODS, comparison_method
    from tea_verl.experiments import bandit, lm
    from tea_verl.integrations.verl.advantage import ESTIMATOR_FUNCTIONS
    from tea_verl.metrics.quality import ESTIMATOR_NAMES

    assert ESTIMATORS == ("bon", "tea", "prefix_tea", "tea_gev", "prefix_tea_gev")
    assert set(ESTIMATOR_FUNCTIONS) == set(ESTIMATORS)
    assert all(ADV_ESTIMATOR_REGISTRY[name] is ESTIMATOR_FUNCTIONS[name] for name in ESTIMATORS)
    assert bandit.DEFAULT_ESTIMATORS == lm.ESTIMATORS == COMPARISON
    assert set(ESTIMATOR_NAMES) == set(COMPARISON) - {"oracle"}
    assert set(LABELS) == {row.name for row in METHODS}
    assert comparison_method("bon").name == "bon_m" and comparison_method("bon_m").n_arg(8, 64) == 8
    assert comparison_method("oracle").group_size(8, 64) == 64
    for name in GAUSSIAN:  # the table's smallest m is the Gaussian tail rule at the default alpha
        assert comparison_method(name).smallest_m == gaussian.min_group_size(gaussian.DEFAULT_ALPHA)
    for name in GEV:  # order 1 cancels two moments: three samples
        assert comparison_method(name).smallest_m == 3
    with pytest.raises(ValueError, match="unknown method 'teaa'; choose one of grpo"):
        comparison_method("teaa")


def _functions(path: pathlib.Path) -> list[ast.AST]:
    return [n for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def test_the_front_door_is_its_own_module_and_the_wrappers_come_from_the_table():
    """The estimators' package __init__ only re-exports (no function of its own); verl's wrappers are
    built from the table, one per row (no lookup of hand-written functions by name), each with the
    row's one-line summary; no adapter builds the settings through a stand-in of verl's config node."""
    from tea_verl.estimators import best_of_n_credit, credit
    from tea_verl.estimators.table import ESTIMATORS, method
    from tea_verl.integrations.verl.advantage import ESTIMATOR_FUNCTIONS

    pkg = ROOT / "tea_verl"
    assert _functions(pkg / "estimators" / "__init__.py") == []
    assert best_of_n_credit is credit.best_of_n_credit
    assert "globals()" not in (pkg / "integrations" / "verl" / "advantage.py").read_text()
    for name in ESTIMATORS:
        fn = ESTIMATOR_FUNCTIONS[name]
        assert fn.__name__ == f"compute_{name}_advantage" and fn.__doc__ == method(name).summary != ""
        assert list(inspect.signature(fn).parameters)[:4] == ["token_level_rewards", "response_mask", "index", "config"]
    adapters = [*(pkg / "integrations" / "trl").glob("*.py"), *(pkg / "integrations" / "openrlhf").glob("*.py"),
                pkg / "integrations" / "common.py"]
    assert adapters and not [str(p) for p in adapters if "from_algorithm" in p.read_text()]


def test_no_function_is_longer_than_80_lines():
    """Functions a reader must follow stay short: split them at the steps their docstrings number."""
    long = [f"{p.relative_to(ROOT)}:{n.lineno} {n.name} ({n.end_lineno - n.lineno + 1} lines)"
            for p in sorted((ROOT / "tea_verl").rglob("*.py")) for n in _functions(p) if n.end_lineno - n.lineno + 1 > 80]
    assert not long, "functions over 80 lines:\n" + "\n".join(long)


def test_the_estimators_keyword_defaults_are_the_configs():
    from tea_verl.config import TEA_DEFAULTS, TeaConfig
    from tea_verl.estimators import gaussian, gev

    assert TEA_DEFAULTS.alpha == TeaConfig(N=8).alpha == gaussian.DEFAULT_ALPHA
    sig = inspect.signature(gev.tea_weights).parameters
    assert (sig["smoothing"].default, sig["order"].default, sig["rho"].default) == (
        TEA_DEFAULTS.smoothing, TEA_DEFAULTS.order, TEA_DEFAULTS.rho)
    sig = inspect.signature(gaussian.prefix_tea_credit).parameters
    assert (sig["order"].default, sig["sizes"].default, sig["orderings"].default) == (
        TEA_DEFAULTS.jackknife_order, TEA_DEFAULTS.jackknife_sizes, TEA_DEFAULTS.jackknife_orderings)
    assert inspect.signature(gev.fit_tail_shape).parameters["bounds"].default == TEA_DEFAULTS.shape_bounds


def test_the_kept_public_paths_still_work():
    """What users type: the plugin entry point and its fallback module, python -m tea_verl.main_ppo,
    pkg://tea_verl.rewards and the CPU backend module."""
    import importlib

    from tea_verl import main_ppo, plugin, rewards
    from tea_verl.integrations.verl import main_ppo as verl_main_ppo

    assert plugin.plugin.__name__ == "tea_verl.integrations.verl.plugin"
    assert main_ppo.main is verl_main_ppo.main
    with pytest.raises(RuntimeError, match="routing marker"):
        rewards.reward_model_via_best_of_n()
    assert importlib.util.find_spec("tea_verl.cpu") is not None
    out = subprocess.run([sys.executable, "-m", "tea_verl.main_ppo", "--cfg", "job", "algorithm.tea.N=64"],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "adv_estimator: tea" in out.stdout and "'N': 64" in out.stdout  # tea_trainer composed from pkg://tea_verl.conf


def test_from_algorithm_is_one_classmethod():
    """Stacked @classmethod decorators no longer chain on Python 3.13: from_algorithm must be a
    single classmethod over a plain function (this fails on the stacked form on every Python)."""
    from tea_verl.config import BestOfNConfig, TeaConfig

    for cls, name in ((TeaConfig, "from_algorithm"), (BestOfNConfig, "from_config")):
        attr = inspect.getattr_static(cls, name)
        assert isinstance(attr, classmethod) and inspect.isfunction(attr.__func__), (cls, name)
    assert TeaConfig.from_algorithm({"tea": {"N": 16}}).N == 16


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k != "VERL_USE_EXTERNAL_MODULES"}
    env.update(extra)
    return env


def test_every_private_verl_name_is_where_the_package_expects():
    code = ("import tea_verl.cpu; from tea_verl.integrations.verl import private; print(private.missing(include_heavy=True)); "
            "private.check(include_heavy=True); print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(VERL_PLATFORM="cpu"), timeout=300)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stdout[-2000:] + out.stderr[-2000:]


def test_every_user_of_verl_internals_is_covered():
    """Each module that reaches past verl's public API has rows: the overridden trainer methods, the
    task runner's Ray class, the experimental reward loop, and the CPU backend's registries."""
    from tea_verl.integrations.verl.private import NAMES

    names = {f"{row.module}.{row.name}" for row in NAMES}
    for expected in ("verl.trainer.ppo.v1.trainer_base.PPOTrainer._val_metrics_update",
                     "verl.trainer.ppo.v1.trainer_base.PPOTrainer._compute_advantage",
                     "verl.trainer.main_ppo.TaskRunnerV1.__ray_actor_class__",
                     "verl.experimental.reward_loop.reward_manager.base.RewardManagerBase",
                     "verl.workers.rollout.base._ROLLOUT_REGISTRY"):
        assert expected in names
    source = "\n".join(p.read_text() for p in (ROOT / "tea_verl").rglob("*.py") if p.name != "private.py")
    for row in NAMES:  # every row is used somewhere
        assert row.name.split(".")[-1] in source, row


def test_a_moved_name_or_parameter_fails_with_one_message(monkeypatch):
    from tea_verl.integrations.verl import private

    rows = private.NAMES + (
        private.PrivateName("verl.workers.rollout.base", "_GONE", "a test", "cpu"),
        private.PrivateName("verl.trainer.ppo.core_algos", "compute_grpo_outcome_advantage", "a test", "advantage",
                            params=("token_level_rewards", "no_such_parameter")),
    )
    monkeypatch.setattr(private, "NAMES", rows)
    with pytest.raises(private.PrivateNameMoved) as info:
        private.check()
    message = str(info.value)
    assert "verl.workers.rollout.base._GONE (used by cpu for: a test)" in message
    assert "lost parameter(s) no_such_parameter" in message
    assert "supports verl>=0.7.1" in message


def test_a_missing_dependency_of_verl_is_named_with_its_install_command(monkeypatch, tmp_path):
    """A verl module that imports a package verl does not declare (TransferQueue for 0.9.1's v1
    trainer): the message names the package and the pip command, not a moved verl name."""
    from tea_verl.integrations.verl import private

    (tmp_path / "needs_tq.py").write_text("import transfer_queue\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(sys.modules, "transfer_queue", None)  # not installed, whatever this machine has
    monkeypatch.setattr(private, "NAMES", (private.PrivateName("needs_tq", "X", "a test", "validation"),))
    with pytest.raises(private.PrivateNameMoved) as info:
        private.check()
    message = str(info.value)
    assert "needs the package 'TransferQueue', which is not installed: pip install TransferQueue" in message
    assert message.startswith("tea-verl needs packages that verl imports but does not install") and "no longer has" not in message
    with pytest.raises(private.PrivateNameMoved, match="pip install TransferQueue"):
        private.require("validation")


def test_the_supported_verl_range_is_the_pinned_one():
    import tomllib

    from tea_verl.integrations.verl.private import SUPPORTED_VERL

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert f"verl{SUPPORTED_VERL}" in project["optional-dependencies"]["verl"]
    assert not any(d.split("[")[0].startswith(("verl", "trl", "ray", "hydra")) for d in project["dependencies"])  # the core runs without them


def test_ruff_finds_nothing():
    """The lint configured in pyproject.toml ([tool.ruff]) holds on the whole tree."""
    ruff = shutil.which("ruff") or os.path.join(os.path.dirname(sys.executable), "ruff")
    assert os.path.exists(ruff), "ruff is missing: pip install -e '.[test]' installs it"
    run = subprocess.run([ruff, "check", "--no-cache", "."], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
