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

__all__ = ["PrivateName", "NAMES", "SUPPORTED_VERL", "PrivateNameMoved", "check", "missing"]

SUPPORTED_VERL = ">=0.9.1,<0.10"
"""The verl versions these names were checked against (pyproject.toml pins the same range)."""


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
    # the CPU backend (tea_verl.cpu)
    PrivateName("verl.plugin.platform.platform_manager", "PlatformRegistry", "platform registry (no public import path)", "cpu"),
    PrivateName("verl.workers.rollout.base", "_ROLLOUT_REGISTRY", "maps (rollout name, mode) to the in-worker rollout class", "cpu"),
    PrivateName("verl.workers.rollout.replica", "RolloutReplicaRegistry", "rollout replica registry", "cpu"),
    PrivateName("verl.utils.distributed", "initialize_global_process_group_ray", "rebound: its backend default is wrong on the CPU", "cpu"),
    PrivateName("verl.workers.engine_workers", "initialize_global_process_group_ray", "imported by name there, so rebound there too",
                "cpu", True),
    PrivateName("verl.workers.engine.base", "EngineRegistry", "engine registry (FSDP engines registered for device cpu)", "cpu", True),
    PrivateName(_CPU_ENGINE, "FSDPEngineWithLMHead", "registered for device cpu", "cpu", True),
    PrivateName(_CPU_ENGINE, "FSDPEngineWithValueHead", "registered for device cpu", "cpu", True),
    PrivateName(_CPU_ENGINE, "CPUOffloadPolicy", "rebound: the ref model's pinned-memory offload needs an accelerator", "cpu", True),
)


class PrivateNameMoved(ImportError):
    """A verl name tea-verl relies on is gone or changed; the message names each and the fix."""


def _problem(row: PrivateName) -> str | None:
    try:
        obj = importlib.import_module(row.module)
    except ImportError as exc:
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
        import verl

        raise PrivateNameMoved(
            f"tea-verl relies on verl names that verl {getattr(verl, '__version__', '?')} no longer has: "
            + "; ".join(problems)
            + f". tea-verl supports verl{SUPPORTED_VERL}: install a verl in that range "
            f"(pip install 'verl{SUPPORTED_VERL}'), or update the listed tea-verl module for this verl."
        )
