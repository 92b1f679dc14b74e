"""``tea-verl`` command line."""

from __future__ import annotations

import argparse
import sys

from tea_verl import CONFIG_DIR, __version__


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tea-verl", description=__doc__)
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("config-dir", help="print the directory of tea_trainer.yaml (for --config-path)")
    # every demo option (--quick, --seeds, --budgets, ...) belongs to the bandit benchmark; forward
    # them all, --help included
    sub.add_parser("demo", add_help=False, help="the mismatch bandit on CPU: every estimator vs the N-rollout oracle")
    rep = sub.add_parser(
        "bon-report",
        help="best-of-k / selected-gold curves, scaling-law fit and extrapolation from validation samples",
        description="Read a verl validation dump (trainer.validation_data_dir or one of its files) or a "
        "JSONL/Parquet table of uid, score[, gold_score, data_source]; print the tables and write "
        "bon_report.csv, bon_report.json and bon_report.png.",
    )
    rep.add_argument("path", help="validation_data_dir, <step>.jsonl, or a .jsonl/.parquet table")
    rep.add_argument("--out", default=None, help="output directory (default: bon_report/ beside PATH)")
    rep.add_argument("--step", type=int, default=None, help="with a directory: the step to read (default: newest)")
    rep.add_argument("--extrapolate", default="128,256,512,1024", help="comma-separated N' to extrapolate to (those above the sampled n)")
    rep.add_argument("--shape", default="fit", help="tail shape xi of the law: 'fit' (default) or a number < 1")
    rep.add_argument("--no-plot", action="store_true", help="skip the PNG")
    args, rest = parser.parse_known_args(argv)
    if args.cmd == "bon-report":
        if rest:
            parser.error(f"unrecognised arguments: {' '.join(rest)}")
        return _bon_report(args)
    if args.cmd == "config-dir":
        print(CONFIG_DIR)
        return 0
    if args.cmd == "demo":
        from benchmarks import bandit

        return bandit.main(rest)
    return 2


def _bon_report(args) -> int:
    import os

    from tea_verl.report import ReportError, analyse, format_report, read_samples, write_report

    try:
        extrapolate = tuple(int(x) for x in args.extrapolate.split(",") if x.strip())
    except ValueError:
        print(f"error: --extrapolate takes comma-separated integers, got {args.extrapolate!r}", file=sys.stderr)
        return 2
    try:
        shape = None if args.shape == "fit" else float(args.shape)
    except ValueError:
        print(f"error: --shape is 'fit' or a number < 1, got {args.shape!r}", file=sys.stderr)
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
    paths = write_report(report, out, plot=not args.no_plot)
    print("\nwrote " + ", ".join(paths.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
