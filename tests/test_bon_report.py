"""bon-report: reading verl dumps and tables, errors, outputs (PNG read back); verl's metric hook."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tea_verl.cli import main as cli
from tea_verl.metrics.curves import prompt_curves
from tea_verl.metrics.report import analyse, format_report
from tea_verl.metrics.samples import ReportError, read_samples


def write_verl_dump(directory, prompts=6, n=8, step=10, seed=0, sources=("ultrafeedback", "hh_rlhf"), gold=True):
    """A file shaped like verl v1's validation dump: one row per output, uid = {uid}_{session}_{index}."""
    rng = np.random.default_rng(seed)
    os.makedirs(directory, exist_ok=True)
    truth = {}
    with open(os.path.join(directory, f"{step}.jsonl"), "w") as f:
        for p in range(prompts):
            uid = f"9b1d-{p:04d}"
            sel = rng.normal(size=n) + p
            g = sel + rng.normal(size=n)
            truth[uid] = (sel, g, sources[p % len(sources)])
            for s in range(n):
                row = {"input": "q", "output": "a", "gts": None, "score": sel[s], "step": step, "reward": sel[s],
                       "bon_selection_score": sel[s], "bon_gold_score": g[s] if gold else None,
                       "bon_data_source": sources[p % len(sources)], "uid": f"{uid}_{s}_0"}
                f.write(json.dumps(row) + "\n")
    return truth


def test_verl_dump_is_grouped_by_prompt_and_curves_are_exact(tmp_path):
    truth = write_verl_dump(tmp_path / "val", step=10)
    write_verl_dump(tmp_path / "val", step=3, seed=9)  # an older step: the newest is read
    samples = read_samples(str(tmp_path / "val"))
    assert samples.origin.endswith("10.jsonl") and len(samples) == 48
    report = analyse(samples, extrapolate_to=(64,))
    assert set(report.sources) == {"ultrafeedback", "hh_rlhf"}
    uf = report.sources["ultrafeedback"].summary
    rows = [prompt_curves(sel, g) for sel, g, src in truth.values() if src == "ultrafeedback"]
    assert np.allclose(uf.best_mean, np.mean([r[0] for r in rows], 0), atol=1e-12)
    assert np.allclose(uf.gold_mean, np.mean([r[1] for r in rows], 0), atol=1e-12)
    assert report.sources["ultrafeedback"].fit.extrapolated[64] > uf.best_mean[-1]
    text = format_report(report)
    assert "EXTRAPOLATED" in text and "sel. gold" in text


def test_multi_output_sessions_count_once(tmp_path):
    path = tmp_path / "5.jsonl"
    rows = []
    for s in range(4):
        for idx in range(3):  # three outputs per session; the final one (idx 2) carries the score
            rows.append({"input": "q", "output": "a", "step": 5, "score": float(s), "uid": f"u1_{s}_{idx}"})
    path.write_text("\n".join(json.dumps(r) for r in rows))
    samples = read_samples(str(path))
    assert len(samples) == 4 and samples.dropped_duplicates == 8
    assert samples.uid == ["u1"] * 4


def test_jsonl_and_parquet_tables_give_the_same_report(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(1)
    rows = [{"uid": f"p{p}", "score": float(rng.normal()), "gold_score": float(rng.normal()), "data_source": "math"}
            for p in range(5) for _ in range(6)]
    (tmp_path / "t.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "t.parquet")
    a = analyse(read_samples(str(tmp_path / "t.jsonl"))).sources["math"].summary
    b = analyse(read_samples(str(tmp_path / "t.parquet"))).sources["math"].summary
    assert np.array_equal(a.best_mean, b.best_mean) and np.array_equal(a.gold_mean, b.gold_mean)


def test_uneven_samples_and_partial_gold_are_reported(tmp_path):
    rows = [{"uid": "a", "score": float(i), "gold_score": float(i)} for i in range(8)]
    rows += [{"uid": "b", "score": float(i), "gold_score": None if i == 0 else 1.0} for i in range(4)]
    rows += [{"uid": "c", "score": float(-i)} for i in range(4)]
    (tmp_path / "t.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    report = analyse(read_samples(str(tmp_path / "t.jsonl")))
    src = report.sources["unknown"]
    assert src.summary.n_counts == {4: 2, 8: 1} and src.gold_incomplete_prompts == 1
    assert list(src.summary.gold_prompts_at_k) == [1] * 8  # only prompt a has gold on every sample
    text = format_report(report)
    assert "uneven samples per prompt" in text and "gold on only some samples" in text
    assert "fitted on k = 1..4" in src.fit_note


@pytest.mark.parametrize(
    "content,message",
    [
        ('{"uid": "a", "score": 1}\n{"uid": "a", "score": }\n', r"t.jsonl:2: not valid JSON"),
        ('{"uid": "a", "score": 1}\n{"score": 2}\n', r"t.jsonl:2: missing field 'uid'"),
        ('{"uid": "a", "value": 1}\n', r"t.jsonl:1: missing the selection score"),
        ('{"uid": "a", "score": "high"}\n', r"t.jsonl:1: field 'score' must be a number"),
        ('{"uid": "a", "score": NaN}\n', r"t.jsonl:1: field 'score' is nan"),
        ('{"uid": "a", "score": 1, "gold_score": "x"}\n', r"t.jsonl:1: field 'gold_score' must be a number"),
        ("", r"no samples"),
    ],
)
def test_malformed_files_name_the_line_and_field(tmp_path, content, message):
    (tmp_path / "t.jsonl").write_text(content)
    with pytest.raises(ReportError, match=message):
        read_samples(str(tmp_path / "t.jsonl"))


def test_bad_paths_are_explained(tmp_path):
    with pytest.raises(ReportError, match="no such file"):
        read_samples(str(tmp_path / "missing.jsonl"))
    with pytest.raises(ReportError, match="no '<step>.jsonl' files"):
        read_samples(str(tmp_path))
    (tmp_path / "x.csv").write_text("uid,score\n")
    with pytest.raises(ReportError, match="unknown format"):
        read_samples(str(tmp_path / "x.csv"))


def _panels_have_plots(png_path, rows, cols):
    import matplotlib.image as mpimg

    img = mpimg.imread(png_path)[..., :3]
    h, w, _ = img.shape
    colored = (img.max(-1) - img.min(-1)) > 0.2  # line and band colours; axes, text and background are grey
    for r in range(rows):
        for c in range(cols):
            panel = colored[r * h // rows : (r + 1) * h // rows, c * w // cols : (c + 1) * w // cols]
            assert panel.mean() > 0.002, f"panel ({r}, {c}) is empty"
    return h, w


def test_cli_writes_tables_csv_json_and_a_png_that_reads_back(tmp_path, capsys):
    write_verl_dump(tmp_path / "val", prompts=8, n=16)
    out = tmp_path / "report"
    assert cli(["bon-report", str(tmp_path / "val"), "--out", str(out), "--extrapolate", "64,256"]) == 0
    printed = capsys.readouterr().out
    assert "[ultrafeedback]" in printed and "best-of-256" in printed
    import csv

    rows = list(csv.DictReader(open(out / "bon_report.csv")))
    measured = [r for r in rows if r["kind"] == "measured"]
    assert len(measured) == 2 * 16 and {r["kind"] for r in rows} == {"measured", "extrapolated"}
    js = json.load(open(out / "bon_report.json"))
    law = js["data_sources"]["hh_rlhf"]["scaling_law"]
    assert law["extrapolated"]["256"]["is_extrapolation"] is True
    h, w = _panels_have_plots(out / "bon_report.png", rows=2, cols=2)
    assert (h, w) == (720, 1200)  # 2 x 2 panels of 6 x 3.6 inches at 100 dpi


def test_cli_errors_are_one_line(tmp_path, capsys):
    (tmp_path / "t.jsonl").write_text('{"uid": 1}\n')
    assert cli(["bon-report", str(tmp_path / "t.jsonl")]) == 1
    assert "t.jsonl:1: missing the selection score" in capsys.readouterr().err
    assert cli(["bon-report", str(tmp_path / "t.jsonl"), "--shape", "wide"]) == 2


# ------------------------------------------------------------------------------------------------
# verl's validation-metrics function
# ------------------------------------------------------------------------------------------------
def _verl_validation_inputs(prompts=4, n=8, seed=0):
    rng = np.random.default_rng(seed)
    data_sources, uids, reward, gold = [], [], [], []
    for p in range(prompts):
        for _ in range(n):
            data_sources.append("ultrafeedback" if p % 2 else "hh_rlhf")
            uids.append(f"uid-{p}")
            x = float(rng.normal())
            reward.append(x)
            gold.append(x + float(rng.normal()))
    infos = {"reward": reward, "bon_selection_score": list(reward), "bon_gold_score": gold,
             "bon_response_length": [12] * len(reward), "bon_data_source": list(data_sources)}
    return data_sources, uids, infos


def test_val_metrics_update_adds_best_of_n_metrics_under_verls_naming():
    from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync

    from benchmarks.common import compose_tea_trainer as compose
    from tea_verl.integrations.verl.validation import with_bon_validation

    cls = with_bon_validation(PPOTrainerSync)
    assert issubclass(cls, PPOTrainerSync) and with_bon_validation(cls) is cls
    trainer = object.__new__(cls)  # the metric function needs no GPU workers
    trainer.config = compose(["reward.best_of_n.extrapolate_to=[16,32]"])
    data_sources, uids, infos = _verl_validation_inputs()
    metrics = trainer._val_metrics_update(data_sources, uids, infos, sample_turns=[])
    # verl's own metrics are still there
    assert "val-core/hh_rlhf/reward/mean@8" in metrics or "val-aux/hh_rlhf/reward/mean@8" in metrics
    assert "val-aux/hh_rlhf/reward/best@4/mean" in metrics
    # ours, under verl's {section}/{data_source}/{variable}/{metric}
    expected = np.mean([prompt_curves(np.array(infos["reward"][i:i + 8]))[0] for i in (8, 24)], 0)
    assert metrics["val-core/ultrafeedback/bon_selection_score/exact_best@8/mean"] == pytest.approx(expected[7])
    assert metrics["val-aux/ultrafeedback/bon_selection_score/exact_best@2/mean"] == pytest.approx(expected[1])
    assert "val-aux/ultrafeedback/bon_selection_score/exact_best@4/sem" in metrics
    assert "val-core/ultrafeedback/bon_gold_score/selected@8/mean" in metrics
    for name in ("a", "b", "xi", "r2", "rmse"):
        assert f"val-aux/ultrafeedback/bon_selection_score/law/{name}" in metrics
    assert "val-aux/ultrafeedback/bon_selection_score/law/extrapolated_best@32/mean" in metrics
    assert all(np.isfinite(v) for v in metrics.values())


def test_without_the_best_of_n_manager_verls_reward_is_the_selection_score():
    from tea_verl.integrations.verl.validation import bon_validation_metrics

    data_sources, uids, infos = _verl_validation_inputs()
    metrics = bon_validation_metrics(data_sources, uids, {"reward": infos["reward"]})
    assert "val-core/hh_rlhf/reward/exact_best@8/mean" in metrics
    assert not any("selected@" in k for k in metrics)


def test_task_runner_swaps_in_the_metric_trainer_only_inside_its_run():
    from verl.trainer.main_ppo import TaskRunnerV1
    from verl.trainer.ppo.v1 import get_trainer_cls
    from verl.trainer.ppo.v1.trainer_base import TRAINER_REGISTRY

    from tea_verl.integrations.verl.validation import TeaTaskRunnerImpl, bon_trainers

    assert issubclass(TeaTaskRunnerImpl, TaskRunnerV1.__ray_actor_class__)
    before = dict(TRAINER_REGISTRY)
    with bon_trainers():
        for mode in ("sync", "colocate_async", "separate_async"):
            cls = get_trainer_cls(mode)
            assert cls._tea_bon_validation and issubclass(cls, before[mode])
    assert TRAINER_REGISTRY == before
    # verl's run() still looks the trainer up by mode at call time (what the swap relies on)
    import inspect

    assert "get_trainer_cls(config.trainer.v1.trainer_mode)" in inspect.getsource(TaskRunnerV1.__ray_actor_class__.run)


def test_entry_point_composes_the_tea_trainer_config():
    out = subprocess.run(
        [sys.executable, "-m", "tea_verl.main_ppo", "--cfg", "job", "algorithm.tea.N=64", "reward.reward_manager.name=best_of_n"],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "best_of_n:" in out.stdout and "adv_estimator: tea" in out.stdout


def test_a_shape_fit_at_its_bound_is_flagged_without_a_standard_error():
    from tea_verl.metrics.curves import fit_scaling_law, prompt_curves

    rng = np.random.default_rng(8)
    # Q(u) = 1 - (1-u)^3: a hard ceiling approached steeply, xi = -3, below the range [-2, 0.5]
    rows = [prompt_curves(1.0 - (1.0 - rng.random(64)) ** 3)[0] for _ in range(100)]
    fit = fit_scaling_law(np.mean(rows, 0), prompt_rows=rows)
    assert fit.xi == pytest.approx(-2.0) and fit.xi_at_bound == "lower" and fit.xi_se is None
    # a law inside the range: no flag, a standard error
    rows = [prompt_curves(rng.normal(size=64))[0] for _ in range(100)]
    fit = fit_scaling_law(np.mean(rows, 0), prompt_rows=rows)
    assert fit.xi_at_bound is None and fit.xi_se is not None and -2.0 < fit.xi < 0.5
