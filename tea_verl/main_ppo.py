"""Kept path: ``python -m tea_verl.main_ppo`` (verl's PPO entry point with best-of-N validation
metrics). The entry point is :mod:`tea_verl.integrations.verl.main_ppo`."""

from tea_verl.integrations.verl.main_ppo import main

__all__ = ["main"]

if __name__ == "__main__":
    main()
