"""What the CPU launches share (``tea-verl smoke``, the language-model experiment): the reward
function loader, config composition, the environment of a CPU run, the process runner that stops
Ray on a timeout or Ctrl-C, and the mapping of errors to exit status.

A CPU launch runs ``python -m tea_verl.main_ppo`` (or an experiment's own child process) with the
CPU backend (:mod:`tea_verl.cpu`) put in by :func:`cpu_env`, and Ray in a private temp dir whose
name marks every process it starts, so that :func:`kill_leftovers` can stop what a dead run left.
"""

from __future__ import annotations

import importlib.util
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time

__all__ = [
    "LaunchError",
    "quiet_verl",
    "parse_reward_fn",
    "compose_or_fail",
    "hydra_value",
    "cpu_env",
    "processes_with",
    "kill_leftovers",
    "run_process",
    "stop_process_group",
    "read_jsonl",
    "last_error",
    "exit_status",
]

CPU_MODULE = "tea_verl.cpu"


class LaunchError(RuntimeError):
    """A launch that cannot start or did not pass; the message says what and the fix."""


def quiet_verl() -> None:
    """Silence what verl prints on import that says nothing about a command on a CPU machine:
    its optional training engines being absent (torchtitan, megatron, ...), no accelerator being
    found, and validate_config's note that the critic is off for a non-GAE estimator."""
    import logging
    import warnings

    warnings.filterwarnings("ignore", message=r".*engine is not available", category=UserWarning)
    warnings.filterwarnings("ignore", message=r"Disabled critic as algorithm\.adv_estimator", category=UserWarning)
    noise = ("No supported accelerator detected", "is registered but not available", "Platform override from VERL_PLATFORM")
    logging.getLogger("verl.plugin.platform.platform_manager").addFilter(
        lambda record: not any(n in record.getMessage() for n in noise)
    )


def cpu_env(**settings: str | None) -> dict[str, str]:
    """This process's environment for a verl run on the CPU: the CPU backend first in
    ``VERL_USE_EXTERNAL_MODULES`` (the user's modules kept after it), ``VERL_PLATFORM=cpu``, Ray
    without usage stats or a token, quiet tokenizers and Hydra; then ``settings`` (a value of None
    removes that variable)."""
    env = dict(os.environ)
    modules = [x for x in env.get("VERL_USE_EXTERNAL_MODULES", "").split(",") if x and x != CPU_MODULE]
    env.update(
        VERL_PLATFORM="cpu",
        VERL_USE_EXTERNAL_MODULES=",".join([CPU_MODULE, *modules]),
        RAY_AUTH_MODE=env.get("RAY_AUTH_MODE", "disabled"),
        RAY_USAGE_STATS_ENABLED="0",
        # single-node Ray on the loopback address (Ray otherwise resolves 127.0.0.1 to the host's IP)
        RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
        TOKENIZERS_PARALLELISM="false",
        HYDRA_FULL_ERROR="0",
    )
    for key, value in settings.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


_STEP = re.compile(r"\bstep:(\d+) - (.*)$")


def parse_reward_fn(spec: str, flag: str = "--reward-fn") -> tuple[str, str]:
    """``path.py:function`` of a verl custom reward function -> (absolute path, name), checked by
    importing it: a missing file, a failing import or a missing function is one LaunchError line."""
    if ":" not in spec:
        raise LaunchError(f"{flag} takes path.py:function, got {spec!r}")
    path, name = spec.rsplit(":", 1)
    path = os.path.abspath(os.path.expanduser(path))
    if not os.path.isfile(path):
        raise LaunchError(f"{flag}: {path} does not exist (give path.py:function of a verl custom reward function)")
    spec_ = importlib.util.spec_from_file_location("_tea_launch_reward", path)
    module = importlib.util.module_from_spec(spec_)
    try:
        spec_.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - reported as one line
        raise LaunchError(f"{flag}: importing {path} failed: {type(exc).__name__}: {exc}") from None
    if not callable(getattr(module, name, None)):
        raise LaunchError(f"{flag}: {path} has no function {name!r}")
    return path, name


def compose_or_fail(config_dir: str, config_name: str, overrides: list[str]):
    """Compose a Hydra config as a launch would; a config that does not compose is a LaunchError."""
    from tea_verl.integrations.verl.preflight import ComposeError, compose

    try:
        return compose(config_dir, config_name, overrides)
    except ComposeError as exc:
        raise LaunchError(str(exc)) from None


def hydra_value(value) -> str:
    """A Python value as a Hydra override writes it (None: null, bools lower case)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def processes_with(marker: str) -> list[int]:
    """Ids of the processes (this one excepted) whose command line mentions ``marker``; empty
    where there is no /proc."""
    pids = []
    for pid in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmd:
            pids.append(int(pid))
    return pids


def kill_leftovers(marker: str) -> None:
    """Kill every process whose command line mentions ``marker`` (our private Ray temp dir)."""
    for pid in processes_with(marker):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def run_process(cmd: list[str], env: dict, log_path: str, steps: int, timeout: float, ray_tmp: str, progress, on_line=None) -> int:
    """Run ``cmd`` with its output in ``log_path``; ``progress`` is called once per step verl logs,
    ``on_line`` (optional) on every line, and a true answer from it starts a new run (steps count
    again from 1). Stops the process group and Ray's leftovers on a timeout, Ctrl-C or exit."""
    start = time.time()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, bufsize=1)
    lines: queue.Queue = queue.Queue()

    def pump():  # a reader thread, so that a silent hang still meets the timeout below
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    seen = set()
    try:
        with open(log_path, "w") as log:
            while True:
                left = timeout - (time.time() - start)
                if left <= 0:
                    raise TimeoutError
                try:
                    line = lines.get(timeout=min(left, 1.0))
                except queue.Empty:
                    continue
                if line is None:
                    break
                log.write(line)
                if on_line is not None and on_line(line):
                    seen.clear()
                m = _STEP.search(line)
                if m and int(m.group(1)) not in seen:
                    seen.add(int(m.group(1)))
                    progress(int(m.group(1)), steps, m.group(2), time.time() - start)
        return proc.wait()
    except (KeyboardInterrupt, TimeoutError) as exc:
        stop_process_group(proc)
        if isinstance(exc, TimeoutError):
            raise LaunchError(f"the run took more than {timeout:.0f} s and was stopped (see {log_path})") from None
        raise
    finally:
        if proc.poll() is None:
            stop_process_group(proc)
        kill_leftovers(ray_tmp)


def stop_process_group(proc) -> None:
    for sig, wait in ((signal.SIGINT, 20), (signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except OSError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def read_jsonl(path: str) -> list[dict]:
    """The rows of a JSONL file (verl's file logger, the weight-sync log); none when it does not exist."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def last_error(log_path: str) -> str:
    """The most telling error line of verl's output."""
    try:
        lines = open(log_path).read().splitlines()
    except OSError:
        return "no output"
    pat = re.compile(r"(\w+(Error|Exception|Moved)|preflight found)\b[:(]")
    for line in reversed(lines):
        if pat.search(line):
            return re.sub(r"\x1b\[[0-9;]*m", "", line).strip()[:400]
    return (lines[-1] if lines else "no output")[:400]


def require_cpu_backend() -> None:
    """A LaunchError with one line naming the verl version and the way around where this verl has no
    CPU backend (before 0.9.1), before any work starts."""
    from tea_verl.integrations.verl import private

    line = private.unavailable("cpu", include_heavy=False)
    if line:
        raise LaunchError(line)


def exit_status(body, tag: str) -> int:
    """Run a command's body (whose cleanup stops Ray and the workers) and map its outcome to the
    exit status: a LaunchError is one ``error:`` line and 2, Ctrl-C is 130."""
    try:
        return body()
    except LaunchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\n[{tag}] interrupted; Ray and verl's workers were stopped", file=sys.stderr)
        return 130
