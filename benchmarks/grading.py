"""Benchmark (not a test): autograde a class of mixed submissions, sequentially and in parallel.

For each assignment, a temporary private course folder (``tlcourse instructor init``) gets N submissions
cycling through honest (the solution), blank (the release) and partial (Task 1 solved). The class is graded
twice, side by side in one run: by plain ``nbgrader autograde ASSIGNMENT`` (one process, one student after
the other; every kernel in the sandbox, as the course config says) and by ``tlcourse grade ASSIGNMENT
--jobs J``. Prints seconds per submission for both, their ratio, and what a class of 60 students x all
assignments would take.

    python benchmarks/grading.py                 # 6 students per assignment, --jobs 2
    python benchmarks/grading.py --students 12 a05_transfer
    python benchmarks/grading.py --mix honest     # only full solutions: the slowest kind
"""

from __future__ import annotations

import argparse
import copy
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _submissions(root: Path, assignment: str, n: int, mix: list[str]) -> None:
    source = nbformat.read(str(root / "source" / assignment / f"{assignment}.ipynb"), as_version=4)
    release = nbformat.read(str(root / "release" / assignment / f"{assignment}.ipynb"), as_version=4)
    answers = {c.id: (c.source, c.metadata["nbgrader"]["grade_id"]) for c in source.cells if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")}
    for i in range(n):
        kind = mix[i % len(mix)]
        nb = copy.deepcopy(release)
        for cell in nb.cells:
            if cell.id in answers and (kind == "honest" or (kind == "partial" and "_t1_" in answers[cell.id][1])):
                cell.source = answers[cell.id][0]
        folder = root / "submitted" / f"s{i:02d}_{kind}" / assignment
        folder.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, str(folder / f"{assignment}.ipynb"))


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"{' '.join(args)} failed with exit code {proc.returncode}")
    return seconds


def main() -> None:
    from tlcourse.grading.assignments import list_assignments

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("assignments", nargs="*", default=list_assignments(REPO))
    parser.add_argument("--students", type=int, default=6)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--mix", default="honest,blank,partial", help="kinds of submission, in turn (default: honest,blank,partial)")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="tlcourse_bench_"))
    env = {**os.environ, "TLCOURSE_EXCHANGE": str(tmp / "exchange"), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    root = tmp / "course"
    _run([str(BIN / "tlcourse"), "instructor", "init", str(root), "--root", str(REPO), "--term-seed", "1"], REPO, env)
    rows = []
    for assignment in args.assignments:
        _submissions(root, assignment, args.students, args.mix.split(","))
        sequential = _run([sys.executable, "-m", "nbgrader", "autograde", assignment, "--force"], root, env) / args.students
        shutil.rmtree(root / "autograded", ignore_errors=True)
        parallel = _run([str(BIN / "tlcourse"), "grade", assignment, "--jobs", str(args.jobs), "--quiet"], root, env) / args.students
        rows.append((assignment, sequential, parallel))
        print(f"{assignment}: {sequential:.1f} s per submission sequentially, {parallel:.1f} s with --jobs {args.jobs}", flush=True)
    print()
    print(f"| assignment | nbgrader autograde (s / submission) | tlcourse grade --jobs {args.jobs} (s / submission) | speed-up |")
    print("| --- | ---: | ---: | ---: |")
    for assignment, sequential, parallel in rows:
        print(f"| {assignment} | {sequential:.1f} | {parallel:.1f} | {sequential / parallel:.2f}x |")
    total_seq, total_par = (sum(r[i] for r in rows) for i in (1, 2))
    print(f"| all | {total_seq:.1f} | {total_par:.1f} | {total_seq / total_par:.2f}x |")
    # 60 students x (seconds per submission summed over the assignments) / 60 s per minute
    print(f"\nA class of 60 students x {len(rows)} assignments: {total_seq:.0f} min sequentially, "
          f"{total_par:.0f} min with tlcourse grade --jobs {args.jobs} ({args.students} submissions per assignment, in turn: {args.mix})")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
