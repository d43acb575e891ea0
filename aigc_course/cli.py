"""The command line: ``aigc-course`` (also ``python -m aigc_course``).

* ``aigc-course data NAME`` -- print the data card of a dataset (``--list`` lists them).
* ``aigc-course judge [--epochs E] [--seed S] [--out PATH]`` -- retrain the digits judge
  (by default overwriting the shipped checkpoint).

Later chapters add ``train`` and ``sample`` here. argparse lives only at this edge;
each command calls a plain function of the package.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path


def _data(args: argparse.Namespace) -> int:
    from aigc_course.data import available
    from aigc_course.data.card import make_data_card

    if args.list or args.name is None:
        print("\n".join(available()))
        return 0
    if args.name not in available():
        print(f"error: unknown dataset {args.name!r}; valid: {', '.join(available())}",
              file=sys.stderr)
        return 2
    card = make_data_card(args.name)
    print(json.dumps(card.to_dict(), indent=1) if args.json else card.to_markdown())
    return 0


def _judge(args: argparse.Namespace) -> int:
    from aigc_course.judge import retrain

    metrics = retrain(out=args.out, epochs=args.epochs, seed=args.seed)
    print(json.dumps(metrics, indent=1))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``aigc-course`` argument parser; chapters add sub-commands here."""
    parser = argparse.ArgumentParser(
        prog="aigc-course", description="Tools of the course 'Generative AI: from data to "
        "business value'.")
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="print a dataset's data card")
    data.add_argument("name", nargs="?", help="dataset name (see --list)")
    data.add_argument("--list", action="store_true", help="list the dataset names")
    data.add_argument("--json", action="store_true", help="print the card as JSON")
    data.set_defaults(func=_data)

    judge = sub.add_parser("judge", help="retrain the digits judge")
    judge.add_argument("--epochs", type=int, default=40)
    judge.add_argument("--seed", type=int, default=0)
    judge.add_argument("--out", type=Path, default=None,
                       help="where to save (default: the shipped checkpoint)")
    judge.set_defaults(func=_judge)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except BrokenPipeError:  # `aigc-course data digits | head` closed the pipe: not an error
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
