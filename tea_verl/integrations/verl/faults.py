"""The scoring-fault policy of the trainer: what happens to samples that could not be scored.

The ``best_of_n`` manager marks a sample it could not score after its retries (or whose scorer
raised) as *unscored*: reward NaN, ``bon_unscored`` true, ``bon_unscored_reason`` naming the sample
and the error. The trainer subclass of :mod:`.validation` applies this policy:

* **validation**: unscored samples are counted (``val-aux/{data_source}/unscored/share`` and
  ``/count``) and left out of every metric, verl's and the best-of-k ones: a prompt's exact
  best-of-k uses its scored samples (``k`` up to their number). When more than
  ``reward.best_of_n.max_unscored_share`` of the validation's samples are unscored, the trainer
  saves a checkpoint (the weights validated) and raises :class:`ScoringError`;
* **training**: a sample without a reward has no credit, so any unscored sample stops the step
  before its advantages are computed: the trainer saves a checkpoint of the last finished step and
  raises :class:`ScoringError`. ``trainer.resume_mode=auto`` resumes from it; the prompts of the
  stopped step are not retrained (verl's data-loader state was saved after they were drawn).

Nothing here waits: the manager bounds every request (``timeout_s``, ``max_retries``), so a dead
scorer reaches this policy within about ``max_retries x (timeout_s + backoff_max_s)``.
"""

from __future__ import annotations

import logging
import math
import os

from tea_verl.integrations.verl.reward_manager import ScoringError

logger = logging.getLogger("tea_verl")

__all__ = ["UNSCORED", "latest_checkpoint", "split_unscored", "stop", "training_unscored"]

UNSCORED = "bon_unscored"
REASON = "bon_unscored_reason"
REASONS_SHOWN = 3


def _flag(value) -> bool:
    return bool(value) and not (isinstance(value, float) and math.isnan(value))


def split_unscored(data_sources, sample_uids, infos: dict[str, list], sample_turns, expected_acc_counts=None):
    """The validation inputs verl hands ``_val_metrics_update`` without the unscored samples.

    Returns ``(data_sources, sample_uids, infos, sample_turns, expected_acc_counts, metrics, share,
    reasons)``: the kept samples, the ``unscored`` metrics per data source (present whenever the
    ``best_of_n`` manager scored), the unscored share of the whole validation and the first reasons.
    """
    flags = infos.get(UNSCORED)
    n = len(sample_uids)
    if flags is None or len(flags) != n or n == 0:
        return data_sources, sample_uids, infos, sample_turns, expected_acc_counts, {}, 0.0, []
    bad = [_flag(f) for f in flags]
    metrics: dict[str, float] = {}
    for ds in dict.fromkeys(str(d) for d in data_sources):
        idx = [i for i in range(n) if str(data_sources[i]) == ds]
        count = sum(bad[i] for i in idx)
        metrics[f"val-aux/{ds}/unscored/count"] = float(count)
        metrics[f"val-aux/{ds}/unscored/share"] = count / len(idx)
    keep = [i for i in range(n) if not bad[i]]
    reasons = list(dict.fromkeys(str(infos[REASON][i]) for i in range(n) if bad[i] and REASON in infos))[:REASONS_SHOWN]
    share = (n - len(keep)) / n
    infos = {k: [v[i] for i in keep] for k, v in infos.items() if k not in (UNSCORED, REASON)}
    if expected_acc_counts:
        expected_acc_counts = dict(expected_acc_counts)
        for i in range(n):
            key = (str(data_sources[i]), str(sample_uids[i]))
            if bad[i] and key in expected_acc_counts:  # left out, not counted as a failed session
                expected_acc_counts[key] -= 1
    turns = [sample_turns[i] for i in keep] if len(sample_turns) == n else sample_turns
    return ([data_sources[i] for i in keep], [sample_uids[i] for i in keep], infos, turns, expected_acc_counts, metrics,
            share, reasons)


def training_unscored(batch) -> tuple[int, int, list[str]]:
    """``(unscored, total, first reasons)`` of a training batch in verl's TransferQueue: the samples
    whose ``rm_scores`` hold a NaN (the ``best_of_n`` manager's mark)."""
    import torch
    import transfer_queue as tq

    data = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields=["rm_scores"])
    scores = data["rm_scores"]
    scores = scores.to_padded_tensor(0.0) if getattr(scores, "is_nested", False) else scores
    bad = torch.isnan(scores.reshape(scores.shape[0], -1)).any(dim=1)
    count = int(bad.sum())
    reasons: list[str] = []
    if count:
        try:
            extra = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields=["extra_fields"])
            for i in bad.nonzero().flatten().tolist()[:REASONS_SHOWN]:
                field = extra["extra_fields"][i]
                info = field.get("reward_extra_info", {}) if isinstance(field, dict) else {}
                reasons.append(str(info.get(REASON) or "no reason recorded"))
        except Exception as exc:  # noqa: BLE001 - the reasons are a courtesy; the count decides
            reasons.append(f"(the reasons could not be read: {type(exc).__name__}: {exc}; see the best_of_n warnings above)")
    return count, int(bad.numel()), reasons


def latest_checkpoint(directory: str) -> int | None:
    """The step of the latest checkpoint verl recorded in ``directory`` (its tracker file), or None."""
    from verl.utils.checkpoint.checkpoint_manager import get_checkpoint_tracker_filename

    try:
        with open(get_checkpoint_tracker_filename(directory)) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def save_before_stop(trainer, step: int) -> str:
    """Save verl's checkpoint of ``step`` (the weights after that many updates) unless it exists;
    a sentence saying where it is, for the error."""
    if step <= 0:
        return "no checkpoint saved: no step had finished (a rerun starts from the beginning)"
    where = os.path.join(str(trainer.config.trainer.default_local_dir), f"global_step_{step}")
    if latest_checkpoint(str(trainer.config.trainer.default_local_dir)) != step:
        held = trainer.global_steps
        trainer.global_steps = step
        try:
            trainer._save_checkpoint()
        finally:
            trainer.global_steps = held
    return f"checkpoint of step {step} saved in {where}; resume with trainer.resume_mode=auto"


def stop(trainer, *, step: int, what: str, reasons: list[str], fix: str) -> None:
    """Save the checkpoint of ``step`` and raise :class:`ScoringError` saying what happened."""
    try:
        saved = save_before_stop(trainer, step)
    except Exception as exc:  # noqa: BLE001 - the scoring error is the one to report
        saved = f"the checkpoint of step {step} could not be saved ({type(exc).__name__}: {exc})"
    shown = "; ".join(reasons) if reasons else "see the best_of_n warnings above"
    message = f"{what}. {saved}. First errors: {shown}. {fix}"
    logger.error(message)
    raise ScoringError(message)
