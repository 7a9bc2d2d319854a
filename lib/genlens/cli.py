"""The `genlens` command: list chapters, run one, or build the whole book."""
from __future__ import annotations

import argparse
import sys

from . import runner


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="genlens", description="Run the chapters of the genlens book.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="print the chapter ids with their titles")
    run = sub.add_parser("run", help="execute one chapter with papermill")
    run.add_argument("chapter", help="chapter id (see `genlens list`)")
    run.add_argument("--profile", default="quick", help="quick (CPU, minutes) or full (one GPU)")
    run.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                     help="override a parameter of the chapter's parameters cell (repeatable)")
    book = sub.add_parser("book", help="run every chapter (quick) and build the HTML book")
    book.add_argument("--no-run", action="store_true", help="only build the HTML from the executed chapters")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "list":
            root = runner.repo_root()
            written = set(runner.available(root))
            for c in runner.CHAPTERS.values():
                print(f"{c.id:<12} {c.title} ({c.paper}){'' if c.id in written else '  [not written yet]'}")
        elif args.command == "run":
            runner.run(args.chapter, args.profile, runner.parse_pairs(args.param))
        elif args.command == "book":
            root = runner.repo_root()
            if not args.no_run:
                for chapter in runner.available(root):
                    runner.run(chapter, "quick", root=root)
            print(f"genlens: book at {runner.build_html(root)}")
    except runner.RunError as err:
        print(f"genlens: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("genlens: interrupted; finished work is kept (cache, committed notebooks)", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
