"""What every framework's glue shares: one call from a framework's flat rewards to the credit.

:func:`grouped_credit` takes one outcome reward per sample and each sample's prompt group, and
calls the estimators' front door (:func:`tea_verl.estimators.best_of_n_credit`). verl's glue calls
the front door directly (verl never hands it an unscorable sample); the TRL and OpenRLHF adapters
call this, which also handles what those frameworks can hand over: NaN rewards for samples no
reward function could score. Those get zero credit, are left out of their group (so they shift
neither the tail fit nor the others' credit), and are counted (``tea/unscorable``). Under ``bon``
a group left with fewer than N scored samples gets the exact best-of-m credit of the m it has
(``tea/short_groups``), rather than stopping the run.
"""

from __future__ import annotations

import torch

from tea_verl.config import TeaConfig
from tea_verl.estimators import ESTIMATORS, CreditInfo, best_of_n_credit

__all__ = ["grouped_credit", "contiguous_groups"]


ADAPTER_METRICS = ("tea/unscorable", "tea/short_groups")
"""The adapters' own step metrics beside :meth:`CreditInfo.metrics`: completions without a score,
and, under ``bon``, groups left with fewer than N scored completions (docs/configuration.md)."""

def contiguous_groups(batch: int, group_size: int, device=None) -> torch.Tensor:
    """Group ids of a batch laid out prompt by prompt: ``group_size`` samples of prompt 0, then of
    prompt 1, ... (TRL's and OpenRLHF's layout)."""
    if group_size < 1 or batch % group_size:
        raise ValueError(f"a batch of {batch} samples is not a whole number of groups of {group_size} "
                         "(samples per prompt); every prompt needs all its samples in one batch")
    return torch.arange(batch, device=device) // group_size


def grouped_credit(rewards: torch.Tensor, group_ids: torch.Tensor, estimator: str, config: TeaConfig, *,
                   norm_by_std: bool = True) -> tuple[torch.Tensor, CreditInfo, dict[str, float]]:
    """Per-sample best-of-N credit of a flat batch whose rewards may hold NaN (unscorable).

    Returns the credit (zero for unscorable samples), the front door's diagnostics, and the
    ``tea/*`` step metrics, ``tea/unscorable`` (samples with a NaN reward) included."""
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown best-of-N estimator {estimator!r}; choose one of {', '.join(ESTIMATORS)}")
    if rewards.dim() != 1 or group_ids.shape != rewards.shape:
        raise ValueError(f"rewards and group ids must both be (batch,); got {tuple(rewards.shape)} and {tuple(group_ids.shape)}")
    if torch.isinf(rewards).any():
        raise ValueError(f"{int(torch.isinf(rewards).sum())} reward(s) are infinite: a reward must be a finite "
                         "number, or NaN for a sample that could not be scored (it then gets zero credit)")
    scored = ~torch.isnan(rewards)
    credit = torch.zeros_like(rewards)
    if scored.any():
        _, ids = torch.unique(group_ids[scored], return_inverse=True)
        part, info = best_of_n_credit(rewards[scored], ids, estimator, config, norm_by_std=norm_by_std,
                                      short_bon_groups=True)
        credit[scored] = part.to(credit.dtype)
        sizes = torch.bincount(ids)
        short = int(((sizes > 1) & (sizes < config.N)).sum()) if estimator == "bon" else 0
    else:
        info, short = CreditInfo(xi=float("nan"), shape_r2=float("nan"), num_singletons=0), 0
    metrics = info.metrics(estimator)
    metrics.update(zip(ADAPTER_METRICS, (float((~scored).sum()), float(short))))
    return credit, info, metrics
