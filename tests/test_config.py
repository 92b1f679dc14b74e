"""The algorithm.tea config: validation, YAML/dataclass agreement, Hydra composition with verl."""

from __future__ import annotations

import dataclasses
import os

import pytest
import yaml
from omegaconf import OmegaConf

from tea_verl import CONFIG_DIR
from tea_verl.config import BestOfNConfig, ConfigError, TeaConfig


def test_defaults():
    cfg = TeaConfig.from_algorithm({"tea": {"N": 64}})
    assert (cfg.N, cfg.shape, cfg.order, cfg.smoothing) == (64, "pooled", 1, 1e-3)


@pytest.mark.parametrize(
    "tea,message",
    [
        ({}, r"algorithm.tea.N is required"),
        ({"N": 0}, r"algorithm.tea.N must be an integer >= 1"),
        ({"N": 2.5}, r"algorithm.tea.N must be an integer >= 1"),
        ({"N": "64"}, r"algorithm.tea.N must be an integer >= 1"),
        ({"N": True}, r"algorithm.tea.N must be an integer >= 1"),
        ({"N": 64, "shape": "gumbel"}, r"algorithm.tea.shape must be 'pooled' or a number"),
        ({"N": 64, "shape": 1.5}, r"xi >= 1 has no finite mean"),
        ({"N": 64, "shape_bounds": [0.3, -0.3]}, r"shape_bounds must satisfy"),
        ({"N": 64, "shape_bounds": "wide"}, r"shape_bounds must be two numbers"),
        ({"N": 64, "smoothing": 0}, r"algorithm.tea.smoothing must be > 0"),
        ({"N": 64, "order": 3}, r"algorithm.tea.order must be 1 or 2"),
        ({"N": 64, "rho": 0.5}, r"algorithm.tea.rho must be < 0"),
        ({"N": 64, "Nn": 8}, r"unknown key\(s\) under algorithm.tea: \['Nn'\]"),
        ({"N": 64, "max_top_tie_rate": 1.5}, r"algorithm.tea.max_top_tie_rate must lie in \[0, 1\]"),
    ],
)
def test_bad_settings_name_the_key(tea, message):
    with pytest.raises(ConfigError, match=message):
        TeaConfig.from_algorithm(OmegaConf.create({"tea": tea}))


def test_numeric_shape_from_the_command_line_string():
    assert TeaConfig.from_algorithm({"tea": {"N": 8, "shape": "-0.25"}}).shape == -0.25


def test_yaml_declares_every_key_with_the_dataclass_default():
    with open(os.path.join(CONFIG_DIR, "tea_keys.yaml")) as f:
        declared = yaml.safe_load(f)["algorithm"]["tea"]
    fields = {f.name: f for f in dataclasses.fields(TeaConfig) if f.name != "extra"}
    assert set(declared) == set(fields)
    for name, f in fields.items():
        if name == "N":
            assert declared[name] is None  # required: no default
        else:
            default = f.default
            assert declared[name] == (list(default) if isinstance(default, tuple) else default), name


DOCS = os.path.join(os.path.dirname(CONFIG_DIR), "..", "docs")


def _doc(name: str) -> str:
    return open(os.path.join(DOCS, name)).read()


def test_docs_document_every_key():
    text = _doc("configuration.md")  # the README links it as "every key, default and metric"
    for f in dataclasses.fields(TeaConfig):
        if f.name != "extra":
            assert f"algorithm.tea.{f.name}" in text, f.name


def test_the_metric_table_is_the_metrics_the_code_logs():
    """docs/configuration.md's table of tea/* metrics names exactly what CreditInfo.metrics (both
    families) and the adapters log, each once."""
    import re

    from tea_verl.estimators import CreditInfo
    from tea_verl.integrations.common import ADAPTER_METRICS

    info = CreditInfo(xi=0.1, shape_r2=0.9, num_singletons=0)
    logged = set(info.metrics("tea_gev")) | set(info.metrics("tea")) | set(ADAPTER_METRICS)
    rows = [line for line in _doc("configuration.md").splitlines() if line.startswith("| `tea/")]
    documented = [name for row in rows for name in re.findall(r"`(tea/[a-z_0-9]+)`", row.split("|")[1])]
    assert sorted(documented) == sorted(logged) and len(documented) == len(set(documented))


def test_the_defaults_are_defined_once():
    """The validation and bon-report defaults and diagnose's shape bounds come from the settings."""
    from tea_verl.cli import build_parser
    from tea_verl.config import BEST_OF_N_DEFAULTS, TEA_DEFAULTS
    from tea_verl.metrics import diagnose, report

    assert report.DEFAULT_EXTRAPOLATE == BEST_OF_N_DEFAULTS.extrapolate_to == BestOfNConfig().extrapolate_to
    args = build_parser().parse_args(["bon-report", "x"])
    assert tuple(int(v) for v in args.extrapolate.split(",")) == BEST_OF_N_DEFAULTS.extrapolate_to
    assert diagnose.SHAPE_BOUNDS == TEA_DEFAULTS.shape_bounds


def test_tea_trainer_composes_on_verl_ppo_trainer_and_overrides_without_plus():
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
        cfg = compose(
            "tea_trainer",
            overrides=["algorithm.tea.N=64", "algorithm.tea.shape=-0.1", "actor_rollout_ref.rollout.n=8"],
        )
    assert cfg.algorithm.adv_estimator == "tea"
    assert cfg.actor_rollout_ref.rollout.n == 8  # verl's own keys are all there
    assert "critic" in cfg and "trainer" in cfg
    tea = TeaConfig.from_algorithm(cfg.algorithm)
    assert (tea.N, tea.shape) == (64, -0.1)


def test_plain_ppo_trainer_needs_plus_and_then_works():
    import verl
    from hydra import compose, initialize_config_dir
    from hydra.errors import ConfigCompositionException

    verl_config = os.path.join(os.path.dirname(verl.__file__), "trainer", "config")
    with initialize_config_dir(config_dir=verl_config, version_base=None):
        with pytest.raises(ConfigCompositionException):
            compose("ppo_trainer", overrides=["algorithm.tea.N=64"])
        cfg = compose("ppo_trainer", overrides=["+algorithm.tea.N=64", "algorithm.adv_estimator=tea"])
    assert TeaConfig.from_algorithm(cfg.algorithm).N == 64


def test_documented_runtime_env_override_composes():
    # docs/configuration.md: the VERL_USE_EXTERNAL_MODULES fallback reaches Ray workers through this override
    from hydra import compose, initialize_config_dir

    override = "+ray_kwargs.ray_init.runtime_env.env_vars.VERL_USE_EXTERNAL_MODULES=tea_verl.plugin"
    assert override in _doc("configuration.md")
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
        cfg = compose("tea_trainer", overrides=["algorithm.tea.N=64", override])
    assert cfg.ray_kwargs.ray_init.runtime_env.env_vars.VERL_USE_EXTERNAL_MODULES == "tea_verl.plugin"


# ------------------------------------------------------------------------------------------------
# reward.best_of_n
# ------------------------------------------------------------------------------------------------
def test_best_of_n_yaml_declares_every_key_with_the_dataclass_default():
    from tea_verl.config import BestOfNConfig

    with open(os.path.join(CONFIG_DIR, "tea_keys.yaml")) as f:
        declared = yaml.safe_load(f)["reward"]["best_of_n"]
    fields = {f.name: f for f in dataclasses.fields(BestOfNConfig) if f.name != "extra"}
    assert set(declared) == set(fields)
    for name, f in fields.items():
        assert declared[name] == (list(f.default) if isinstance(f.default, tuple) else f.default), name
    text = _doc("validation.md")
    for name in fields:
        assert f"reward.best_of_n.{name}" in text, name


def test_best_of_n_defaults_when_the_node_is_absent_and_values_from_the_command_line():
    from tea_verl.config import BestOfNConfig

    assert BestOfNConfig.from_config({}) == BestOfNConfig()
    cfg = BestOfNConfig.from_config({"reward": {"best_of_n": {"shape": "-0.2", "extrapolate_to": ["512"]}}})
    assert cfg.fit_shape == -0.2 and cfg.extrapolate_to == (512,)
    with pytest.raises(ConfigError, match=r"reward.best_of_n.extrapolate_to must hold budgets >= 2"):
        BestOfNConfig(extrapolate_to=(1,))
    with pytest.raises(ConfigError, match=r"reward.best_of_n.shape must lie in \[-2, 1\)"):
        BestOfNConfig(shape=1.5)
    with pytest.raises(ConfigError, match=r"backoff_max_s .* must be >="):
        BestOfNConfig(backoff_s=2.0, backoff_max_s=1.0)
