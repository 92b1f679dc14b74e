"""Hydra configs shipped with tea-verl (``pkg://tea_verl.conf``): ``tea_trainer.yaml``."""
