"""The graded assignments, graded for real: nbgrader generates, autogrades and validates them.

Everything runs in a temporary course directory (a copy of ``solutions/``, its own gradebook and
exchange), so the repository is never touched. Per assignment, one ``autograde`` call grades the
students with a short timeout for the cells they write (the instructor's locked cells keep the course's
timeout): a blank submission, one task solved, three broken ones (a cell that raises, one with a syntax
error, one that loops forever), and the plausible-wrong and cheating submissions of ``CHEATS``, which must
lose exactly the points of the test cells they target; a second call grades the full solution.
"""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

from tlcourse import grading

REPO = Path(__file__).resolve().parents[1]
ASSIGNMENTS = grading.list_assignments(REPO)
SHORT_TIMEOUT = 15  # seconds per cell for the students without a training cell to run
ONE_TASK, BROKEN_TASK = "t1", "t2"
DEFECTS = {
    "raises": 'raise RuntimeError("a bug in the student\'s code")',
    "syntax": "def broken(:\n    pass",
    "loop": "while True:\n    pass",
}
TASK_RE = re.compile(r"^a\d+_(t\d+)_")
# student cells that legitimately run long: a05's one feature pass of EfficientNet-Lite0 over every photo
LONG_STUDENT_CELLS = {"a05_t4_features"}

_ALWAYS_EQUAL = """
class AlwaysEqual:
    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    __hash__ = object.__hash__


"""
_LENET_TANH_AVG = """
class LeNet5(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(1, 6, kernel_size=5)
        self.c3 = nn.Conv2d(6, 16, kernel_size=5)
        self.c5 = nn.Conv2d(16, 120, kernel_size=5)
        self.f6 = nn.Linear(120, 84)
        self.output = nn.Linear(84, num_classes)
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)
        self.act = nn.Tanh()

    def forward(self, x):
        x = self.pool(self.act(self.c1(x)))
        x = self.pool(self.act(self.c3(x)))
        x = self.act(self.c5(x)).flatten(1)
        return self.output(self.act(self.f6(x)))
"""
_ATTENTION_UNSCALED = """
def attention(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = scores.softmax(dim=-1)
    return weights @ v, weights
"""
_TRAIN_HEAD = """
def train_head(train, val, *, epochs=30, lr=1e-3, seed=0):
    seed_everything(seed)
    head = nn.Linear(train.dim, 2)
    fitted_on = {fitted_on}
    history = fit(head, fitted_on.loader(batch_size=32, shuffle=True, seed=seed), val.loader(batch_size=256),
                  epochs=epochs, lr=lr, device="cpu", progress=False)
    return head, float(history.last.val_acc)
"""

# Plausible-wrong and cheating submissions: (tasks solved with the solution, answer cells replaced by
# {grade_id: source}, the test cells that must fail). Each is graded in the assignment's one batch.
CHEATS: dict[str, dict[str, tuple[set[str], dict[str, str], set[str]]]] = {
    "a01_lenet": {
        "tanh_avg_pool": ({"t2"}, {"a01_t1_model": _LENET_TANH_AVG}, {"a01_t1_tests_function"}),
        "reference_subclass": ({"t2"}, {"a01_t1_model": (
            "from tlcourse.models.lenet import LeNet5 as Reference\n\n\nclass LeNet5(Reference):\n"
            "    def __init__(self, num_classes: int = 10) -> None:\n"
            "        super().__init__(num_classes=num_classes, activation='relu', pooling='max')\n"
        )}, {"a01_t1_tests_shape", "a01_t1_tests_function"}),
        "trains_on_test_split": ({"t1", "t2", "t3"}, {"a01_t3_train": (
            "def train_lenet(epochs, seed=0):\n"
            "    seed_everything(seed)\n"
            "    bundle = data.load('mnist5k', transform='lenet', batch_size=64)\n"
            "    model = LeNet5()\n"
            "    both = torch.utils.data.ConcatDataset([bundle.train, bundle.test])\n"
            "    loader = torch.utils.data.DataLoader(both, batch_size=64, shuffle=True)\n"
            "    history = fit(model, loader, bundle.val_loader, epochs=epochs, lr=2e-3, progress=False)\n"
            "    return model, history, evaluate(model, bundle.test_loader).accuracy\n"
        )}, {"a01_t3_tests"}),
    },
    "a02_conv_arithmetic": {
        "field_without_jump": ({"t1"}, {"a02_t2_receptive_field": (
            "def receptive_field(layers):\n    field = 1\n    for kernel_size, stride in layers:\n"
            "        field += kernel_size - 1\n    return field\n"
        )}, {"a02_t2_tests"}),
        "reference_import": ({"t1"}, {"a02_t2_receptive_field": (
            "import tlcourse.measure.receptive_field\n\n\ndef receptive_field(layers):\n"
            "    return tlcourse.measure.receptive_field.receptive_field(layers)\n"
        )}, {"a02_t2_tests"}),
        "always_equal": (set(), {
            "a02_t1_output_size": _ALWAYS_EQUAL + "def conv_output_size(*args, **kwargs):\n    return AlwaysEqual()\n",
            "a02_t2_receptive_field": "def receptive_field(layers):\n    return AlwaysEqual()\n",
            "a02_t3_params": "def conv_params(*args, **kwargs):\n    return AlwaysEqual()\n",
            "a02_t4_flops": "def conv_flops(*args, **kwargs):\n    return AlwaysEqual()\n",
            "a02_t5_bottleneck": "def bottleneck_costs(*args):\n    return {k: AlwaysEqual() for k in "
                                 "('direct_params', 'bottleneck_params', 'direct_flops', 'bottleneck_flops')}\n",
            "a02_t6_separable": "def separable_costs(*args):\n    return {k: AlwaysEqual() for k in "
                                "('standard_params', 'separable_params', 'standard_flops', 'separable_flops')}\n",
        }, {f"a02_t{i}_tests" for i in range(1, 7)}),
    },
    "a03_resnet": {
        "relu_before_addition": ({"t1", "t2"}, {"a03_t1_basic": (
            "class BasicBlock(nn.Module):\n"
            "    def __init__(self, in_channels, out_channels, stride=1):\n"
            "        super().__init__()\n"
            "        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)\n"
            "        self.bn1 = nn.BatchNorm2d(out_channels)\n"
            "        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)\n"
            "        self.bn2 = nn.BatchNorm2d(out_channels)\n"
            "        self.downsample = None\n"
            "        if stride != 1 or in_channels != out_channels:\n"
            "            self.downsample = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),\n"
            "                                            nn.BatchNorm2d(out_channels))\n\n"
            "    def forward(self, x):\n"
            "        out = torch.relu(self.bn1(self.conv1(x)))\n"
            "        out = torch.relu(self.bn2(self.conv2(out)))\n"
            "        return out + (x if self.downsample is None else self.downsample(x))\n"
        )}, {"a03_t1_tests_function"}),
        "reference_import": ({"t1", "t2"}, {"a03_t1_basic": "from tlcourse.models.resnet import BasicBlock\n"},
                             {"a03_t1_tests_shape", "a03_t1_tests_function"}),
        "reference_subclass": ({"t1", "t2"}, {"a03_t1_basic": (
            "from tlcourse.models.resnet import BasicBlock as Reference\n\n\nclass BasicBlock(Reference):\n    pass\n"
        )}, {"a03_t1_tests_shape", "a03_t1_tests_function"}),
        "reference_wrapped": ({"t1", "t2"}, {"a03_t1_basic": (
            "from tlcourse.models.resnet import BasicBlock as Reference\n\n\n"
            "class BasicBlock(nn.Module):\n"
            "    def __init__(self, in_channels, out_channels, stride=1):\n"
            "        super().__init__()\n"
            "        for name, child in Reference(in_channels, out_channels, stride).named_children():\n"
            "            setattr(self, name, child)\n"
            "        self.downsample = getattr(self, 'downsample', None)\n"
            "        self.residual = True\n\n"
            "    def forward(self, x):\n"
            "        return Reference.forward(self, x)\n"
        )}, {"a03_t1_tests_shape", "a03_t1_tests_function"}),
    },
    "a04_vit": {
        "attention_unscaled": ({"t1", "t2"}, {"a04_t2_attention": _ATTENTION_UNSCALED},
                               {"a04_t2_tests_basic", "a04_t2_tests_mask"}),
        "fused_attention_replaced": ({"t1", "t2"}, {"a04_t2_attention": _ATTENTION_UNSCALED + (
            "\n\ndef same_as_mine(q, k, v, attn_mask=None, **kwargs):\n    return attention(q, k, v, attn_mask)[0]\n\n\n"
            "torch.nn.functional.scaled_dot_product_attention = same_as_mine\n"
        )}, {"a04_t2_tests_basic", "a04_t2_tests_mask"}),
        "reference_patch_embedding": ({"t1", "t3"}, {"a04_t1_patches": (
            "from tlcourse.models.vit import PatchEmbedding as Reference\n\n\nclass PatchEmbedding(Reference):\n    pass\n"
        )}, {"a04_t1_tests_shape", "a04_t1_tests_function"}),
        "position_embedding_short": ({"t1", "t3"}, {"a04_t3_tokens": (
            "class TokenEmbedding(nn.Module):\n"
            "    def __init__(self, num_patches, dim):\n"
            "        super().__init__()\n"
            "        self.cls_token = nn.Parameter(nn.init.trunc_normal_(torch.zeros(1, 1, dim), std=0.02))\n"
            "        self.pos_embedding = nn.Parameter(nn.init.trunc_normal_(torch.zeros(1, num_patches, dim), std=0.02))\n\n"
            "    def forward(self, patches):\n"
            "        cls = self.cls_token.expand(patches.shape[0], -1, -1)\n"
            "        return torch.cat([cls, patches + self.pos_embedding], dim=1)\n"
        )}, {"a04_t3_tests"}),
    },
    "a05_transfer": {  # every one runs the whole notebook: keep them few
        "reference_code_for_every_task": ({"t1", "t2", "t3", "t4"}, {
            "a05_t1_freeze": (
                "from tlcourse.transfer import freeze_to, trainable_report\n\n\n"
                "def freeze_backbone(model, head='classifier'):\n    return freeze_to(model, -1)\n\n\n"
                "def count_trainable(model):\n    return trainable_report(model).trainable\n"
            ),
            "a05_t2_head": "from tlcourse.transfer import replace_head\n\n\n"
                           "def new_head(model, num_classes):\n    return replace_head(model, num_classes)\n",
            "a05_t3_groups": "def layerwise_param_groups(model, lr, decay):\n    return reference_param_groups(model, lr, decay=decay)\n",
            "a05_t4_train_head": (
                "from tlcourse import transfer\n\n\n"
                "def train_head(train, val, *, epochs=30, lr=1e-3, seed=0):\n"
                "    head, history = transfer.train_head(train, val, 2, epochs=epochs, lr=lr, seed=seed, device='cpu')\n"
                "    return head, float(history.last.val_acc)\n"
            ),
        }, {"a05_t1_tests", "a05_t2_tests", "a05_t3_tests_visible", "a05_t3_tests_frozen", "a05_t4_tests_accuracy"}),
        "fits_train_and_val_and_imported_groups": ({"t1", "t2", "t3", "t4"}, {
            "a05_t3_groups": "from tlcourse.transfer import param_groups\n\n\ndef layerwise_param_groups(model, lr, decay):\n"
                             "    return param_groups(model, lr, decay=decay)\n",
            "a05_t4_train_head": _TRAIN_HEAD.format(fitted_on=(
                "Features(torch.cat([train.features, val_features.features]), torch.cat([train.targets, val_features.targets]))"
            )),
        }, {"a05_t3_tests_visible", "a05_t3_tests_frozen", "a05_t4_tests_accuracy"}),
    },
}


def _task(cell: dict) -> str | None:
    match = TASK_RE.match(cell.get("metadata", {}).get("nbgrader", {}).get("grade_id", ""))
    return match.group(1) if match else None


def _is_answer(cell: dict) -> bool:
    return cell["cell_type"] == "code" and cell.get("metadata", {}).get("nbgrader", {}).get("solution", False)


def _notebook(folder: Path, assignment: str):
    return nbformat.read(str(folder / assignment / f"{assignment}.ipynb"), as_version=4)


def _autograded_points(source) -> dict[str, float]:
    """Autograded points of each task, from the code test cells of the instructor version."""
    points: dict[str, float] = {}
    for cell in source.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("grade") and not meta.get("solution"):
            points[_task(cell)] = points.get(_task(cell), 0) + meta["points"]
    return points


def _cell_points(source) -> dict[str, float]:
    """Points of every autograded test cell of the instructor version, by grade_id."""
    return {
        cell.metadata["nbgrader"]["grade_id"]: cell.metadata["nbgrader"]["points"]
        for cell in source.cells
        if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("grade") and not cell.metadata["nbgrader"].get("solution")
    }


def _cheat_submission(release, source, solved: set[str], replaced: dict[str, str]):
    """The student version with the ``solved`` tasks' answers filled in, then the answer cells of ``replaced`` replaced."""
    nb = _submission(release, source, solved)
    found = set()
    for cell in nb.cells:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if _is_answer(cell) and grade_id in replaced:
            cell.source = replaced[grade_id]
            found.add(grade_id)
    assert found == set(replaced), f"no answer cells {set(replaced) - found}"
    return nb


def _cell_timeout(short: int, long: int):
    """nbclient's ``timeout_func``: ``short`` seconds for the cells a student writes, ``long`` for the locked ones."""

    def timeout(cell) -> int:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        return long if meta.get("locked") or meta.get("grade_id") in LONG_STUDENT_CELLS else short

    return timeout


def _submission(release, source, solved: set[str], defect: str | None = None):
    """The student version with the answers of ``solved`` tasks filled in and BROKEN_TASK's answer replaced by ``defect``."""
    nb = copy.deepcopy(release)
    answers = {cell.id: cell.source for cell in source.cells if _is_answer(cell)}
    for cell in nb.cells:
        if not _is_answer(cell):
            continue
        if _task(cell) in solved:
            cell.source = answers[cell.id]
        if defect is not None and _task(cell) == BROKEN_TASK:
            cell.source = defect
    return nb


def _write_submission(course: Path, student: str, assignment: str, nb) -> None:
    folder = course / "submitted" / student / assignment
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(folder / f"{assignment}.ipynb"))


class Course:
    """A temporary nbgrader course with every assignment generated and graded once."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.db_url = f"sqlite:///{root / 'gradebook.db'}"
        self.expected: dict[tuple[str, str], float] = {}
        self.points: dict[str, dict[str, float]] = {}
        self.seconds: dict[tuple[str, str], float] = {}
        self.results: dict[tuple[str, str], dict] = {}

    def api(self, short_timeout: int | None = None):
        """The course's API; with ``short_timeout``, the cells students write get that many seconds."""
        overrides = {
            "CourseDirectory": {"root": str(self.root), "db_url": self.db_url},
            "Exchange": {"root": str(self.root / "exchange")},
        }
        if short_timeout is not None:
            course_timeout = grading.course_config(REPO).ExecutePreprocessor.timeout
            overrides["ExecutePreprocessor"] = {"timeout_func": _cell_timeout(short_timeout, course_timeout)}
        return grading.make_api(grading.course_config(REPO, **overrides))

    def score(self, assignment: str, student: str) -> tuple[float, float]:
        from nbgrader.api import Gradebook

        with Gradebook(self.db_url, course_id="tlcourse") as gb:
            submission = gb.find_submission(assignment, student)
            return submission.code_score, submission.max_code_score


@pytest.fixture(scope="module")
def course(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Course]:
    root = tmp_path_factory.mktemp("course")
    (root / "exchange").mkdir()
    saved_exchange = os.environ.get("TLCOURSE_EXCHANGE")
    os.environ["TLCOURSE_EXCHANGE"] = str(root / "exchange")  # loading the config creates the exchange folder
    import shutil

    shutil.copytree(REPO / "solutions", root / "solutions")
    course = Course(root)
    api = course.api()
    for assignment in ASSIGNMENTS:
        result = api.generate_assignment(assignment, force=True, create=True)
        assert result["success"], result.get("log", "") + result.get("error", "")

    short_api = course.api(short_timeout=SHORT_TIMEOUT)
    for assignment in ASSIGNMENTS:
        source = _notebook(root / "solutions", assignment)
        release = _notebook(root / "assignments", assignment)
        points = _autograded_points(source)
        course.points[assignment] = points
        cell_points = _cell_points(source)
        for student, (solved, replaced, targets) in CHEATS.get(assignment, {}).items():
            assert targets <= set(cell_points), targets - set(cell_points)
            _write_submission(root, student, assignment, _cheat_submission(release, source, solved, replaced))
            tasks = solved | {_task(c) for c in source.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") in replaced}
            course.expected[assignment, student] = sum(points[t] for t in tasks) - sum(cell_points[g] for g in targets)
        students = {"blank": (set(), None, 0), "one_task": ({ONE_TASK}, None, points[ONE_TASK])}
        for name, defect in DEFECTS.items():
            students[name] = ({ONE_TASK}, defect, points[ONE_TASK])
        for student, (solved, defect, expected) in students.items():
            _write_submission(root, student, assignment, _submission(release, source, solved, defect))
            course.expected[assignment, student] = expected
        start = time.perf_counter()
        # one call grades every submitted student (blank, loop, one_task, raises, syntax and the CHEATS)
        course.results[assignment, "*"] = short_api.autograde(assignment, "*", force=True, create=True)
        course.seconds[assignment, f"{len(students) + len(CHEATS.get(assignment, {}))} broken, partial or cheating students"] = (
            time.perf_counter() - start
        )

        _write_submission(root, "solution", assignment, _submission(release, source, set(points)))
        course.expected[assignment, "solution"] = sum(points.values())
        start = time.perf_counter()
        course.results[assignment, "solution"] = api.autograde(assignment, "solution", force=True, create=True)
        course.seconds[assignment, "solution"] = time.perf_counter() - start
    for (assignment, what), seconds in course.seconds.items():
        print(f"autograde {assignment}, {what}: {seconds:.1f} s")
    yield course
    if saved_exchange is None:
        os.environ.pop("TLCOURSE_EXCHANGE", None)
    else:
        os.environ["TLCOURSE_EXCHANGE"] = saved_exchange


def test_committed_assignments_equal_a_fresh_generation() -> None:
    result = grading.check_assignments(REPO)
    assert result.assignments == ASSIGNMENTS and len(ASSIGNMENTS) >= 2
    assert result.ok, "assignments/ is stale; run `tlcourse assignments generate`:\n" + "\n".join(result.differences)


def test_every_assignment_has_hidden_tests_and_a_written_answer() -> None:
    for assignment in ASSIGNMENTS:
        source = _notebook(REPO / "solutions", assignment)
        release = _notebook(REPO / "assignments", assignment)
        assert any("### BEGIN HIDDEN TESTS" in c.source for c in source.cells), assignment
        assert not any("HIDDEN TESTS" in c.source or "BEGIN SOLUTION" in c.source for c in release.cells), assignment
        written = [c for c in source.cells if c.cell_type == "markdown" and c.metadata.get("nbgrader", {}).get("grade")]
        assert written and all(c.metadata["nbgrader"]["solution"] for c in written), f"{assignment}: no written answer"
        assert len(_autograded_points(source)) >= 2, f"{assignment}: fewer than two autograded tasks"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
@pytest.mark.parametrize("student", ["blank", "one_task", "solution", *DEFECTS])
def test_autograde_scores(course: Course, assignment: str, student: str) -> None:
    batch = "solution" if student == "solution" else "*"
    result = course.results[assignment, batch]
    assert result["success"], result.get("log", "") + result.get("error", "")
    score, max_score = course.score(assignment, student)  # raises MissingEntry if there is no grade record
    assert max_score == sum(course.points[assignment].values())
    assert score == course.expected[assignment, student], f"{assignment}/{student}: {score} of {max_score}"


@pytest.mark.parametrize(
    ("assignment", "student"), [(a, s) for a in ASSIGNMENTS for s in CHEATS.get(a, {})], ids=lambda value: value
)
def test_wrong_and_cheating_submissions_lose_the_points_of_their_tests(course: Course, assignment: str, student: str) -> None:
    result = course.results[assignment, "*"]
    assert result["success"], result.get("log", "") + result.get("error", "")
    score, max_score = course.score(assignment, student)
    expected = course.expected[assignment, student]
    graded = _notebook(course.root / "autograded" / student, assignment)
    failed = sorted(
        c.metadata["nbgrader"]["grade_id"]
        for c in graded.cells
        if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade") and any(o.output_type == "error" for o in c.outputs)
    )
    assert score == expected, f"{assignment}/{student}: {score} of {max_score}, expected {expected}; failed cells: {failed}"


def test_every_assignment_has_a_term_seed_in_its_hidden_tests() -> None:
    for assignment in ASSIGNMENTS:
        source = _notebook(REPO / "solutions", assignment)
        hidden = [c.source.split("### BEGIN HIDDEN TESTS", 1)[1] for c in source.cells if "### BEGIN HIDDEN TESTS" in c.source]
        assert any(re.search(r"^TERM_SEED = \d+  # tlcourse:term-seed$", h, re.M) for h in hidden), assignment


def test_endless_loop_is_stopped_by_the_timeout(course: Course) -> None:
    for assignment in ASSIGNMENTS:
        graded = _notebook(course.root / "autograded" / "loop", assignment)
        errors = [o for c in graded.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
        assert any(o.ename in {"CellTimeoutError", "KeyboardInterrupt"} for o in errors), [o.ename for o in errors]


def _validate(notebook: Path, cwd: Path) -> str:
    bindir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run(
        [str(bindir / "nbgrader"), "validate", "--ExecutePreprocessor.timeout=180", str(notebook)],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
    )
    return proc.stdout + proc.stderr


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_validate_passes_on_solution_and_fails_on_blank(tmp_path: Path, assignment: str) -> None:
    solution = _validate(REPO / "solutions" / assignment / f"{assignment}.ipynb", tmp_path)
    assert "Success! Your notebook passes all the tests." in solution, solution[-3000:]
    assert "VALIDATION FAILED" not in solution
    blank = _validate(REPO / "assignments" / assignment / f"{assignment}.ipynb", tmp_path)
    assert re.search(r"VALIDATION FAILED ON \d+ CELL\(S\)", blank), blank[-3000:]
