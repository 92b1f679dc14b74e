"""``tea-verl openrlhf``: OpenRLHF's ``train_ppo_ray`` with tea-verl's best-of-N estimators.

    tea-verl openrlhf --algo.advantage.estimator tea --tea.N 64 [--tea.alpha 0.25 ...] <OpenRLHF's own arguments>

Everything but the best-of-N arguments goes to OpenRLHF unchanged. For a best-of-N estimator
(``bon``, ``tea``, ``prefix_tea``, ``tea_gev``, ``prefix_tea_gev``) it:

1. validates the estimator, ``--tea.N`` and every ``--tea.<key>`` (the keys of verl's
   ``algorithm.tea``, docs/configuration.md) before anything starts;
2. passes OpenRLHF the stand-in estimator :data:`.patch.STAND_IN` (its parser knows only its own
   names) and puts the settings in :data:`.patch.ENV`;
3. installs the patch in this process, and wraps ``ray.init`` so that every Ray worker of the run
   gets :data:`.patch.ENV` and installs the patch at start-up (``worker_process_setup_hook``);
4. runs ``openrlhf.cli.train_ppo_ray`` as ``python -m`` would.

Any other estimator runs OpenRLHF untouched.
"""

from __future__ import annotations

import json
import os
import runpy
import sys

from tea_verl.estimators import ESTIMATORS
from tea_verl.integrations.openrlhf import patch

__all__ = ["main", "split_args", "ray_init_with_patch", "HELP"]

ESTIMATOR_FLAG = "--algo.advantage.estimator"
HELP = f"""usage: tea-verl openrlhf {ESTIMATOR_FLAG} {{{','.join(ESTIMATORS)}}} --tea.N N [--tea.KEY VALUE ...] [OpenRLHF arguments ...]

OpenRLHF's PPO trainer (python -m openrlhf.cli.train_ppo_ray) with tea-verl's best-of-N credit.

best-of-N arguments (the rest go to OpenRLHF unchanged; its own: python -m openrlhf.cli.train_ppo_ray --help):
  {ESTIMATOR_FLAG} ESTIMATOR
                 one of {', '.join(ESTIMATORS)} (bon: exact, needs N <= --rollout.n_samples_per_prompt;
                 tea, prefix_tea: the paper's; tea_gev, prefix_tea_gev: this project's GEV pair),
                 or one of OpenRLHF's own, which then runs untouched
  --tea.N N      deployment best-of-N budget (required with a best-of-N estimator)
  --tea.KEY VALUE
                 any other tail key of verl's algorithm.tea (alpha, failure_reward, std_scale, shape, ...;
                 docs/configuration.md); VALUE is read as JSON where it parses, else as a string

Tested with openrlhf=={patch.OPENRLHF_VERSIONS[0]}.{patch.OPENRLHF_VERSIONS[1]}.*. Metrics: OpenRLHF's, plus tea/* (the same as in verl).
Example:
  tea-verl openrlhf --algo.advantage.estimator prefix_tea --tea.N 128 --rollout.n_samples_per_prompt 16 \\
      --actor.model_name_or_path meta-llama/Llama-3.2-1B-Instruct ...
"""


class LaunchArgumentError(ValueError):
    """A best-of-N argument the launcher cannot use; the message names it."""


def _value(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


def split_args(argv: list[str]) -> tuple[str | None, int | None, dict, list[str]]:
    """(best-of-N estimator or None, N, tail keys, the arguments for OpenRLHF)."""
    rest, tea, n, estimator = [], {}, None, None
    i = 0
    while i < len(argv):
        arg = argv[i]
        key, eq, inline = arg.partition("=")
        if key == ESTIMATOR_FLAG or key.startswith("--tea."):
            if eq:
                value = inline
                i += 1
            elif i + 1 < len(argv):
                value = argv[i + 1]
                i += 2
            else:
                raise LaunchArgumentError(f"{key} needs a value")
            if key == ESTIMATOR_FLAG:
                if value in ESTIMATORS:
                    estimator = value
                    rest += [ESTIMATOR_FLAG, patch.STAND_IN]
                else:
                    rest += [ESTIMATOR_FLAG, value]
            elif key == "--tea.N":
                try:
                    n = int(value)
                except ValueError:
                    raise LaunchArgumentError(f"--tea.N must be an integer (the best-of-N budget), got {value!r}") from None
            else:
                tea[key[len("--tea."):]] = _value(value)
            continue
        rest.append(arg)
        i += 1
    if estimator is None and (n is not None or tea):
        raise LaunchArgumentError(f"--tea.* arguments need a best-of-N estimator: {ESTIMATOR_FLAG} one of {', '.join(ESTIMATORS)}")
    if estimator is not None and n is None:
        raise LaunchArgumentError(f"{ESTIMATOR_FLAG} {estimator} needs --tea.N, the deployment best-of-N budget (e.g. --tea.N 64)")
    return estimator, n, tea, rest


def ray_init_with_patch(init):
    """``ray.init`` whose runtime env carries :data:`.patch.ENV` and the patch's worker set-up hook."""

    def wrapped(*args, **kwargs):
        env = dict(kwargs.get("runtime_env") or {})
        env_vars = dict(env.get("env_vars") or {})
        env_vars[patch.ENV] = os.environ[patch.ENV]
        env["env_vars"] = env_vars
        hook = env.get("worker_process_setup_hook")
        if hook not in (None, f"{patch.__name__}.setup_worker"):
            raise LaunchArgumentError(f"the runtime env already has a worker_process_setup_hook ({hook}); tea-verl's patch needs "
                                      f"{patch.__name__}.setup_worker")
        env["worker_process_setup_hook"] = f"{patch.__name__}.setup_worker"
        kwargs["runtime_env"] = env
        return init(*args, **kwargs)

    wrapped.__wrapped__ = init
    return wrapped


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(HELP)
        return 0
    try:
        estimator, n, tea, rest = split_args(argv)
        if estimator is not None:
            os.environ[patch.ENV] = patch.encode_settings(estimator, n, tea)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if estimator is not None:
        import ray

        patch.install()
        ray.init = ray_init_with_patch(ray.init)
        print(f"[tea-verl] OpenRLHF with {estimator}, N = {n}{', ' + json.dumps(tea) if tea else ''} "
              f"(OpenRLHF sees {ESTIMATOR_FLAG} {patch.STAND_IN}; every Ray worker installs the patch)", flush=True)
    sys.argv = ["openrlhf.cli.train_ppo_ray", *rest]
    runpy.run_module("openrlhf.cli.train_ppo_ray", run_name="__main__", alter_sys=True)
    return 0
