"""What each recipe preset needs: vLLM memory per GPU, and what validation and training cost.

    python -m benchmarks.presets [--gpu-gib 80] [--core 250]

For every preset in recipes/config/preset/ (composed with the recipe config, as a launch would),
per vLLM server (the policy's rollout, the reward model), per GPU:

* the weights at its tensor-parallel size and the KV cache of one ``max_model_len`` sequence
  (shapes from :data:`tea_verl.integrations.verl.memory.KNOWN_MODELS` or a local config.json);
* its budget, ``gpu_memory_utilization`` x the GPU, and how many full-length
  (prompt + response) sequences its KV cache holds at once;

and per run: the responses a training step samples and scores (prompts x ``rollout.n``), and what
one validation costs on the core250 set: ``--core`` prompts x ``val_kwargs.n`` generations, each
scored once by the reward model. Arithmetic only (no GPU): the activation allowance
(``OVERHEAD_GIB``) and the memory fractions are not measured on a GPU here.
"""

from __future__ import annotations

import argparse
import glob
import os

from tea_verl.integrations.verl import memory

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "recipes", "config")


def compose(preset: str):
    from hydra import compose as hydra_compose, initialize_config_dir

    with initialize_config_dir(config_dir=CONFIG, version_base=None):
        return hydra_compose("tea", overrides=[f"preset={preset}"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.presets", description=__doc__.split("\n\n")[0])
    ap.add_argument("--gpu-gib", type=float, default=80.0, help="GPU memory in GiB (default 80)")
    ap.add_argument("--core", type=int, default=250, help="validation prompts (default 250, core250)")
    args = ap.parse_args(argv)
    from omegaconf import OmegaConf

    presets = sorted(os.path.basename(p)[:-5] for p in glob.glob(os.path.join(CONFIG, "preset", "[!_]*.yaml")))
    print(f"# vLLM memory per GPU of {args.gpu_gib:.0f} GiB (weights + KV cache of one max_model_len sequence; "
          f"+{memory.OVERHEAD_GIB:.0f} GiB allowance, not measured), and the work of a step and of one validation "
          f"on {args.core} prompts")
    print(f"{'preset':<14} {'server':<22} {'model':<40} {'TP':>2} {'len':>5} {'weights':>8} {'KV/seq':>7} "
          f"{'budget':>7} {'seqs':>5}")
    work = []
    for name in presets:
        cfg = compose(name)
        for s in memory.servers(cfg):
            shape, _ = memory.model_shape(s.model)
            if shape is None:
                print(f"{name:<14} {s.what:<22} {s.model:<40} (shape unknown)")
                continue
            weights, per_token = memory.footprint(s, shape)
            length = int(s.max_model_len or shape.max_position_embeddings)
            budget = s.gpu_memory_utilization * args.gpu_gib
            room = budget - weights - memory.OVERHEAD_GIB
            seqs = int(room * memory.GIB // (per_token * s.sequence)) if room > 0 else 0
            what = "policy rollout" if s.what.startswith("the policy") else "reward model"
            print(f"{name:<14} {what:<22} {s.model:<40} {s.tp:>2} {length:>5} {weights:>6.1f} G {per_token * length / memory.GIB:>5.2f} G "
                  f"{budget:>5.1f} G {seqs:>5}")
        sel = lambda k: OmegaConf.select(cfg, k)  # noqa: E731
        nodes, gpus = sel("trainer.nnodes"), sel("trainer.n_gpus_per_node")
        batch, m = sel("data.train_batch_size"), sel("actor_rollout_ref.rollout.n")
        val_n, big_n = sel("actor_rollout_ref.rollout.val_kwargs.n"), sel("algorithm.tea.N")
        lora = sel("actor_rollout_ref.model.lora_rank") or 0
        work.append((name, nodes, gpus, m, big_n, batch, lora, val_n))
    print()
    print(f"{'preset':<14} {'GPUs':>5} {'m':>3} {'N':>4} {'prompts/step':>12} {'responses/step':>14} {'LoRA':>5} "
          f"{'val n':>6} {'val generations = RM calls':>27}")
    for name, nodes, gpus, m, big_n, batch, lora, val_n in work:
        print(f"{name:<14} {nodes * gpus:>5} {m:>3} {big_n:>4} {batch:>12} {batch * m:>14} {lora or '-':>5} {val_n:>6} "
              f"{args.core * val_n:>27,}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
