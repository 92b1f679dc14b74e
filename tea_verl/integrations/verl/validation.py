"""Best-of-N metrics in verl's own validation logging, through a thin task-runner subclass.

verl 0.9.1 has no hook for validation metrics: ``PPOTrainer._validate`` hands the scored samples
to ``PPOTrainer._val_metrics_update(data_sources, sample_uids, reward_extra_infos_dict,
sample_turns, expected_acc_counts)``, whose dict goes to verl's tracking (console, wandb,
tensorboard, ...). This module adds the best-of-N metrics there without copying the trainer loop:

* :func:`with_bon_validation` subclasses the trainer class verl selects
  (``trainer.v1.trainer_mode``) and extends ``_val_metrics_update``: verl's metrics, plus
  :func:`bon_validation_metrics`; and ``_compute_advantage``: verl's step metrics, plus the
  estimator's ``tea/*`` diagnostics (:func:`.advantage.step_metrics`).
* both apply the scoring-fault policy of :mod:`.faults`: unscored validation samples are counted
  and left out (the run stops above ``reward.best_of_n.max_unscored_share``), an unscored training
  sample stops the run; either stop saves a checkpoint first.
* :class:`TeaTaskRunner` is verl's ``TaskRunnerV1`` whose ``run`` builds that subclass instead;
  ``python -m tea_verl.main_ppo`` passes it to verl's public ``run_ppo(config, task_runner_class)``.

Metric names follow verl's ``{val-core|val-aux}/{data_source}/{variable}/{metric}``:

* ``val-aux/{ds}/{sel}/exact_best@{k}/mean`` and ``.../sem`` for k = 1, 2, 4, ..., n: the exact
  without-replacement best-of-k of the selection score (``sel`` = ``bon_selection_score`` when the
  ``best_of_n`` manager ran, else verl's ``reward``); at k = n under ``val-core``.
* ``val-aux/{ds}/bon_gold_score/selected@{k}/mean`` and ``/sem``: gold score of the response the
  selection score picks from k samples (only with gold scores); at k = n under ``val-core``.
* ``val-aux/{ds}/{sel}/law/{a,b,xi,xi_at_bound,r2,rmse,max_abs_z}``: the scaling-law fit
  (``xi_at_bound`` -1/+1 when a fitted xi is the lower/upper end of its search range, else 0)
  ``J_k = a + b Phi_xi(k)``; ``val-aux/{ds}/{sel}/law/extrapolated_best@{N'}/mean`` and ``/se``
  for each ``reward.best_of_n.extrapolate_to`` above n (always extrapolations: the name says so).
"""

from __future__ import annotations

import logging
import math

from tea_verl.config import BestOfNConfig
from tea_verl.integrations.verl import faults
from tea_verl.metrics.curves import log2_ks
from tea_verl.metrics.report import analyse
from tea_verl.metrics.samples import ReportError, samples_from_verl

logger = logging.getLogger("tea_verl")

__all__ = ["bon_validation_metrics", "with_bon_validation", "bon_trainers", "TeaTaskRunner"]  # noqa: F822 (lazy, below)


def bon_validation_metrics(data_sources, sample_uids, reward_extra_infos_dict, settings: BestOfNConfig | None = None) -> dict[str, float]:
    """The best-of-N validation metrics from the inputs verl gives ``_val_metrics_update``."""
    settings = settings or BestOfNConfig()
    if len(sample_uids) == 0:
        return {}
    sel = "bon_selection_score" if "bon_selection_score" in reward_extra_infos_dict else "reward"
    try:
        samples = samples_from_verl(list(data_sources), [str(u) for u in sample_uids], reward_extra_infos_dict)
    except ReportError as exc:
        logger.error("best-of-N validation metrics skipped: %s", exc)
        return {}
    report = analyse(
        samples,
        extrapolate_to=settings.extrapolate_to,
        shape=settings.fit_shape,
        shape_bounds=settings.shape_bounds,
        n_boot=100,
    )
    out: dict[str, float] = {}
    for ds, src in report.sources.items():
        s = src.summary
        n_max = int(s.ks[-1])
        for k in log2_ks(n_max):
            sec = "val-core" if k == n_max else "val-aux"
            out[f"{sec}/{ds}/{sel}/exact_best@{k}/mean"] = float(s.best_mean[k - 1])
            if math.isfinite(s.best_sem[k - 1]):
                out[f"{sec}/{ds}/{sel}/exact_best@{k}/sem"] = float(s.best_sem[k - 1])
        if s.gold_mean is not None:
            g_max = s.gold_mean.size
            for k in log2_ks(g_max):
                sec = "val-core" if k == g_max else "val-aux"
                out[f"{sec}/{ds}/bon_gold_score/selected@{k}/mean"] = float(s.gold_mean[k - 1])
                if math.isfinite(s.gold_sem[k - 1]):
                    out[f"{sec}/{ds}/bon_gold_score/selected@{k}/sem"] = float(s.gold_sem[k - 1])
        fit = src.fit
        if fit is None:
            logger.warning("best-of-N validation (%s): no scaling-law fit: %s", ds, src.fit_note)
            continue
        base = f"val-aux/{ds}/{sel}/law"
        out[f"{base}/a"] = fit.a
        out[f"{base}/b"] = fit.b
        out[f"{base}/xi"] = fit.xi
        if fit.xi_fitted:  # -1 / +1: the fit sits at the lower / upper end of reward.best_of_n.shape_bounds
            out[f"{base}/xi_at_bound"] = {"lower": -1.0, "upper": 1.0}.get(fit.xi_at_bound, 0.0)
        out[f"{base}/r2"] = fit.r2
        out[f"{base}/rmse"] = fit.rmse
        if fit.max_abs_z is not None:
            out[f"{base}/max_abs_z"] = fit.max_abs_z
        for n, v in fit.extrapolated.items():
            out[f"{base}/extrapolated_best@{n}/mean"] = v
            if n in fit.extrapolated_se:
                out[f"{base}/extrapolated_best@{n}/se"] = fit.extrapolated_se[n]
    return out


def with_bon_validation(trainer_cls: type) -> type:
    """A subclass of verl's trainer class whose validation metrics include the best-of-N ones."""
    if getattr(trainer_cls, "_tea_bon_validation", False):
        return trainer_cls

    class BestOfNValidation(trainer_cls):
        _tea_bon_validation = True

        def _val_metrics_update(self, data_sources, sample_uids, reward_extra_infos_dict, sample_turns, **kwargs):
            settings = BestOfNConfig.from_config(getattr(self, "config", None))
            (data_sources, sample_uids, reward_extra_infos_dict, sample_turns, expected, unscored, share,
             reasons) = faults.split_unscored(data_sources, sample_uids, reward_extra_infos_dict, sample_turns,
                                              kwargs.get("expected_acc_counts"))
            if share > settings.max_unscored_share:
                faults.stop(self, step=int(self.global_steps), reasons=reasons,
                            what=f"{share:.1%} of the validation's samples could not be scored (more than "
                                 f"reward.best_of_n.max_unscored_share = {settings.max_unscored_share:g})",
                            fix="Check the scorer, or raise reward.best_of_n.max_unscored_share, max_retries or timeout_s.")
            if "expected_acc_counts" in kwargs:
                kwargs["expected_acc_counts"] = expected
            metrics = super()._val_metrics_update(data_sources, sample_uids, reward_extra_infos_dict, sample_turns, **kwargs)
            metrics.update(unscored)
            metrics.update(bon_validation_metrics(data_sources, sample_uids, reward_extra_infos_dict, settings))
            return metrics

        def _compute_advantage(self, batch, metrics):
            count, total, reasons = faults.training_unscored(batch)
            if count:
                step = int(self.global_steps)
                faults.stop(self, step=step - 1, reasons=reasons,
                            what=f"step {step}: {count} of {total} training samples could not be scored; a sample "
                                 "without a reward has no credit, so the step is not taken",
                            fix="Check the scorer (reward.best_of_n.max_retries and timeout_s bound the wait).")
            out = super()._compute_advantage(batch, metrics=metrics)
            from tea_verl.integrations.verl.advantage import ESTIMATOR_FUNCTIONS, step_metrics

            est = str(self.config.algorithm.adv_estimator)
            if est in ESTIMATOR_FUNCTIONS and metrics is not None:
                metrics.update(step_metrics(est))  # the estimator ran in this process: its diagnostics
            return out

    BestOfNValidation.__name__ = BestOfNValidation.__qualname__ = f"BestOfNValidation{trainer_cls.__name__}"
    return BestOfNValidation


class bon_trainers:
    """Context manager: verl's trainer registry hands out :func:`with_bon_validation` subclasses.

    Used only inside :class:`TeaTaskRunner`'s own Ray actor process, around verl's ``run``; the
    registry is restored on exit.
    """

    def __enter__(self):
        from verl.trainer.ppo.v1.trainer_base import TRAINER_REGISTRY

        self._saved = dict(TRAINER_REGISTRY)
        for name, cls in self._saved.items():
            TRAINER_REGISTRY[name] = with_bon_validation(cls)
        return self

    def __exit__(self, *exc):
        from verl.trainer.ppo.v1.trainer_base import TRAINER_REGISTRY

        TRAINER_REGISTRY.clear()
        TRAINER_REGISTRY.update(self._saved)


def _task_runner_class():
    import ray
    from verl.trainer.main_ppo import TaskRunnerV1

    from tea_verl.integrations.verl import private

    private.require("validation")  # what this module overrides and subclasses

    base = TaskRunnerV1.__ray_actor_class__

    class TeaTaskRunnerImpl(base):
        """verl's TaskRunnerV1 with best-of-N validation metrics (see module docstring)."""

        def run(self, config):
            with bon_trainers():
                return super().run(config)

    return ray.remote(TeaTaskRunnerImpl), TeaTaskRunnerImpl


def __getattr__(name):
    if name in ("TeaTaskRunner", "TeaTaskRunnerImpl"):
        remote, impl = _task_runner_class()
        globals().update(TeaTaskRunner=remote, TeaTaskRunnerImpl=impl)
        return globals()[name]
    raise AttributeError(name)
