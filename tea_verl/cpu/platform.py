"""A CPU platform for verl's ``PlatformRegistry`` (selected with ``VERL_PLATFORM=cpu``).

verl 0.9.1 registers NVIDIA, Ascend and AMD platforms only and falls back to NVIDIA when none is
detected, so a CPU-only process picks cuda, nccl and GPU resources. :class:`PlatformCPU` answers
every platform question for the CPU:

* ``device_name`` "cpu", ``current_device()`` ``torch.device("cpu")`` (verl passes the result to
  ``.to()``, where an int would mean a CUDA index);
* ``communication_backend_name()`` "gloo";
* ``device_module``: :class:`CpuDeviceModule`, a stand-in for ``torch.cuda`` whose memory queries,
  streams and cache calls are answered harmlessly and whose RNG calls act on the CPU generator;
* ``ray_resource_name()`` "GPU": verl's resource pools count only GPU/NPU bundles, so a CPU run
  declares logical GPUs (``ray_kwargs.ray_init.num_gpus``), one per rank.
"""

from __future__ import annotations

import contextlib
import os
from types import SimpleNamespace

import torch
from verl.plugin.platform.platform_base import PlatformBase


class _Stream:
    """A no-op stream/event: CPU work is synchronous."""

    def __init__(self, *args, **kwargs):
        pass

    def synchronize(self):
        return None

    def wait_stream(self, other):
        return None

    def wait_event(self, event):
        return None

    def record(self, stream=None):
        return None

    def query(self):
        return True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class CpuDeviceModule:
    """The subset of ``torch.cuda`` that verl calls, answered for the CPU.

    RNG state is the CPU generator's; memory queries report the host's memory (``mem_get_info``)
    or 0 (allocator statistics, which the CPU allocator does not keep); streams and events are
    no-ops. An attribute not listed here raises ``AttributeError`` naming it, so a new verl call
    fails loudly instead of being silently answered.
    """

    Stream = _Stream
    Event = _Stream

    @staticmethod
    def is_available() -> bool:
        return True

    @staticmethod
    def device_count() -> int:
        return 1

    @staticmethod
    def current_device() -> torch.device:
        return torch.device("cpu")

    @staticmethod
    def set_device(device=None) -> None:
        return None

    @staticmethod
    def get_device_name(device=None) -> str:
        return "cpu"

    @staticmethod
    def synchronize(device=None) -> None:
        return None

    @staticmethod
    def empty_cache() -> None:
        return None

    @staticmethod
    def ipc_collect() -> None:
        return None

    @staticmethod
    def set_per_process_memory_fraction(fraction, device=None) -> None:
        return None

    @staticmethod
    def mem_get_info(device=None) -> tuple[int, int]:
        try:
            pages, free = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_AVPHYS_PAGES")
            size = os.sysconf("SC_PAGE_SIZE")
            return free * size, pages * size
        except (ValueError, OSError, AttributeError):
            return 0, 0

    @staticmethod
    def memory_allocated(device=None) -> int:
        return 0

    memory_reserved = max_memory_allocated = max_memory_reserved = memory_allocated

    @staticmethod
    def reset_peak_memory_stats(device=None) -> None:
        return None

    @staticmethod
    def current_stream(device=None) -> _Stream:
        return _Stream()

    @staticmethod
    def stream(stream=None):
        return contextlib.nullcontext(stream)

    @staticmethod
    def get_rng_state(device=None) -> torch.Tensor:
        return torch.get_rng_state()

    @staticmethod
    def set_rng_state(state, device=None) -> None:
        torch.set_rng_state(state)

    @staticmethod
    def manual_seed(seed: int) -> None:
        torch.manual_seed(seed)

    manual_seed_all = manual_seed

    memory = SimpleNamespace(_set_allocator_settings=lambda settings: None)

    def __getattr__(self, name):  # only reached for names not defined above
        raise AttributeError(
            f"the tea-verl CPU platform's stand-in for torch.cuda has no {name!r}: verl called a device API "
            "this CPU backend does not answer yet (tea_verl/cpu/platform.py, CpuDeviceModule)."
        )


class PlatformCPU(PlatformBase):
    """verl's platform interface on the CPU (see the module docstring)."""

    _device_module = CpuDeviceModule()

    @property
    def device_name(self) -> str:
        return "cpu"

    @property
    def vendor_name(self) -> str:
        return "cpu"

    @property
    def device_module(self):
        return self._device_module

    def is_available(self) -> bool:
        return True

    def is_platform_available(self, use_smi_check=False) -> bool:
        return os.environ.get("VERL_PLATFORM", "").strip().lower() == "cpu"  # never auto-detected

    def current_device(self) -> torch.device:
        return torch.device("cpu")

    def device_count(self) -> int:
        return 1

    def set_device(self, device_index) -> None:
        return None

    def synchronize(self, device_index=None) -> None:
        return None

    def manual_seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    def manual_seed_all(self, seed: int) -> None:
        torch.manual_seed(seed)

    def set_allocator_settings(self, settings: str) -> None:
        return None

    def empty_cache(self) -> None:
        return None

    def get_device_capability(self, device_index: int = 0):
        return None, None

    def communication_backend_name(self) -> str:
        return "gloo"

    def visible_devices_envvar(self) -> str:
        return "CUDA_VISIBLE_DEVICES"

    @contextlib.contextmanager
    def nvtx_range(self, msg: str):
        yield

    def profiler_start(self) -> None:
        return None

    def profiler_stop(self) -> None:
        return None

    def ray_resource_name(self) -> str:
        return "GPU"  # logical GPUs: verl's resource pools count only GPU/NPU bundles

    def ray_noset_envvars(self) -> list[str]:
        return []

    def is_ipc_supported(self) -> bool:
        return False

    def cudart(self):
        return None
