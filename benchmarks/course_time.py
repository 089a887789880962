"""Where the course's time goes: per-lesson seconds of a ``tlcourse run`` and each lesson's slowest cells.

Reads a run folder (``runs/full/`` by default: ``results.json`` and the executed notebooks, whose cells carry
papermill's durations) and prints the per-lesson table against issue 12's goals (the whole course in 20
minutes, no lesson over 3), then the slowest cells of each lesson.

    tlcourse run                                   # full mode, every lesson -> runs/full/
    python benchmarks/course_time.py               # or: python benchmarks/course_time.py runs/smoke --top 3
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tlcourse.course.timing import cell_timings, slowest_cells_table

COURSE_GOAL_S, LESSON_GOAL_S = 20 * 60, 3 * 60


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="?", default="runs/full", help="a folder written by tlcourse run")
    parser.add_argument("--top", type=int, default=5, help="slowest cells shown per lesson")
    args = parser.parse_args(argv)
    folder = Path(args.runs)
    report = folder / "results.json"
    if not report.is_file():
        print(f"no {report}: run `tlcourse run` (or `tlcourse run --smoke --output {folder}`) first", file=sys.stderr)
        return 2
    runs = json.loads(report.read_text())
    total = sum(run["seconds"] for run in runs)
    print(f"# {folder}: {len(runs)} lessons in {total / 60:.1f} min (goal: {COURSE_GOAL_S // 60} min, each <= {LESSON_GOAL_S // 60} min)\n")
    print("| lesson | seconds | share | status |\n| --- | ---: | ---: | --- |")
    for run in runs:
        over = " over 3 min" if run["seconds"] > LESSON_GOAL_S else ""
        status = ("ok" if run["ok"] else "FAILED") + over
        print(f"| {run['lesson']} | {run['seconds']:.1f} | {run['seconds'] / total:.0%} | {status} |")
    print(f"| **total** | **{total:.1f}** | | {'ok' if total <= COURSE_GOAL_S else 'over the goal'} |")
    for run in runs:
        notebook = folder / Path(run["output_notebook"]).name
        if notebook.is_file():
            print(f"\n## {run['lesson']} ({run['seconds']:.1f} s): slowest cells\n")
            print(slowest_cells_table(cell_timings(notebook), args.top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
