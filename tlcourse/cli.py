"""The ``tlcourse`` command: ``doctor``, ``download`` and ``run``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import tlcourse


def _doctor(_: argparse.Namespace) -> int:
    from tlcourse import doctor

    return doctor.main()


def _download(args: argparse.Namespace) -> int:
    from tlcourse import data

    names = args.names or [name for name in data.list_datasets() if data.DATASETS[name].needs_download]
    failed = 0
    for name in names:
        try:
            path = data.download(name, root=args.root)
            print(f"{name}: ready in {path}")
        except (data.DatasetNotAvailableError, data.UnknownDatasetError) as exc:
            print(f"{name}: {exc}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


def _run(args: argparse.Namespace) -> int:
    from tlcourse import lessons

    try:
        chosen = lessons.select_lessons(lessons.list_lessons(args.notebooks), args.lessons)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    output = Path(args.output or Path("runs") / ("smoke" if args.smoke else "full"))
    mode = "smoke" if args.smoke else "full"
    print(f"Running {len(chosen)} lesson(s) in {mode} mode; executed notebooks go to {output}/", flush=True)
    runs = []
    for lesson in chosen:
        print(f"  {lesson.id} ...", end=" ", flush=True)
        run = lessons.run_lesson(lesson, output, smoke=args.smoke, seed=args.seed, device=args.device, timeout=args.timeout)
        print(f"{'ok' if run.ok else 'FAILED'} ({run.seconds:.1f} s)", flush=True)
        if not run.ok:
            print(f"    {run.error}\n    see {run.output_notebook}", file=sys.stderr)
        runs.append(run)
    json_path, md_path = lessons.save_report(runs, output)
    print()
    print(lessons.results_table(runs))
    print(f"\nSaved {json_path} and {md_path}")
    return 0 if all(run.ok for run in runs) else 1


def _assignments(args: argparse.Namespace) -> int:
    from tlcourse import grading

    root = Path(args.root)
    try:
        names = args.names or None
        if args.action == "generate":
            for folder in grading.generate_assignments(root, names):
                print(f"generated {folder}")
            return 0
        result = grading.check_assignments(root, names)
    except (FileNotFoundError, grading.GenerationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if result.ok:
        print(f"assignments/ matches a fresh generation from solutions/ ({', '.join(result.assignments)})")
        return 0
    print("assignments/ differs from a fresh generation; run `tlcourse assignments generate`:", file=sys.stderr)
    for line in result.differences:
        print(f"  {line}", file=sys.stderr)
    return 1


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``tlcourse`` command."""
    parser = argparse.ArgumentParser(prog="tlcourse", description="Transfer-learning course: check, prefetch, run lessons.")
    parser.add_argument("--version", action="version", version=f"tlcourse {tlcourse.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    doctor = sub.add_parser("doctor", help="check the install: versions, device, data, weights, kernel")
    doctor.set_defaults(handler=_doctor)

    download = sub.add_parser("download", help="prefetch datasets for offline use (all downloadable ones by default)")
    download.add_argument("names", nargs="*", metavar="NAME", help="dataset names (see `tlcourse doctor`)")
    download.add_argument("--root", default=None, help="data root (default: $TLCOURSE_DATA or the user cache)")
    download.set_defaults(handler=_download)

    run = sub.add_parser("run", help="execute lessons headless with papermill and print their results")
    run.add_argument("lessons", nargs="*", metavar="LESSON", help="numbers or names, e.g. 01 or lenet (default: all)")
    run.add_argument("--smoke", action="store_true", help="fast mode: small data, few epochs (about a minute a lesson)")
    run.add_argument("--output", default=None, help="folder for executed notebooks and results (default: runs/<mode>)")
    run.add_argument("--device", default="auto", help='"auto", "cpu", "cuda", "cuda:1" or "mps"')
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--notebooks", default=None, help="lessons folder (default: ./notebooks)")
    run.add_argument("--timeout", type=int, default=None, help="seconds allowed per cell")
    run.set_defaults(handler=_run)

    assignments = sub.add_parser("assignments", help="graded assignments: generate student versions, check them")
    assignments.add_argument("action", choices=["generate", "check"], help="generate: solutions/ -> assignments/; check: compare")
    assignments.add_argument("names", nargs="*", metavar="ASSIGNMENT", help="e.g. a01_lenet (default: all)")
    assignments.add_argument("--root", default=".", help="course root holding nbgrader_config.py (default: .)")
    assignments.set_defaults(handler=_assignments)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
