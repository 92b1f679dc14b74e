"""Every verl name tea-verl relies on that verl does not offer as public API, in one table.

verl 0.9.1 has hooks for advantage estimators and reward managers, and a public ``run_ppo``, but
none for validation metrics, the CPU platform or a rollout backend, and its reward loop lives under
``verl.experimental``. What tea-verl reaches past the public surface is listed in :data:`NAMES`:

* module attributes (registries, private names, ``verl.experimental`` classes);
* methods tea-verl overrides in a subclass of a verl class (:mod:`.validation` extends the
  trainer's ``_val_metrics_update`` and ``_compute_advantage``), with the parameters it calls them
  with;
* the ``__ray_actor_class__`` of a Ray-decorated verl class that tea-verl subclasses.

:func:`check` imports each and raises :class:`PrivateNameMoved` naming everything that is gone and
the supported verl range. It runs when the plugin registers (every ``import verl``) and when the CPU
backend installs; ``heavy`` rows sit in modules that take seconds to import (verl's engines and
trainer), which those two leave to the test suite and :func:`check` with ``include_heavy=True``.
"""

from __future__ import annotations

import importlib
import inspect
from typing import NamedTuple

__all__ = ["PrivateName", "NAMES", "SUPPORTED_VERL", "FULL_VERL", "Feature", "FEATURES", "PrivateNameMoved",
           "FeatureUnavailable", "check", "missing", "unavailable", "require", "too_old", "verl_version"]

SUPPORTED_VERL = ">=0.7.1"
"""The verl versions tea-verl installs next to (pyproject.toml requires the same). No upper bound:
a source install of verl's main (a ``.dev`` version) installs, and a name that moved fails at the
start with :func:`check`'s message instead of pip refusing the whole package."""

FULL_VERL = "0.9.1"
"""The first verl with every feature (:data:`FEATURES`): the validation metrics and the CPU
backend need its v1 trainer and platform registry."""


class PrivateName(NamedTuple):
    module: str
    name: str
    """An attribute path in ``module``: ``A``, ``A.method`` or ``A.__ray_actor_class__``."""
    why: str
    user: str
    """The tea-verl module that uses it."""
    heavy: bool = False
    params: tuple[str, ...] = ()
    """For an overridden method: the parameters tea-verl passes by name or position."""


_TRAINER = "verl.trainer.ppo.v1.trainer_base"
_CPU_ENGINE = "verl.workers.engine.fsdp.transformer_impl"

NAMES: tuple[PrivateName, ...] = (
    # the advantage estimators (advantage.py): verl's public registry, listed for the support check
    PrivateName("verl.trainer.ppo.core_algos", "register_adv_est", "registers the estimators", "estimators"),
    PrivateName("verl.trainer.ppo.core_algos", "ADV_ESTIMATOR_REGISTRY", "the registered estimators", "estimators"),
    # the best-of-N validation metrics and tea/* step metrics (validation.py)
    PrivateName(_TRAINER, "TRAINER_REGISTRY", "trainer classes, swapped for subclasses with best-of-N validation", "validation", True),
    PrivateName(_TRAINER, "PPOTrainer._val_metrics_update", "overridden: adds the best-of-N validation metrics", "validation", True,
                ("data_sources", "sample_uids", "reward_extra_infos_dict", "sample_turns")),
    PrivateName(_TRAINER, "PPOTrainer._compute_advantage", "overridden: adds the estimator's tea/* step metrics", "validation", True,
                ("batch", "metrics")),
    PrivateName("verl.trainer.main_ppo", "TaskRunnerV1.__ray_actor_class__", "the task runner class under Ray's decorator, subclassed",
                "validation", True),
    # the best_of_n reward manager (reward_manager.py)
    PrivateName("verl.experimental.reward_loop.reward_manager.base", "RewardManagerBase", "base class of the best_of_n manager",
                "reward_manager"),
    PrivateName("verl.experimental.reward_loop.reward_manager.registry", "REWARD_MANAGER", "reward manager registry", "reward_manager"),
    PrivateName("verl.experimental.reward_loop.reward_manager.registry", "register", "registers the best_of_n manager", "reward_manager"),
    PrivateName("verl.utils.import_utils", "load_extern_object", "loads the gold function", "reward_manager"),
    # the CPU backend (tea_verl.cpu)
    PrivateName("verl.plugin.platform.platform_manager", "PlatformRegistry", "platform registry (no public import path)", "cpu"),
    PrivateName("verl.workers.rollout.base", "_ROLLOUT_REGISTRY", "maps (rollout name, mode) to the in-worker rollout class", "cpu"),
    PrivateName("verl.workers.rollout.replica", "RolloutReplicaRegistry", "rollout replica registry", "cpu"),
    PrivateName("verl.workers.rollout.replica", "RolloutReplica.init_colocated", "overridden: the CPU reward model starts "
                "its server without a worker group", "cpu", params=("resource_pool",)),
    PrivateName("verl.workers.rollout.replica", "RolloutMode", "the replica's mode, set by the CPU reward model", "cpu"),
    PrivateName("verl.utils.distributed", "initialize_global_process_group_ray", "rebound: its backend default is wrong on the CPU", "cpu"),
    PrivateName("verl.workers.engine_workers", "initialize_global_process_group_ray", "imported by name there, so rebound there too",
                "cpu", True),
    PrivateName("verl.workers.engine.base", "EngineRegistry", "engine registry (FSDP engines registered for device cpu)", "cpu", True),
    PrivateName(_CPU_ENGINE, "FSDPEngineWithLMHead", "registered for device cpu", "cpu", True),
    PrivateName(_CPU_ENGINE, "FSDPEngineWithValueHead", "registered for device cpu", "cpu", True),
    PrivateName(_CPU_ENGINE, "CPUOffloadPolicy", "rebound: the ref model's pinned-memory offload needs an accelerator", "cpu", True),
)


class Feature(NamedTuple):
    title: str
    """As the README's support table names it."""
    users: tuple[str, ...]
    """The rows of :data:`NAMES` it needs (by ``user``)."""
    since: str
    """The first verl release that has them."""
    instead: str
    """What to do on an older verl."""


FEATURES: dict[str, Feature] = {
    "estimators": Feature("advantage estimators", ("estimators",), "0.7.1", "install verl>=0.7.1"),
    "reward_manager": Feature("best_of_n reward manager", ("reward_manager",), "0.7.1", "install verl>=0.7.1"),
    "validation": Feature(
        "best-of-N validation metrics (python -m tea_verl.main_ppo)", ("validation",), FULL_VERL,
        "train with verl's own entry point and the plugin loaded (VERL_USE_EXTERNAL_MODULES=tea_verl.plugin "
        "python -m verl.trainer.main_ppo ... trainer.validation_data_dir=DIR), then compute the best-of-N "
        "curves from the dumps: tea-verl bon-report DIR"),
    "cpu": Feature(
        "CPU backend (tea-verl smoke, tea-verl demo --lm)", ("cpu", "validation"), FULL_VERL,
        "run on GPUs, or install verl>=0.9.1 in a separate environment for the CPU runs"),
}
"""What tea-verl offers that needs verl names, keyed as :func:`unavailable` takes them."""

_NOT_INSTALLED = "which is not installed: pip install"
"""In a problem line: a package verl needs is missing (not a moved verl name)."""

# packages verl imports without declaring them, by import name: the name pip installs
_PIP_NAMES = {"transfer_queue": "TransferQueue", "cachetools": "cachetools", "uvicorn": "uvicorn", "fastapi": "fastapi"}


class PrivateNameMoved(ImportError):
    """A verl name tea-verl relies on is gone or changed; the message names each and the fix."""


class FeatureUnavailable(PrivateNameMoved):
    """This verl is older than a feature needs; the message names the version and the way around."""


def verl_version() -> str:
    import verl

    return str(getattr(verl, "__version__", "?"))


def _missing_package(exc: ImportError) -> str | None:
    """The package to install when ``exc`` is a dependency of verl that is not installed."""
    name = (getattr(exc, "name", None) or "").split(".")[0]
    if not isinstance(exc, ModuleNotFoundError) or not name or name == "verl":
        return None
    return _PIP_NAMES.get(name, name)


def _problem(row: PrivateName) -> str | None:
    try:
        obj = importlib.import_module(row.module)
    except ImportError as exc:
        package = _missing_package(exc)
        if package:
            return (f"{row.module} (cannot import: it needs the package {package!r}, {_NOT_INSTALLED} {package}; "
                    f"used by {row.user} for: {row.why})")
        return f"{row.module} (cannot import: {exc}; used by {row.user} for: {row.why})"
    for part in row.name.split("."):
        if not hasattr(obj, part):
            return f"{row.module}.{row.name} (used by {row.user} for: {row.why})"
        obj = getattr(obj, part)
    if row.params:
        try:
            params = inspect.signature(obj).parameters
        except (TypeError, ValueError):
            return f"{row.module}.{row.name} is no longer a function (used by {row.user} for: {row.why})"
        gone = [p for p in row.params if p not in params]
        if gone:
            return f"{row.module}.{row.name} lost parameter(s) {', '.join(gone)} (used by {row.user} for: {row.why})"
    return None


def missing(include_heavy: bool = False, users: tuple[str, ...] | None = None) -> list[str]:
    """A line for each listed name that is gone or changed (empty when all are there).

    ``users`` limits the check to the rows of those tea-verl modules.
    """
    out = []
    for row in NAMES:
        if (row.heavy and not include_heavy) or (users is not None and row.user not in users):
            continue
        problem = _problem(row)
        if problem:
            out.append(problem)
    return out


def check(include_heavy: bool = False, users: tuple[str, ...] | None = None) -> None:
    """Raise :class:`PrivateNameMoved` naming every listed verl name that is gone or changed."""
    problems = missing(include_heavy, users)
    if problems:
        raise PrivateNameMoved(_moved_message(problems))


def _moved_message(problems: list[str]) -> str:
    if all(_NOT_INSTALLED in p for p in problems):
        return "tea-verl needs packages that verl imports but does not install: " + "; ".join(problems)
    return (f"tea-verl relies on verl names that verl {verl_version()} no longer has: " + "; ".join(problems)
            + f". tea-verl supports verl{SUPPORTED_VERL}, checked on 0.7.1, 0.8.0 and 0.9.1: install one of those "
            "(pip install 'verl==0.9.1'), or update the listed tea-verl module for this verl.")


def _older_than(since: str) -> bool:
    from packaging.version import InvalidVersion, Version

    try:
        return Version(verl_version()) < Version(since)
    except InvalidVersion:
        return False


def too_old(feature: str) -> bool:
    """Whether this verl is older than the first release with ``feature``."""
    return _older_than(FEATURES[feature].since)


def _status(feature: str, include_heavy: bool) -> tuple[str, type[PrivateNameMoved]] | None:
    f = FEATURES[feature]
    problems = missing(include_heavy, f.users)
    if not problems:
        return None
    if _older_than(f.since) and not all(_NOT_INSTALLED in p for p in problems):
        return (f"verl {verl_version()} has no {f.title}: it needs verl>={f.since}. Instead: {f.instead} "
                f"(or pip install 'verl>={f.since}')."), FeatureUnavailable
    return _moved_message(problems), PrivateNameMoved


def unavailable(feature: str, include_heavy: bool = True) -> str | None:
    """None when this verl has what ``feature`` (a key of :data:`FEATURES`) needs; else one line:
    on a verl older than the feature, the version and the way around; on a newer verl, what moved;
    where a dependency is missing, the command that installs it."""
    status = _status(feature, include_heavy)
    return None if status is None else status[0]


def require(feature: str, include_heavy: bool = True) -> None:
    """Raise :class:`FeatureUnavailable` (a verl older than the feature) or :class:`PrivateNameMoved`
    (a name moved, a dependency missing) with :func:`unavailable`'s line."""
    status = _status(feature, include_heavy)
    if status is not None:
        raise status[1](status[0])
