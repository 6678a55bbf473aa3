"""The numpy-gpt command line.  `numpy-gpt COMMAND --help` documents each command."""
from __future__ import annotations

import argparse
import sys


def _demo(args) -> int:
    from .demo import run
    run(out_dir=args.out, steps=args.steps, with_torch=not args.no_torch, seed=args.seed)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="numpy-gpt", description=__doc__)
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    p = sub.add_parser("demo", help="train tiny GPTs in numpy (and torch) and generate text")
    p.add_argument("--steps", type=int, default=500, help="training steps of the character model")
    p.add_argument("--out", default="out", help="folder for the pictures")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-torch", action="store_true", help="numpy only, even when torch is installed")
    p.set_defaults(func=_demo)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
