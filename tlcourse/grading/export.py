"""Grades out: an nbgrader export plugin writing the CSV that Canvas's or Moodle's gradebook imports.

    nbgrader export --exporter=tlcourse.grading.export.LmsExportPlugin --LmsExportPlugin.lms=canvas --to canvas.csv
    nbgrader export --exporter=tlcourse.grading.export.LmsExportPlugin --LmsExportPlugin.lms=moodle --to moodle.csv

One row per student, one column per assignment (the score after any late penalty; 0 when nothing was
submitted) and the total. Canvas: the columns of its gradebook export (Student, ID, SIS User ID, SIS
Login ID, Section), the nbgrader id in "SIS Login ID", a "Points Possible" row, the total as "Final
Score" (a column Canvas reads but never imports as an assignment). Moodle: "username", the assignments and
"Total"; map "username" to the user's username and each column to a grade item when importing.
"""

from __future__ import annotations

import csv
from typing import Any

from nbgrader.api import Gradebook, MissingEntry
from nbgrader.plugins import ExportPlugin
from traitlets import Enum

__all__ = ["LmsExportPlugin", "grade_rows"]


def grade_rows(gradebook: Gradebook, assignments: list[str] | None = None, students: list[str] | None = None) -> tuple[list[str], dict[str, float], list[dict[str, Any]]]:
    """(assignment names, their maximum scores, one dict per student: id, name, lms id, scores, total)."""
    chosen = [a for a in gradebook.assignments if not assignments or a.name in assignments]
    chosen.sort(key=lambda a: a.name)
    names = [a.name for a in chosen]
    maxima = {a.name: float(a.max_score) for a in chosen}
    rows = []
    for student in sorted(gradebook.students, key=lambda s: s.id):
        if students and student.id not in students:
            continue
        scores = {}
        for name in names:
            try:
                submission = gradebook.find_submission(name, student.id)
                scores[name] = max(0.0, float(submission.score) - float(submission.late_submission_penalty or 0))
            except MissingEntry:
                scores[name] = 0.0
        full_name = " ".join(x for x in (student.first_name, student.last_name) if x) or student.id
        rows.append({"id": student.id, "name": full_name, "lms_user_id": student.lms_user_id or "", "scores": scores, "total": sum(scores.values())})
    return names, maxima, rows


def _number(x: float) -> str:
    return f"{x:g}"


class LmsExportPlugin(ExportPlugin):
    """Export the gradebook as a CSV for Canvas (``lms=canvas``, the default) or Moodle (``lms=moodle``)."""

    lms = Enum(["canvas", "moodle"], default_value="canvas", help="The learning platform the CSV is for.").tag(config=True)

    def export(self, gradebook: Gradebook) -> None:
        dest = self.to or f"grades_{self.lms}.csv"
        names, maxima, rows = grade_rows(gradebook, [str(a) for a in self.assignment], [str(s) for s in self.student])
        self.log.info("Exporting %d students x %d assignments for %s to %s", len(rows), len(names), self.lms, dest)
        with open(dest, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            if self.lms == "canvas":
                writer.writerow(["Student", "ID", "SIS User ID", "SIS Login ID", "Section", *names, "Final Score"])
                writer.writerow(["    Points Possible", "", "", "", "", *(_number(maxima[n]) for n in names), _number(sum(maxima.values()))])
                for row in rows:
                    writer.writerow([row["name"], "", row["lms_user_id"], row["id"], "", *(_number(row["scores"][n]) for n in names), _number(row["total"])])
            else:
                writer.writerow(["username", *names, "Total"])
                for row in rows:
                    writer.writerow([row["id"], *(_number(row["scores"][n]) for n in names), _number(row["total"])])
