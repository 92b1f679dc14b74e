"""Integration with the installed verl: registry, entry point, Ray workers, compute_advantage."""

from __future__ import annotations

import importlib
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import verl  # noqa: F401  (loads the tea-verl entry point, as every verl process does)
from omegaconf import OmegaConf
from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY, get_adv_estimator_fn

from tea_verl.config import TeaConfig
from tea_verl.estimators import best_of_n_credit
from tea_verl.integrations.verl import advantage as glue


def algo(n=64, norm=True, **tea):
    return OmegaConf.create({"norm_adv_by_std_in_grpo": norm, "tea": {"N": n, **tea}})


def batch(groups=16, m=8, length=5, seed=0, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    scores = torch.randn(groups * m, generator=gen).to(dtype)
    lengths = torch.randint(1, length + 1, (groups * m,), generator=gen)
    mask = (torch.arange(length)[None, :] < lengths[:, None]).to(dtype)
    rewards = torch.zeros(groups * m, length, dtype=dtype)
    rewards[torch.arange(groups * m), lengths - 1] = scores  # outcome reward on the last token
    uids = np.array([f"prompt-{g}" for g in range(groups) for _ in range(m)], dtype=object)
    perm = torch.randperm(groups * m, generator=gen)
    return rewards[perm], mask[perm], uids[perm.numpy()], scores[perm]


def _env(**extra):
    env = dict(os.environ)
    env.pop("VERL_USE_EXTERNAL_MODULES", None)
    env.pop("VERL_USE_EXTERNAL_PLUGINS", None)
    env.update(extra)
    return env


CHECK = (
    "import verl\n"
    "from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY as R\n"
    "from verl.experimental.reward_loop.reward_manager.registry import REWARD_MANAGER as M\n"
    "print(','.join(sorted(k for k in ('bon','prefix_tea','prefix_tea_gev','tea','tea_gev') if k in R) + [k for k in ('best_of_n',) if k in M]))\n"
)


def test_entry_point_is_declared():
    from importlib.metadata import entry_points

    eps = {ep.name: ep for ep in entry_points(group="verl.plugins")}
    assert eps["tea_verl"].value == "tea_verl.integrations.verl.plugin"
    assert eps["tea_verl"].load().__name__ == "tea_verl.integrations.verl.plugin"


@pytest.mark.slow  # a subprocess or Ray
def test_plain_import_verl_registers_in_a_fresh_process():
    out = subprocess.run([sys.executable, "-c", CHECK], env=_env(), capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "bon,prefix_tea,prefix_tea_gev,tea,tea_gev,best_of_n"


@pytest.mark.slow  # a subprocess or Ray
def test_external_modules_fallback_registers_without_entry_points():
    # with entry-point discovery off, nothing registers ...
    off = subprocess.run(
        [sys.executable, "-c", CHECK], env=_env(VERL_USE_EXTERNAL_PLUGINS="none"), capture_output=True, text=True
    )
    assert off.returncode == 0 and off.stdout.strip() == ""
    # ... and verl's documented module hook brings the registrations back
    on = subprocess.run(
        [sys.executable, "-c", CHECK],
        env=_env(VERL_USE_EXTERNAL_PLUGINS="none", VERL_USE_EXTERNAL_MODULES="tea_verl.plugin"),
        capture_output=True,
        text=True,
        check=True,
    )
    assert on.stdout.strip() == "bon,prefix_tea,prefix_tea_gev,tea,tea_gev,best_of_n"


@pytest.mark.slow  # a subprocess or Ray
def test_plugin_failure_is_loud():
    # Make the glue module unimportable, then `import verl` (which swallows plugin errors at DEBUG).
    code = "import sys\nsys.modules['tea_verl.integrations.verl.advantage'] = None\n" + CHECK
    out = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True)
    assert out.returncode == 0  # verl itself still imports
    assert "tea" not in out.stdout.strip().split(",")
    assert "tea-verl could not register its advantage estimators" in out.stderr
    assert "Unknown advantage estimator" in out.stderr


def test_register_is_idempotent_and_survives_reload():
    glue.register()
    glue.register()
    reloaded = importlib.reload(glue)
    reloaded.register()
    assert ADV_ESTIMATOR_REGISTRY["tea"] is reloaded.ESTIMATOR_FUNCTIONS["tea"]
    assert get_adv_estimator_fn("prefix_tea") is reloaded.ESTIMATOR_FUNCTIONS["prefix_tea"]
    assert reloaded.ESTIMATOR_FUNCTIONS["prefix_tea"].__name__ == "compute_prefix_tea_advantage"


def test_foreign_function_under_our_name_is_refused():
    saved = ADV_ESTIMATOR_REGISTRY["bon"]
    try:
        ADV_ESTIMATOR_REGISTRY["bon"] = lambda **kw: None  # someone else's "bon"
        with pytest.raises(ValueError, match="already been registered"):
            glue.register()
    finally:
        ADV_ESTIMATOR_REGISTRY["bon"] = saved


@pytest.mark.parametrize("name", ["bon", "tea", "prefix_tea", "tea_gev", "prefix_tea_gev"])
def test_registered_function_broadcasts_credit_over_the_mask(name):
    rewards, mask, uids, scores = batch()
    n = 8 if name == "bon" else 64
    adv, ret = get_adv_estimator_fn(name)(token_level_rewards=rewards, response_mask=mask, index=uids, config=algo(n))
    assert adv.shape == rewards.shape and adv.dtype == rewards.dtype
    assert torch.equal(adv, ret)
    assert torch.all(adv[mask == 0] == 0)
    _, inverse = np.unique(uids, return_inverse=True)
    credit, _ = best_of_n_credit(scores, torch.as_tensor(inverse), name, TeaConfig(N=n))
    assert torch.allclose(adv, credit[:, None] * mask, atol=1e-6)
    assert adv.abs().sum() > 0


def test_bon_at_n_equals_m_is_verl_grpo_passk():
    rewards, mask, uids, _ = batch(groups=32, m=6, dtype=torch.float64)
    for norm in (True, False):
        # grpo_passk normalises per group: compare with std_scale=group
        ours, _ = get_adv_estimator_fn("bon")(rewards, mask, index=uids, config=algo(6, norm, std_scale="group"))
        passk, _ = get_adv_estimator_fn("grpo_passk")(rewards, mask, index=uids, config=algo(6, norm))
        # passk's credit is r_max - r_second; ours is N * that, i.e. m times it
        assert torch.allclose(ours, 6 * passk, atol=1e-10)


def test_bon_at_n1_is_verl_rloo():
    rewards, mask, uids, _ = batch(groups=32, m=5, dtype=torch.float64)
    ours, _ = get_adv_estimator_fn("bon")(rewards, mask, index=uids, config=algo(1, norm=False))
    rloo, _ = get_adv_estimator_fn("rloo")(rewards, mask, index=uids, config=algo(1, norm=False))
    assert torch.allclose(ours, rloo, atol=1e-10)


def test_compute_advantage_dispatches_to_tea_on_a_dataproto():
    from verl import DataProto
    from verl.trainer.ppo.ray_trainer import compute_advantage

    rewards, mask, uids, scores = batch(groups=24, m=8)
    data = DataProto.from_dict(
        tensors={"token_level_rewards": rewards, "response_mask": mask},
        non_tensors={"uid": uids},
    )
    out = compute_advantage(data, adv_estimator="tea", config=algo(64, norm=True))
    _, inverse = np.unique(uids, return_inverse=True)
    credit, _ = best_of_n_credit(scores, torch.as_tensor(inverse), "tea", TeaConfig(N=64))
    assert torch.allclose(out.batch["advantages"], credit[:, None] * mask, atol=1e-6)
    assert torch.equal(out.batch["returns"], out.batch["advantages"])
    assert math.isnan(glue.last_info["tea"].xi)  # the Gaussian family fits no GEV shape
    out = compute_advantage(data, adv_estimator="tea_gev", config=algo(64, norm=True))
    credit, _ = best_of_n_credit(scores, torch.as_tensor(inverse), "tea_gev", TeaConfig(N=64))
    assert torch.allclose(out.batch["advantages"], credit[:, None] * mask, atol=1e-6)
    assert glue.last_info["tea_gev"].xi == glue.last_info["tea_gev"].xi  # a fitted shape, not nan


def test_compute_advantage_with_the_composed_tea_trainer_config():
    from hydra import compose, initialize_config_dir
    from verl import DataProto
    from verl.trainer.ppo.ray_trainer import compute_advantage

    from tea_verl import CONFIG_DIR

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
        cfg = compose("tea_trainer", overrides=["algorithm.tea.N=32", "algorithm.adv_estimator=prefix_tea"])
    rewards, mask, uids, scores = batch(groups=8, m=16)
    data = DataProto.from_dict(tensors={"token_level_rewards": rewards, "response_mask": mask}, non_tensors={"uid": uids})
    out = compute_advantage(data, adv_estimator=cfg.algorithm.adv_estimator, config=cfg.algorithm)
    _, inverse = np.unique(uids, return_inverse=True)
    credit, _ = best_of_n_credit(scores, torch.as_tensor(inverse), "prefix_tea", TeaConfig(N=32))
    assert torch.allclose(out.batch["advantages"], credit[:, None] * mask, atol=1e-6)


# --- bad input through the glue -------------------------------------------------------------------
def test_missing_index_is_explained():
    rewards, mask, _, _ = batch()
    with pytest.raises(ValueError, match=r"need `index` \(the prompt uid of each sample\)"):
        get_adv_estimator_fn("tea")(rewards, mask, config=algo())


def test_index_of_wrong_length_is_explained():
    rewards, mask, uids, _ = batch()
    with pytest.raises(ValueError, match=r"one prompt uid per sample: expected shape \(128,\)"):
        get_adv_estimator_fn("tea")(rewards, mask, index=uids[:-1], config=algo())


def test_missing_config_and_missing_n_are_explained():
    rewards, mask, uids, _ = batch()
    with pytest.raises(ValueError, match="needs the algorithm config"):
        get_adv_estimator_fn("tea")(rewards, mask, index=uids, config=None)
    with pytest.raises(ValueError, match=r"algorithm.tea is missing.*algorithm.tea.N=64"):
        get_adv_estimator_fn("tea")(rewards, mask, index=uids, config=OmegaConf.create({"gamma": 1.0}))
    with pytest.raises(ValueError, match=r"algorithm.tea.N is required"):
        get_adv_estimator_fn("prefix_tea")(rewards, mask, index=uids, config=OmegaConf.create({"tea": {"N": None}}))


def test_nan_reward_is_located():
    rewards, mask, uids, _ = batch()
    rewards[7, 0] = float("nan")
    with pytest.raises(ValueError, match=r"1 of 128 rewards are NaN or inf \(batch rows \[7\]\)"):
        get_adv_estimator_fn("tea")(rewards, mask, index=uids, config=algo())


def test_bon_above_group_size_points_to_tea():
    rewards, mask, uids, _ = batch(m=8)
    with pytest.raises(ValueError, match="Use adv_estimator=tea or prefix_tea"):
        get_adv_estimator_fn("bon")(rewards, mask, index=uids, config=algo(64))


def test_shape_mismatch_is_explained():
    rewards, mask, uids, _ = batch()
    with pytest.raises(ValueError, match="must both be \\(batch, response_length\\)"):
        get_adv_estimator_fn("tea")(rewards, mask[:, :-1], index=uids, config=algo())


def test_singleton_groups_are_logged_and_zero(caplog):
    rewards, mask, uids, _ = batch(groups=4, m=8)
    uids = uids.copy()
    uids[0] = "lonely"
    with caplog.at_level("WARNING", logger="tea_verl.integrations.verl.advantage"):
        adv, _ = get_adv_estimator_fn("tea")(rewards, mask, index=uids, config=algo(32))
    assert torch.all(adv[0] == 0)
    assert "1 prompt group(s) have a single response" in caplog.text


# --- Ray -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.mark.slow  # a subprocess or Ray
def test_estimators_are_registered_inside_a_ray_actor(ray_cluster):
    ray = ray_cluster

    @ray.remote
    class Worker:  # a fresh worker process: only `import verl` and the entry point register tea
        def advantages(self, rewards, mask, uids):
            import verl  # noqa: F401,F811 - in the actor process
            from omegaconf import OmegaConf
            from verl.trainer.ppo.core_algos import get_adv_estimator_fn

            cfg = OmegaConf.create({"norm_adv_by_std_in_grpo": True, "tea": {"N": 64}})
            return os.getpid(), get_adv_estimator_fn("tea")(rewards, mask, index=uids, config=cfg)[0]

    rewards, mask, uids, _ = batch()
    worker = Worker.remote()
    pid, remote = ray.get(worker.advantages.remote(rewards, mask, uids))
    assert pid != os.getpid()
    local, _ = get_adv_estimator_fn("tea")(rewards, mask, index=uids, config=algo(64))
    assert torch.allclose(remote, local, atol=1e-6)


@pytest.mark.slow  # a subprocess or Ray
def test_best_of_n_manager_scores_inside_verls_reward_loop_actor(ray_cluster, tmp_path):
    """verl's RewardLoopWorker as a Ray actor (a fresh process: the plugin registers best_of_n on
    `import verl` there) scores against a loopback server through our manager."""
    ray = ray_cluster
    from verl.experimental.reward_loop.reward_loop import RewardLoopWorker

    from benchmarks.common import compose_tea_trainer, rm_best_of_n_overrides
    from benchmarks.servers import ScoringServer, hash_score
    from benchmarks.tiny import build_tokenizer, rollout_batch

    tok = build_tokenizer(str(tmp_path))
    data = rollout_batch(tok, n=3)
    with ScoringServer(score_fn=hash_score) as srv:
        cfg = compose_tea_trainer([*rm_best_of_n_overrides(str(tmp_path)), f"actor_rollout_ref.model.path={tmp_path}"])
        worker = ray.remote(RewardLoopWorker).remote(cfg, srv.address)
        out = ray.get(worker.compute_score_batch.remote(data))
        served = dict(srv.successes)
    assert len(out) == len(data) and len(served) == len(data) and set(served.values()) == {1}
    assert sorted(o["reward_score"] for o in out) == pytest.approx(sorted(hash_score(t) for t in served))
    assert all(o["reward_extra_info"]["bon_selection_score"] == o["reward_score"] for o in out)


def _dataproto(scores: torch.Tensor, m: int):
    from verl import DataProto

    groups = scores.numel() // m
    rewards = torch.zeros(scores.numel(), 3)
    rewards[:, -1] = scores.float()
    uids = np.array([f"p{g}" for g in range(groups) for _ in range(m)], dtype=object)
    return DataProto.from_dict(tensors={"token_level_rewards": rewards, "response_mask": torch.ones_like(rewards)},
                               non_tensors={"uid": uids})


@pytest.mark.parametrize("estimator", ["tea", "prefix_tea"])
def test_lexicon_like_rewards_through_compute_advantage_never_raise(estimator):
    """1,000 batches of 16 prompts x 8 of a continuous law with point masses (18 % zeros, recurring
    values): no exception, finite credit, tied groups counted in the tea/* step metrics."""
    from verl.trainer.ppo.ray_trainer import compute_advantage

    from benchmarks.common import LexiconLike

    law, rng = LexiconLike(), np.random.default_rng(11)
    fallback_groups = fallback_batches = 0
    for _ in range(1000):
        out = compute_advantage(_dataproto(torch.from_numpy(law.sample(rng, (128,))), 8), adv_estimator=estimator, config=algo(64))
        assert torch.isfinite(out.batch["advantages"]).all()
        metrics = glue.step_metrics(estimator)
        fallback_groups += metrics["tea/fallback_groups"]
        fallback_batches += metrics["tea/fallback_batch"]
    assert fallback_groups > 0  # ties happen (about 1 % of groups) and are handled per group
    assert fallback_batches == 0  # ... without declaring the law discrete


@pytest.mark.parametrize("kind", ["pass/fail", "5 levels"])
def test_discrete_rewards_fall_back_to_bon_with_one_warning_per_run(kind, caplog):
    from verl.trainer.ppo.ray_trainer import compute_advantage

    rng = np.random.default_rng(5)
    glue.new_run()
    caplog.set_level("WARNING", logger="tea_verl.integrations.verl.advantage")
    for step in range(5):
        levels = 2 if kind == "pass/fail" else 5
        scores = torch.from_numpy(rng.integers(0, levels, 128) / (levels - 1))
        out = compute_advantage(_dataproto(scores, 8), adv_estimator="tea", config=algo(64))
        exact = compute_advantage(_dataproto(scores, 8), adv_estimator="bon", config=algo(8))
        assert torch.allclose(out.batch["advantages"], exact.batch["advantages"])
        assert glue.step_metrics("tea")["tea/fallback_batch"] == 1.0
    warnings = [r for r in caplog.records if "look discrete" in r.getMessage()]
    assert len(warnings) == 1 and "once per run" in warnings[0].getMessage()


def test_step_metrics_are_named_under_tea_and_finite_on_a_continuous_batch():
    from verl import DataProto
    from verl.trainer.ppo.ray_trainer import compute_advantage

    rewards, mask, uids, _ = batch(groups=16, m=8)
    data = DataProto.from_dict(tensors={"token_level_rewards": rewards, "response_mask": mask}, non_tensors={"uid": uids})
    compute_advantage(data, adv_estimator="tea_gev", config=algo(64))
    metrics = glue.step_metrics("tea_gev")
    assert set(metrics) == {
        "tea/xi", "tea/shape_r2", "tea/top_tie_rate", "tea/fallback_groups", "tea/fallback_batch", "tea/discrete_pvalue",
        "tea/singletons", "tea/credit_mean", "tea/credit_std", "tea/best_nonpositive_share", "tea/best_lowest_share",
        "tea/failure_share",
    }
    assert all(np.isfinite(v) for v in metrics.values()), metrics
    assert metrics["tea/fallback_batch"] == 0.0 and metrics["tea/top_tie_rate"] == 0.0
    compute_advantage(data, adv_estimator="tea", config=algo(64))  # the Gaussian family fits no shape
    gaussian = glue.step_metrics("tea")
    assert set(gaussian) == set(metrics) - {"tea/xi", "tea/shape_r2"}
    assert all(np.isfinite(v) for v in gaussian.values()), gaussian


def test_uids_are_grouped_by_a_hash_map_as_numpy_would():
    """verl's uuid4 strings (object array), numbers, fixed-width strings, tensors and unhashable
    uids all give the partition np.unique gives (the ids' order may differ; every group is credited
    on its own)."""
    import uuid

    rng = np.random.default_rng(3)
    ids = [str(uuid.UUID(int=int(rng.integers(2**62)), version=4)) for _ in range(50)]
    picks = rng.integers(0, 50, 400)
    cases = [
        np.array([ids[i] for i in picks], dtype=object),
        picks.astype(np.int64),
        np.array([ids[i] for i in picks]),  # fixed-width unicode
        torch.as_tensor(picks),
        np.array([[i] for i in picks] + [[0, 1]], dtype=object)[:-1],  # lists: grouped by their string form
    ]
    _, want = np.unique(picks, return_inverse=True)
    for index in cases:
        got = glue.uid_to_group_ids(index, 400, torch.device("cpu")).numpy()
        assert got.min() == 0 and got.max() == len(set(picks.tolist())) - 1
        # the same partition: a bijection between the two labellings
        assert len(set(zip(got.tolist(), want.tolist()))) == len(set(want.tolist()))


def test_the_metrics_layer_computes_the_credit_verl_registers_without_verl():
    """tea_verl.metrics (which imports no verl) measures the estimators with the same credit, bit for
    bit, as the functions in verl's registry give through verl's signature."""
    from tea_verl.estimators import ESTIMATORS
    from tea_verl.metrics.quality import own_credit

    rng = np.random.default_rng(0)
    for m, n in ((8, 64), (16, 128)):
        x = torch.from_numpy(rng.gumbel(size=64 * m))
        x[:40] = -5.0  # a failure atom
        uids = np.repeat(np.arange(64), m).astype(object)
        for est in ESTIMATORS:
            budget = m if est == "bon" else n
            for norm in (True, False):
                assert torch.equal(own_credit(est, x, uids, budget, norm), glue.registered_credit(est, x, uids, budget, norm))
    with pytest.raises(ValueError, match="registered_credit"):
        own_credit("grpo", x, uids, n, True)
