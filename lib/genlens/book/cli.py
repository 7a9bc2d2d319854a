"""The `genlens` command: list chapters, run one, build the whole book, export notebooks to hand out."""
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
    run.add_argument("--profile", default="quick", help="quick (CPU, minutes), gpu (one GPU, the book in 10 minutes) "
                     "or full (the papers' settings)")
    run.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                     help="override a parameter of the chapter's parameters cell (repeatable)")
    book = sub.add_parser("book", help="run every chapter (quick) and build the HTML book; with --profile, run a "
                          "profile's chapters past any failure")
    book.add_argument("--profile", default=None, help="run every chapter in this profile (gpu, full) into "
                      "book/results/<profile>/, keep going past a failing chapter, build no HTML")
    book.add_argument("--data", action="append", default=[], metavar="NAME=SPEC",
                      help="where a chapter's profile uses data set NAME, use SPEC (e.g. cifar10=imagefolder:/x.zip)")
    book.add_argument("--smoke", action="store_true", help="every setting shrunk (the chapters' smoke parameter): "
                      "the code path in a minute or two on a CPU, not the claims")
    book.add_argument("--jobs", type=int, default=1, help="chapters run at a time, each in its own process")
    book.add_argument("--chapters", nargs="*", default=None, help="only these chapters")
    book.add_argument("--no-run", action="store_true", help="only build the HTML from the executed chapters")
    book.add_argument("--strict", action="store_true", help="fail on any Sphinx warning (as `make test` does)")
    book.add_argument("--repository-url", default=None, metavar="URL",
                      help="build as if _config.yml's repository.url were URL (launch buttons on; '' for off)")
    install = sub.add_parser("install-cell", help="write the hidden install cell (Colab) into chapters' sources "
                             "and executed notebooks; idempotent")
    install.add_argument("chapters", nargs="*", help="chapter ids (default: every written chapter)")
    ranged = sub.add_parser("set-range", help="state a numeric parameter's range in a chapter's parameters cell "
                            "(source and executed notebook, text only); idempotent")
    ranged.add_argument("chapter", help="chapter id")
    ranged.add_argument("name", help="parameter name")
    ranged.add_argument("range", help="'>= 0', '> 0', '<= 1', 'in [0, 1]', 'in (0, 1]', ...")
    export = sub.add_parser("export", help="write every chapter as a notebook to hand out")
    which = export.add_mutually_exclusive_group(required=True)
    which.add_argument("--student", metavar="DIR", help="exercise solutions removed")
    which.add_argument("--teacher", metavar="DIR", help="exercise solutions kept")
    export.add_argument("chapters", nargs="*", help="chapter ids (default: every written chapter)")
    zoo = sub.add_parser("zoo", help="train and measure the model zoo (the zoo chapter) here or on a Ray cluster; "
                         "writes book/results/<profile>/zoo.csv and the executed chapter")
    zoo.add_argument("--profile", default="quick", help="quick (CPU, minutes), gpu or full")
    zoo.add_argument("--executor", default="local", choices=["local", "ray"], help="where the zoo's jobs run")
    zoo.add_argument("--address", default="", help="with --executor ray: the cluster's address (default: a local Ray)")
    zoo.add_argument("--workers", type=int, default=0, help="local worker processes (0: the profile's; 1: in the chapter's process)")
    zoo.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                     help="override another parameter of the zoo chapter (repeatable)")
    check = sub.add_parser("validate", help="compare re-executed results with the committed ones, within tolerances")
    check.add_argument("rerun", help="folder of re-executed results (<chapter>.json)")
    check.add_argument("--profile", default="quick", help="the committed profile to compare with (book/results/<profile>)")
    sub.add_parser("measure", add_help=False, help="measure a trained classifier with every lens (genlens measure --help)")
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
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["measure"]:  # its own parser: genlens.measure.main
        from ..measure import main as measure

        return measure(argv[1:])
    args = _parser().parse_args(argv)
    try:
        if args.command == "list":
            try:
                written = set(runner.available(runner.repo_root()))
            except runner.RunError:  # an installed package outside a checkout: list the chapters, no status
                written = set(runner.CHAPTERS)
            for c in runner.CHAPTERS.values():
                print(f"{c.id:<12} {c.title} ({c.paper}){'' if c.id in written else '  [not written yet]'}")
        elif args.command == "run":
            runner.run(args.chapter, args.profile, runner.parse_pairs(args.param))
        elif args.command == "zoo":
            overrides = {"executor": args.executor, "address": args.address, "workers": str(args.workers),
                         **runner.parse_pairs(args.param)}
            runner.run("zoo", args.profile, overrides)
        elif args.command == "validate":
            return _validate(args.rerun, args.profile)
        elif args.command == "book" and args.profile is not None:
            outcome = runner.run_book(args.profile, data=runner.parse_pairs(args.data), smoke=args.smoke,
                                      jobs=args.jobs, chapters=args.chapters)
            failed = [c for c, line in outcome.items() if not line.startswith("done")]
            print(f"genlens: book ({args.profile}): {len(outcome) - len(failed)} of {len(outcome)} chapters done"
                  + (f"; failed: {', '.join(failed)}" if failed else ""))
            return 1 if failed else 0
        elif args.command == "book":
            root = runner.repo_root()
            if not args.no_run:
                for chapter in runner.available(root):
                    runner.run(chapter, "quick", root=root)
            print(f"genlens: book at {runner.build_html(root, strict=args.strict, repository_url=args.repository_url)}")
        elif args.command == "install-cell":
            from .publish import ensure_install_cell

            root = runner.repo_root()
            for chapter in args.chapters or runner.available(root):
                changed = ensure_install_cell(chapter, root)
                print(f"genlens: {chapter}: " + (", ".join(str(p.relative_to(root)) for p in changed) or "up to date"))
        elif args.command == "set-range":
            from .publish import set_range

            root = runner.repo_root()
            changed = set_range(args.chapter, root, args.name, args.range)
            print(f"genlens: {args.chapter}: " + (", ".join(str(p.relative_to(root)) for p in changed) or "up to date"))
        elif args.command == "export":
            from .export import export

            root = runner.repo_root()
            student = args.student is not None
            folder = args.student if student else args.teacher
            for path in export(root, folder, student=student, chapters=args.chapters or None):
                print(f"genlens: wrote {path}")
    except runner.RunError as err:
        print(f"genlens: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("genlens: interrupted; finished work is kept (cache, committed notebooks)", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
