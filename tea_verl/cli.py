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
    demo = sub.add_parser("demo", help="the mismatch bandit on CPU: every estimator vs the N-rollout oracle")
    demo.add_argument("--quick", action="store_true", help="a small run (seconds), for tests")
    demo.add_argument("--seeds", type=int, default=None, help="number of seeds (default 3; 1 with --quick)")
    args, rest = parser.parse_known_args(argv)
    if args.cmd == "config-dir":
        print(CONFIG_DIR)
        return 0
    if args.cmd == "demo":
        from benchmarks import bandit

        extra = ["--quick"] if args.quick else []
        if args.seeds is not None:
            extra += ["--seeds", str(args.seeds)]
        return bandit.main(extra + rest)
    return 2


if __name__ == "__main__":
    sys.exit(main())
