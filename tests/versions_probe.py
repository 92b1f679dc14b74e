"""Run by tests/test_versions.py in a fresh process per verl version (that version's folder first on
PYTHONPATH, the plugin loaded through ``VERL_USE_EXTERNAL_MODULES``, as verl before 0.9.1 needs).

Writes a JSON to argv[1]: the verl version imported, what the plugin registered and how it was
loaded, the credit of every estimator through that verl's own ``compute_advantage`` on one fixed
batch, the ``best_of_n`` manager's scores for a batch built through that verl's reward-loop
registry, and each feature's support line (:func:`tea_verl.integrations.verl.private.unavailable`).
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile

import numpy as np
import torch
from omegaconf import OmegaConf

ESTIMATORS = {"bon": 8, "tea": 64, "prefix_tea": 64, "tea_gev": 64, "prefix_tea_gev": 64}  # name: N (bon: N <= m)
GROUPS, M, LENGTH = 24, 16, 6  # 384 rewards


def batch():
    """Rewards on each answer's last token, answers of 1 to LENGTH tokens, groups shuffled, with a
    penalty atom (-5) on some answers, so the failure path runs too."""
    from verl import DataProto

    gen = torch.Generator().manual_seed(7)
    scores = torch.randn(GROUPS * M, generator=gen)
    scores[torch.rand(GROUPS * M, generator=gen) < 0.08] = -5.0
    lengths = torch.randint(1, LENGTH + 1, (GROUPS * M,), generator=gen)
    mask = (torch.arange(LENGTH)[None, :] < lengths[:, None]).float()
    rewards = torch.zeros(GROUPS * M, LENGTH)
    rewards[torch.arange(GROUPS * M), lengths - 1] = scores
    uids = np.array([f"prompt-{g}" for g in range(GROUPS) for _ in range(M)], dtype=object)
    perm = torch.randperm(GROUPS * M, generator=gen)
    return DataProto.from_dict(tensors={"token_level_rewards": rewards[perm], "response_mask": mask[perm]},
                               non_tensors={"uid": uids[perm.numpy()]})


def credit() -> dict:
    from verl.trainer.ppo.ray_trainer import compute_advantage

    out = {}
    for name, n in ESTIMATORS.items():
        cfg = OmegaConf.create({"norm_adv_by_std_in_grpo": True, "tea": {"N": n}})
        adv = compute_advantage(batch(), adv_estimator=name, config=cfg).batch["advantages"]
        out[name] = adv.double().tolist()
    return out


def manager_scores(workdir: str) -> list[dict]:
    from verl.experimental.reward_loop.reward_manager import get_reward_manager_cls

    from benchmarks.tiny import build_tokenizer, rollout_batch

    build_tokenizer(workdir)
    from verl.utils import hf_tokenizer

    tok = hf_tokenizer(workdir)
    gold = f"{workdir}/gold.py"
    with open(gold, "w") as f:
        f.write("def gold(data_source, solution_str, ground_truth, extra_info=None):\n    return float(solution_str.count(' '))\n")
    cfg = OmegaConf.create({"reward": {"reward_model": {"enable": False}, "custom_reward_function": {"path": None},
                                       "best_of_n": {"gold": "function", "gold_function_path": gold, "gold_function_name": "gold"}}})

    def proxy(data_source, solution_str, ground_truth, extra_info=None):
        return float(len(solution_str))

    cls = get_reward_manager_cls("best_of_n")  # this verl's own registry lookup
    manager = cls(cfg, tok, proxy)
    data = rollout_batch(tok, n=2)

    async def run():
        try:
            return await asyncio.gather(*(manager.run_single(data[i : i + 1]) for i in range(len(data))))
        finally:
            await manager.close()

    out = []
    resp = data.batch["responses"]
    for i, r in enumerate(asyncio.run(run())):
        n_valid = int(data.batch["attention_mask"][i, -resp.shape[1] :].sum())
        text = tok.decode(resp[i, :n_valid], skip_special_tokens=True)
        info = r["reward_extra_info"]
        out.append({"score": r["reward_score"], "expected": float(len(text)), "gold": info["bon_gold_score"],
                    "expected_gold": float(text.count(" ")), "class": f"{cls.__module__}.{cls.__name__}"})
    return out


def main(path: str) -> None:
    import verl
    from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY

    from tea_verl.integrations.verl import plugin, private

    result = {
        "version": verl.__version__, "file": verl.__file__, "loaded_by": plugin.LOADED_BY,
        "registered": sorted(k for k in ESTIMATORS if k in ADV_ESTIMATOR_REGISTRY),
        "manager_unavailable": plugin.MANAGER_UNAVAILABLE,
        "features": {f: private.unavailable(f) for f in private.FEATURES},
        "credit": credit(),
    }
    with tempfile.TemporaryDirectory() as d:
        result["manager"] = manager_scores(d) if plugin.MANAGER_UNAVAILABLE is None else None
    with open(path, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main(sys.argv[1])
