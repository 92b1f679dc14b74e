"""tea-verl: best-of-N post-training for verl.

The command line (``tea-verl``): argument parsing and printing; the work is done by the packages
below it (experiments, launch, integrations, metrics).

  demo        the mismatch bandit on CPU (the main job): every estimator against the N-rollout oracle;
              demo --lm: a tiny language model trained through verl's real trainer on the CPU
  diagnose    your reward samples: tail shape, scaling-law check, estimator quality, a recommendation
  bon-report  best-of-k and selected-gold curves, the scaling-law fit and its extrapolation
  smoke       a real verl launch on the CPU with a tiny model: check a config before GPU hours
  preflight   compose a trainer config and check it before any GPU work
  openrlhf    OpenRLHF's PPO trainer with the best-of-N estimators (needs OpenRLHF installed)
  config-dir  the directory of tea_trainer.yaml (for verl's --config-path)
"""

from __future__ import annotations

import argparse
import sys

from tea_verl import CONFIG_DIR, VERL_PACKAGES, __version__
from tea_verl.config import BEST_OF_N_DEFAULTS
from tea_verl.launch.common import quiet_verl


def _add_input_args(parser) -> None:
    """The scored-samples input that diagnose and bon-report share (tea_verl.metrics.samples.read_samples)."""
    parser.add_argument("path", help="validation_data_dir, <step>.jsonl, or a .jsonl/.parquet table (uid, score)")
    parser.add_argument("--step", type=int, default=None, help="with a directory: the step to read (default: newest)")


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except ModuleNotFoundError as exc:  # a command that runs verl, where only the core is installed
        if (exc.name or "").split(".")[0] not in VERL_PACKAGES:
            raise
        print(f"error: this command runs verl, which is not installed in this environment ({exc}): "
              "pip install 'tea-verl[verl]'", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    """The ``tea-verl`` parser: the subcommands parsed here (diagnose, bon-report, preflight) and
    those that forward their own options (demo, smoke, openrlhf)."""
    parser = argparse.ArgumentParser(prog="tea-verl", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("config-dir", help="print the directory of tea_trainer.yaml (for --config-path)")
    # every demo option (--quick, --m, --N, --steps, ...) belongs to tea_verl.experiments.bandit (with
    # --lm: tea_verl.experiments.lm); forward them all, --help included
    sub.add_parser("demo", add_help=False,
                   help="the mismatch bandit on CPU: every estimator vs the N-rollout oracle, with a plot; --lm: a tiny LM through verl's trainer")
    sub.add_parser("smoke", add_help=False, help="a real verl launch on the CPU with a tiny model, a few steps: check a config before GPU hours")
    sub.add_parser("openrlhf", add_help=False,
                   help="OpenRLHF's PPO trainer (train_ppo_ray) with the best-of-N estimators: --algo.advantage.estimator tea --tea.N 64 ...")
    _diagnose_parser(sub)
    _bon_report_parser(sub)
    _preflight_parser(sub)
    return parser


def _diagnose_parser(sub) -> None:
    dg = sub.add_parser(
        "diagnose",
        help="is your reward tail in the regime the estimators assume? which estimator and settings to use",
        description="Read many scored samples per prompt (a verl validation dump or a JSONL/Parquet table of uid and "
        "score), estimate the tail shape, check the scaling law, measure each estimator's SVR and rho on your "
        "empirical reward law for your (m, N), and recommend settings.",
    )
    _add_input_args(dg)
    dg.add_argument("--m", type=int, required=True, help="rollouts per prompt in training (actor_rollout_ref.rollout.n)")
    dg.add_argument("--N", type=int, required=True, help="deployment best-of-N (algorithm.tea.N)")
    dg.add_argument("--batch-prompts", type=int, default=128,
                    help="prompts per training batch (data.train_batch_size; default 128), for the predicted fallback rate")
    dg.add_argument("--min-samples", type=int, default=8, help="least samples per prompt to use it (default 8)")
    dg.add_argument("--draws", type=int, default=100_000, help="rewards per SVR/rho evaluation (default 100000)")
    dg.add_argument("--seed", type=int, default=0)
    dg.add_argument("--json", default=None, help="also write the diagnosis as JSON to this file")


def _bon_report_parser(sub) -> None:
    rep = sub.add_parser(
        "bon-report",
        help="best-of-k / selected-gold curves, scaling-law fit and extrapolation from validation samples",
        description="Read a verl validation dump (trainer.validation_data_dir or one of its files) or a "
        "JSONL/Parquet table of uid, score[, gold_score, data_source]; print the tables and write "
        "bon_report.csv, bon_report.json and bon_report.png.",
    )
    _add_input_args(rep)
    rep.add_argument("--out", default=None, help="output directory (default: bon_report/ beside PATH)")
    rep.add_argument("--extrapolate", default=",".join(map(str, BEST_OF_N_DEFAULTS.extrapolate_to)),
                     help="comma-separated N' to extrapolate to (those above the sampled n; default reward.best_of_n.extrapolate_to's)")
    rep.add_argument("--shape", default="fit", help="tail shape xi of the law: 'fit' (default) or a number < 1")
    rep.add_argument("--no-plot", action="store_true", help="skip the PNG")


def _preflight_parser(sub) -> None:
    pf = sub.add_parser(
        "preflight",
        help="compose a trainer config and check it before any GPU work (the recipes' dry run)",
        description="Compose a Hydra config (default: tea_trainer) with overrides, optionally print it, and report "
        "every setting that would fail late or silently. Exit status 1 when problems are found.",
    )
    pf.add_argument("--config-path", default=None, help="config directory (default: the tea_trainer config dir)")
    pf.add_argument("--config-name", default="tea_trainer")
    pf.add_argument("--print-config", action="store_true", help="print the fully composed config first")
    pf.add_argument("--save-config", default=None, metavar="FILE", help="write the fully composed config to FILE")
    pf.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. algorithm.tea.N=64")


def _main(argv: list[str] | None = None) -> int:
    quiet_verl()
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.cmd == "preflight":
        if rest:
            parser.error(f"unrecognised arguments: {' '.join(rest)}")
        return _preflight(args)
    if args.cmd == "bon-report":
        if rest:
            parser.error(f"unrecognised arguments: {' '.join(rest)}")
        return _bon_report(args)
    if args.cmd == "config-dir":
        print(CONFIG_DIR)
        return 0
    if args.cmd == "demo":
        if "--lm" in rest:  # the tiny language model through verl's trainer, with its own options
            from tea_verl.experiments import lm

            return lm.main([a for a in rest if a != "--lm"], prog="tea-verl demo --lm")
        from tea_verl.experiments import bandit

        return bandit.main(rest)
    if args.cmd == "smoke":
        from tea_verl.launch import smoke

        return smoke.main(rest)
    if args.cmd == "openrlhf":
        from tea_verl.integrations.openrlhf import launch

        return launch.main(rest)
    if rest:
        parser.error(f"unrecognised arguments: {' '.join(rest)}")
    if args.cmd == "diagnose":
        return _diagnose(args)
    return 2


def _preflight(args) -> int:
    import os

    from omegaconf import OmegaConf

    from tea_verl.integrations.verl.preflight import ComposeError, advice, check, compose

    config_dir = os.path.abspath(args.config_path or CONFIG_DIR)
    try:
        cfg = compose(config_dir, args.config_name, args.overrides)
    except ComposeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.print_config or args.save_config:
        try:
            text = OmegaConf.to_yaml(cfg, resolve=True)
        except Exception:  # noqa: BLE001 - an interpolation that needs runtime values: print it unresolved
            text = OmegaConf.to_yaml(cfg)
        if args.print_config:
            print(text)
        if args.save_config:
            try:
                os.makedirs(os.path.dirname(os.path.abspath(args.save_config)), exist_ok=True)
                with open(args.save_config, "w") as f:
                    f.write(text)
            except OSError as exc:
                print(f"error: cannot write {args.save_config}: {exc.strerror or exc}", file=sys.stderr)
                return 2
            print(f"composed config: {args.save_config} ({text.count(chr(10))} lines)")
    from tea_verl.integrations.verl import plugin, private

    print(f"plugin: verl {private.verl_version()}, tea-verl loaded by {plugin.LOADED_BY}")
    for feature in ("validation", "cpu"):
        line = private.unavailable(feature)
        if line:
            print(f"note: {line}")
    problems = check(cfg)
    if problems:
        print(f"preflight: FAILED, {len(problems)} problem(s):")
        for p in problems:
            print(f"  - {p}")
        return 1
    est = cfg.algorithm.adv_estimator
    for note in advice(cfg):
        print(f"note: {note}")
    print(f"preflight: OK ({est}, rollout.n = {cfg.actor_rollout_ref.rollout.n}, "
          f"N = {OmegaConf.select(cfg, 'algorithm.tea.N')}, val_kwargs.n = {cfg.actor_rollout_ref.rollout.val_kwargs.n})")
    return 0


def _diagnose(args) -> int:
    import json

    from tea_verl.metrics.diagnose import DiagnoseError, check_arguments, diagnose, format_diagnosis
    from tea_verl.metrics.samples import ReportError, read_samples

    def progress(i, total, label):
        print(f"  measuring SVR and rho [{i + 1}/{total}]: {label}", file=sys.stderr, flush=True)

    try:  # arguments and data first: bad input is rejected before torch and verl load
        check_arguments(args.m, args.N, args.min_samples, args.batch_prompts)
        samples = read_samples(args.path, step=args.step)
        import verl  # noqa: F401  (the plugin registers the estimators measured here)

        d = diagnose(samples, args.m, args.N, min_samples=args.min_samples, batch_prompts=args.batch_prompts,
                     draws=args.draws, seed=args.seed,
                     progress=progress)
    except (ReportError, DiagnoseError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(format_diagnosis(d))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(d.as_dict(), f, indent=1)
    return 0


def _bon_report(args) -> int:
    import os

    from tea_verl.metrics.report import analyse, format_report, write_report
    from tea_verl.metrics.samples import ReportError, read_samples

    try:
        extrapolate = tuple(int(x) for x in args.extrapolate.split(",") if x.strip())
    except ValueError:
        print(f"error: --extrapolate takes comma-separated integers, got {args.extrapolate!r}", file=sys.stderr)
        return 2
    try:
        shape = None if args.shape == "fit" else float(args.shape)
    except ValueError:
        shape = float("nan")
    if shape is not None and not -2.0 <= shape < 1.0:
        print(f"error: --shape is 'fit' or a number in [-2, 1) (xi >= 1 has no finite mean), got {args.shape!r}", file=sys.stderr)
        return 2
    try:
        samples = read_samples(args.path, step=args.step)
        report = analyse(samples, extrapolate_to=extrapolate, shape=shape)
    except ReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(format_report(report))
    base = args.path if os.path.isdir(args.path) else os.path.dirname(os.path.abspath(args.path))
    out = args.out or os.path.join(base, "bon_report")
    try:
        paths = write_report(report, out, plot=not args.no_plot)
    except OSError as exc:
        print(f"error: cannot write the report to {out}: {exc.strerror or exc} (choose a writable --out directory)", file=sys.stderr)
        return 1
    print("\nwrote " + ", ".join(paths.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
