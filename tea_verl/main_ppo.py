"""Kept path: ``python -m tea_verl.main_ppo`` (verl's PPO entry point with best-of-N validation
metrics). The entry point is :mod:`tea_verl.integrations.verl.main_ppo`."""

from tea_verl import VERL_PACKAGES

try:
    from tea_verl.integrations.verl.main_ppo import main
except ModuleNotFoundError as exc:  # only the core is installed (the TRL / OpenRLHF adapters)
    if __name__ == "__main__" and (exc.name or "").split(".")[0] in VERL_PACKAGES:
        raise SystemExit(f"error: python -m tea_verl.main_ppo runs verl, which is not installed here ({exc}): "
                         "pip install 'tea-verl[verl]'") from None
    raise

__all__ = ["main"]

if __name__ == "__main__":
    main()
