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
    args, rest = parser.parse_known_args(argv)
    if args.cmd == "config-dir":
        print(CONFIG_DIR)
        return 0
    if args.cmd == "demo":
        from benchmarks import bandit

        return bandit.main(rest)
    return 2


if __name__ == "__main__":
    sys.exit(main())
