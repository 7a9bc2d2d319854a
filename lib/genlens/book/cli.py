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
    book.add_argument("--strict", action="store_true", help="fail on any Sphinx warning (as `make test` does)")
    check = sub.add_parser("validate", help="compare re-executed results with the committed ones, within tolerances")
    check.add_argument("rerun", help="folder of re-executed results (<chapter>.json)")
    check.add_argument("--profile", default="quick", help="the committed profile to compare with (book/results/<profile>)")
    return parser


def _validate(rerun: str, profile: str) -> int:
    """Print one line per chapter (and per disagreement); 1 if any chapter disagrees."""
    import json

    from . import validate

    committed = runner.repo_root() / "book" / "results" / profile
    if not committed.is_dir():
        raise runner.RunError(f"no committed results for profile {profile!r} ({committed})")
    results = validate.compare_dirs(committed, rerun)
    for chapter, problems in results.items():
        if problems:
            print(f"genlens validate: {chapter}: {len(problems)} disagreement(s)")
            for line in problems:
                print(f"  {line}")
        else:
            print(f"genlens validate: {chapter}: "
                  f"{validate.summary(json.loads((committed / f'{chapter}.json').read_text()))}")
    return 1 if any(results.values()) or not results else 0


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
        elif args.command == "validate":
            return _validate(args.rerun, args.profile)
        elif args.command == "book":
            root = runner.repo_root()
            if not args.no_run:
                for chapter in runner.available(root):
                    runner.run(chapter, "quick", root=root)
            print(f"genlens: book at {runner.build_html(root, strict=args.strict)}")
    except runner.RunError as err:
        print(f"genlens: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("genlens: interrupted; finished work is kept (cache, committed notebooks)", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
