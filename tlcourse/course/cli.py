"""The ``tlcourse`` command: ``doctor``, ``download``, ``run``, ``site``, ``lessons``, ``assignments``, ``grade``, ``instructor``."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import tlcourse


def _doctor(args: argparse.Namespace) -> int:
    from tlcourse.course import doctor

    return doctor.main(freeze=args.freeze)


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
    from tlcourse.course import lessons
    from tlcourse.course.timing import last_run_seconds

    try:
        chosen = lessons.select_lessons(lessons.list_lessons(args.notebooks), args.lessons)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    output = Path(args.output) if args.output else lessons.default_runs(args.smoke)
    mode = "smoke" if args.smoke else "full"
    estimates = {lesson.id: last_run_seconds(output / lesson.path.name) for lesson in chosen}
    known = [e for e in estimates.values() if e is not None]
    expected = f"; the last run took {sum(known) / 60:.1f} min" if len(known) == len(chosen) else ""
    print(f"Running {len(chosen)} lesson(s) in {mode} mode{expected}; executed notebooks go to {output}/", flush=True)
    runs, start = [], time.perf_counter()
    for number, lesson in enumerate(chosen, start=1):
        last = estimates[lesson.id]
        bar = {"desc": f"[{number}/{len(chosen)}] {lesson.id}", "unit": "cell", "mininterval": 1.0,
               "postfix": f"last run {last:.0f} s" if last is not None else "first run"}  # fmt: skip
        run = lessons.run_lesson(lesson, output, smoke=args.smoke, seed=args.seed, device=args.device, timeout=args.timeout,
                                 progress=bar)  # fmt: skip
        print(f"  {lesson.id}: {'ok' if run.ok else 'FAILED'} in {run.seconds:.1f} s "
              f"({time.perf_counter() - start:.0f} s elapsed)", flush=True)  # fmt: skip
        if not run.ok:
            print(f"    {run.error}\n    see {run.output_notebook}", file=sys.stderr)
        runs.append(run)
    json_path, md_path = lessons.save_report(runs, output)
    print()
    print(lessons.results_table(runs))
    print(f"\n{len(runs)} lesson(s) in {sum(r.seconds for r in runs) / 60:.1f} min. Saved {json_path} and {md_path}; "
          f"each lesson's cell timings in {output}/<lesson>.cells.json")  # fmt: skip
    return 0 if all(run.ok for run in runs) else 1


def _site(args: argparse.Namespace) -> int:
    from tlcourse.course import site

    try:
        built = site.build_site(output=args.output, runs=args.runs, smoke=args.smoke, run_missing=args.run_missing,
                                notebooks=args.notebooks, device=args.device)  # fmt: skip
    except (FileNotFoundError, site.SiteError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for warning in built.warnings:
        print(f"sphinx: {warning}", file=sys.stderr)
    print(f"Built the course website ({len(built.lessons)} lessons) in {built.seconds:.1f} s: {built.index}")
    print(f"Open {built.index.as_uri()} in a browser, or publish the folder {built.index.parent} on any static host.")
    return 0


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


def _grade(args: argparse.Namespace) -> int:
    from nbgrader.api import Gradebook, MissingEntry

    from tlcourse.grading import grade
    from tlcourse.grading.assignments import CONFIG_FILE, course_config
    from tlcourse.grading.config import COURSE_ID
    from tlcourse.grading.sandbox import sandbox_problem

    root = Path(args.root).resolve()
    if not (root / CONFIG_FILE).is_file():
        print(f"error: no {CONFIG_FILE} in {root}: run this from the course folder (or pass --root)", file=sys.stderr)
        return 2
    if not args.unsandboxed:
        problem = sandbox_problem()
        if problem:
            print(f"error: refusing to grade without a sandbox: {problem}", file=sys.stderr)
            return 2
    with Gradebook(grade.gradebook_url(course_config(root)), course_id=COURSE_ID) as gb:
        try:
            gb.find_assignment(args.assignment)
        except MissingEntry:
            known = ", ".join(a.name for a in gb.assignments) or "none"
            print(
                f"error: {args.assignment} is not in the gradebook of {root} (recorded: {known}); record it once with "
                f"`nbgrader generate_assignment {args.assignment} --force`",
                file=sys.stderr,
            )
            return 2
    students = args.students or grade.list_submissions(root, args.assignment)
    if not students:
        print(f"error: no submissions in {root / 'submitted'}/*/{args.assignment}/", file=sys.stderr)
        return 2
    limits: dict[str, object] = {"unsandboxed": True} if args.unsandboxed else {}
    for flag, trait in (("memory", "memory_limit"), ("processes", "process_limit"), ("notebook_timeout", "notebook_timeout"), ("timeout", "timeout")):
        if getattr(args, flag) is not None:
            limits[trait] = getattr(args, flag)
    jobs = args.jobs or os.cpu_count() or 1
    print(f"Grading {len(students)} submission(s) of {args.assignment} with {jobs} worker(s), "
          f"{'WITHOUT the sandbox' if args.unsandboxed else 'each in the sandbox'}", flush=True)
    outcomes = grade.grade_class(root, args.assignment, students, jobs=jobs, overrides={"SandboxedExecute": limits}, progress=not args.quiet)
    print()
    print(grade.summary_table(outcomes))
    failed = [o.student for o in outcomes if not o.graded]
    if failed:
        print(f"\n{len(failed)} submission(s) could not be graded: {', '.join(failed)} (rerun with --student-log for nbgrader's log)", file=sys.stderr)
        if args.student_log:
            for o in outcomes:
                if not o.graded:
                    print(f"\n===== {o.student} =====\n{o.log[-5000:]}", file=sys.stderr)
        return 1
    return 0


def _instructor(args: argparse.Namespace) -> int:
    from tlcourse.grading.instructor import init_private_course

    try:
        course = init_private_course(args.folder, args.root, args.term_seed)
    except (ValueError, FileExistsError, FileNotFoundError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"Private grading folder ready: {course.root}")
    print(f"  term seed {course.term_seed} written into {course.seeded_cells} hidden-test blocks of {len(course.assignments)} assignments")
    print(f"  source/ (solutions and hidden tests), release/, gradebook.db with {', '.join(course.assignments)} recorded")
    print(f"  next: cd {course.root}; collect submissions into submitted/<student>/<assignment>/; tlcourse grade <assignment>")
    return 0


def _lessons(args: argparse.Namespace) -> int:
    from tlcourse.course.pairing import lesson_sources, pair_problems, sync_lessons, unpaired_notebooks

    if args.action == "sync":
        written = sync_lessons(args.notebooks)
        for path in written:
            print(f"wrote {path}")
        unpaired = unpaired_notebooks(args.notebooks)
        for problem in unpaired:
            print(problem)
        print(f"{len(written)} notebook(s) regenerated from their sources.")
        return 1 if unpaired else 0
    problems = [p for source in lesson_sources(args.notebooks) for p in pair_problems(source)]
    problems += unpaired_notebooks(args.notebooks)
    for problem in problems:
        print(problem)
    if problems:
        print("Run `tlcourse lessons sync` to regenerate the notebooks from their .py sources.")
        return 1
    print("Every lesson notebook matches its .py source and holds no outputs.")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``tlcourse`` command."""
    parser = argparse.ArgumentParser(prog="tlcourse", description="Transfer-learning course: check, prefetch, run lessons.")
    parser.add_argument("--version", action="version", version=f"tlcourse {tlcourse.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    doctor = sub.add_parser("doctor", help="check the install: versions, device, data, weights, kernel")
    doctor.add_argument("--freeze", action="store_true",
                        help="print this environment's versions as a constraints file (how constraints.txt is made)")
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

    site = sub.add_parser("site", help="build the course website (static HTML) from the executed lessons",
                          description="Build the course as a static website from the lessons `tlcourse run` executed "
                          "(runs/full/, or runs/smoke/ with --smoke): it opens from disk and from any static host, "
                          "and nothing is downloaded when it is built or read.")  # fmt: skip
    site.add_argument("--smoke", action="store_true", help="build from runs/smoke/ (and run missing lessons in smoke mode)")
    site.add_argument("--runs", default=None, metavar="DIR", help="folder of executed lessons (default: runs/full or runs/smoke)")
    site.add_argument("--output", default="site", metavar="DIR", help="folder the website goes to (default: site)")
    site.add_argument("--run-missing", action=argparse.BooleanOptionalAction, default=True,
                      help="execute lessons missing from the runs folder first (default); --no-run-missing: stop with an error")
    site.add_argument("--device", default="auto", help="device for the lessons it runs (as for `tlcourse run`)")
    site.add_argument("--notebooks", default=None, metavar="DIR", help="lessons folder (default: ./notebooks)")
    site.set_defaults(handler=_site)

    lessons = sub.add_parser("lessons", help="lesson sources (py:percent) and their notebooks: regenerate or check")
    lessons.add_argument("action", choices=["sync", "check"], help="sync: regenerate notebooks from NN_name.py; check: list pairs that differ")
    lessons.add_argument("--notebooks", default=None, help="lessons folder (default: ./notebooks)")
    lessons.set_defaults(handler=_lessons)

    assignments = sub.add_parser("assignments", help="graded assignments: generate student versions, check them")
    assignments.add_argument("action", choices=["generate", "check"], help="generate: solutions/ -> assignments/; check: compare")
    assignments.add_argument("names", nargs="*", metavar="ASSIGNMENT", help="e.g. a01_lenet (default: all)")
    assignments.add_argument("--root", default=".", help="course root holding nbgrader_config.py (default: .)")
    assignments.set_defaults(handler=_assignments)

    grade = sub.add_parser(
        "grade", help="autograde submissions in parallel, each in the sandbox, and print a summary",
        description="Autograde submitted/<student>/ASSIGNMENT/ with nbgrader, each submission in the grading sandbox "
        "(bubblewrap: no network, nothing of the course visible), under memory, process and time limits.",
    )
    grade.add_argument("assignment", metavar="ASSIGNMENT", help="e.g. a01_lenet")
    grade.add_argument("students", nargs="*", metavar="STUDENT", help="student ids (default: every submission)")
    grade.add_argument("--jobs", "-j", type=int, default=None, help="parallel workers (default: the number of cores)")
    grade.add_argument("--root", default=".", help="course folder holding nbgrader_config.py (default: .)")
    grade.add_argument("--memory", default=None, help="memory of one submission, e.g. 4G (default: 4G)")
    grade.add_argument("--processes", type=int, default=None, help="processes of one submission (default: 64)")
    grade.add_argument("--notebook-timeout", type=int, default=None, help="seconds for one whole notebook (default: 900)")
    grade.add_argument("--timeout", type=int, default=None, help="seconds for one cell (default: 180)")
    grade.add_argument("--unsandboxed", action="store_true", help="grade without the sandbox (trusted notebooks only)")
    grade.add_argument("--quiet", action="store_true", help="no progress bar")
    grade.add_argument("--student-log", action="store_true", help="print nbgrader's log of submissions that failed")
    grade.set_defaults(handler=_grade)

    instructor = sub.add_parser("instructor", help="the instructor's private grading folder")
    instructor_sub = instructor.add_subparsers(dest="action", required=True)
    init = instructor_sub.add_parser("init", help="make a private grading folder with this term's hidden tests")
    init.add_argument("folder", metavar="DIR", help="a new folder outside the public repository")
    init.add_argument("--root", default=".", help="the public course (default: .)")
    init.add_argument("--term-seed", type=int, default=None, help="seed of this term's hidden-test cases (default: random)")
    init.set_defaults(handler=_instructor)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
