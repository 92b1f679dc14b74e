"""verl's real trainer on a CPU: platform, process group, FSDP engines and an HF rollout.

Loaded only on request, never by the plugin entry point: put ``tea_verl.cpu`` in
``VERL_USE_EXTERNAL_MODULES`` (every ``import verl`` then imports it, in the driver and in every
Ray worker) and set ``VERL_PLATFORM=cpu``. ``tea-verl smoke`` does both. Importing this module
calls :func:`install`, which

1. registers :class:`tea_verl.cpu.platform.PlatformCPU` as platform ``cpu`` in verl's
   ``PlatformRegistry`` (before anything asks verl for its platform);
2. makes the process-group default plain ``gloo`` on the CPU: verl's default
   ``"cpu:gloo,{device}:{backend}"`` becomes ``"cpu:gloo,cpu:gloo"``, which torch refuses
   ("Duplicate device type cpu");
3. registers verl's FSDP engines (language model and value head, ``fsdp``/``fsdp2``) for device
   ``cpu``, right after verl imports them (a post-import hook: importing them costs seconds, so
   not at every ``import verl``), and makes their CPU offload policy for forward-only models (the
   reference policy of a KL loss) unpinned, since pinned memory needs an accelerator;
4. registers the ``hf_cpu`` rollout (:mod:`tea_verl.cpu.rollout`) in verl's rollout and
   replica registries, and, under the name ``vllm``, the reward model's replica
   (:mod:`tea_verl.cpu.reward_server`: a Hugging Face classifier behind vLLM's ``/classify``).

The launch must also say ``trainer.device=cpu``, ``actor_rollout_ref.rollout.name=hf_cpu``,
``strategy=fsdp2`` for actor and ref (FSDP1 refuses CPU parameters), an attention that is not
flash-attention, and logical GPUs for Ray (``+ray_kwargs.ray_init.num_gpus``, one per rank, with
enough ``num_cpus`` that the placement group schedules): :func:`tea_verl.launch.smoke.smoke_overrides`
sets them.

Every private verl name used is listed, with the rest of the package's, in
:data:`tea_verl.integrations.verl.private.NAMES`; :func:`install` checks the backend's rows (the
test suite all of them) and fails with one message naming what moved.
"""

from __future__ import annotations

import importlib
import importlib.abc
import sys

from tea_verl.integrations.verl import private

PLATFORM_NAME = "cpu"
ROLLOUT_NAME = "hf_cpu"
REWARD_MODEL_ROLLOUT = "vllm"
"""The reward model's rollout name a recipe uses; on the CPU backend it starts
:class:`tea_verl.cpu.reward_server.HFRewardReplica` (a Hugging Face classifier behind ``/classify``)."""

ENGINE_MODULE = "verl.workers.engine.fsdp.transformer_impl"


class _AfterImport(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Runs ``callback(module)`` right after ``fullname`` is first imported (a post-import hook)."""

    def __init__(self, fullname: str, callback):
        self.fullname, self.callback, self._loader = fullname, callback, None

    def find_spec(self, fullname, path, target=None):
        if fullname != self.fullname:
            return None
        for finder in sys.meta_path:
            if finder is self:
                continue
            spec = finder.find_spec(fullname, path, target) if hasattr(finder, "find_spec") else None
            if spec is not None:
                spec.loader, self._loader = self, spec.loader
                return spec
        return None

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        module.__spec__.loader = module.__loader__ = self._loader
        self._loader.exec_module(module)
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        self.callback(module)


_installed = False


def install() -> None:
    """Register the CPU platform, gloo default, CPU engines and the hf_cpu rollout. Idempotent."""
    global _installed
    if _installed:
        return
    if private.too_old("cpu"):  # a verl without the platform registry: one line naming the version
        private.require("cpu", include_heavy=False)
    _register_platform()  # first: the checks below import verl modules that ask for the platform
    private.check(users=("cpu",))  # the rows in modules light enough to import here
    _patch_process_group_default()
    if ENGINE_MODULE in sys.modules:
        _register_cpu_engines(sys.modules[ENGINE_MODULE])
    else:
        sys.meta_path.insert(0, _AfterImport(ENGINE_MODULE, _register_cpu_engines))
    _register_rollout()
    _installed = True


def _register_platform() -> None:
    from verl.plugin.platform.platform_manager import PlatformRegistry

    from tea_verl.cpu.platform import PlatformCPU

    if PlatformRegistry.get(PLATFORM_NAME) is not PlatformCPU:
        PlatformRegistry.register(platform=PLATFORM_NAME)(PlatformCPU)


def _patch_process_group_default() -> None:
    import verl.utils.distributed as dist

    original = dist.initialize_global_process_group_ray
    if getattr(original, "_tea_cpu", False):
        return

    def initialize_global_process_group_ray(timeout_second=None, backend=None):
        from verl.utils.device import get_device_name

        if backend is None and get_device_name() == "cpu":
            backend = "gloo"
        return original(timeout_second=timeout_second, backend=backend)

    initialize_global_process_group_ray._tea_cpu = True
    dist.initialize_global_process_group_ray = initialize_global_process_group_ray
    ew = sys.modules.get("verl.workers.engine_workers")
    if ew is not None:  # imported before us: rebind its by-name copy too
        ew.initialize_global_process_group_ray = initialize_global_process_group_ray


def _register_cpu_engines(transformer_impl) -> None:
    """Register verl's FSDP engines for device cpu, and make the CPU offload policy they give a
    forward-only model (the reference policy of a KL loss) unpinned: pinning needs an accelerator."""
    from verl.utils.device import get_device_name
    from verl.workers.engine.base import EngineRegistry

    policy = transformer_impl.CPUOffloadPolicy
    if get_device_name() == PLATFORM_NAME and policy is not None and not getattr(policy, "_tea_cpu", False):

        class UnpinnedCPUOffloadPolicy(policy):
            _tea_cpu = True

            def __init__(self, *args, pin_memory: bool = False, **kwargs):
                super().__init__(*args, pin_memory=False, **kwargs)

        transformer_impl.CPUOffloadPolicy = UnpinnedCPUOffloadPolicy

    for model_type, cls in (
        ("language_model", transformer_impl.FSDPEngineWithLMHead),
        ("value_model", transformer_impl.FSDPEngineWithValueHead),
    ):
        for backend in ("fsdp", "fsdp2"):
            try:
                EngineRegistry.register(model_type=model_type, backend=backend, device=PLATFORM_NAME)(cls)
            except AssertionError:  # verl's "already registered" (a second call in this process)
                pass


def _register_rollout() -> None:
    from verl.workers.rollout.base import _ROLLOUT_REGISTRY
    from verl.workers.rollout.replica import RolloutReplicaRegistry

    _ROLLOUT_REGISTRY[(ROLLOUT_NAME, "async")] = "tea_verl.cpu.rollout.HFServerAdapter"

    def _load():
        from tea_verl.cpu.rollout import HFReplica

        return HFReplica

    RolloutReplicaRegistry.register(ROLLOUT_NAME, _load)

    def _load_reward_model():
        from tea_verl.cpu.reward_server import HFRewardReplica

        return HFRewardReplica

    # vLLM does not run on a CPU: its name serves the reward model here, so a recipe's
    # reward.reward_model.rollout.name=vllm runs unchanged (the policy's rollout is hf_cpu)
    RolloutReplicaRegistry.register(REWARD_MODEL_ROLLOUT, _load_reward_model)


install()
