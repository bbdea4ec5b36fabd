"""Mark a notebook's exercises the way nbgrader does, and write the student edition from the marks.

The notebooks in notebooks/ are the instructor edition: each exercise is an answer cell (tagged
`solution`) followed by a check cell that calls `netlab.checks.X(...)`. Two rules for this file:

1. The marks are nbgrader's own, so an instructor who runs nbgrader can use the series as it is:
   `### BEGIN SOLUTION` / `### END SOLUTION` around each solution region, and `nbgrader` cell
   metadata (answer cells are solutions, check cells are graded tests worth one point, every other
   cell is read-only). `mark()` is idempotent: marking a marked notebook changes nothing.
2. The student edition is made from those marks (or, for a notebook not yet marked, from the
   `solution` tag): a solution region becomes a stub the checks recognise as "not answered yet"
   (`name = ...` for each name the solution binds, `...` inside a function), the outputs of answer
   and check cells are cleared, and every other cell keeps its outputs.
"""

from __future__ import annotations

import ast
import copy
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
SCHEMA_VERSION = 3
CHECK_CALL = "netlab.checks."

__all__ = ["BEGIN", "END", "Exercise", "exercises", "mark", "mark_files", "series", "student_notebook",
           "write_student_edition", "read_notebook", "write_notebook"]


@dataclass(frozen=True)
class Exercise:
    """One exercise of a notebook: its grade id ("03-ex2"), its answer cells' and check cell's indexes."""

    grade_id: str
    answers: tuple[int, ...]
    check: int


def series(folder: Path) -> list[Path]:
    """The series' notebooks in `folder` (NN-name.ipynb), in order."""
    return sorted(Path(folder).glob("[0-9][0-9]-*.ipynb"))


def read_notebook(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_notebook(nb: dict[str, Any], path: Path) -> Path:
    """Write `nb` as Jupyter does (one-space indent, a final newline), so marking shows small diffs."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def _source(cell: dict[str, Any]) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _set_source(cell: dict[str, Any], text: str) -> None:
    cell["source"] = text.splitlines(keepends=True)


def _nbgrader(cell: dict[str, Any]) -> dict[str, Any]:
    return cell.get("metadata", {}).get("nbgrader", {})


def _is_answer(cell: dict[str, Any]) -> bool:
    return cell["cell_type"] == "code" and (
        "solution" in cell.get("metadata", {}).get("tags", []) or BEGIN in _source(cell) or _nbgrader(cell).get("solution")
    )


def _is_check(cell: dict[str, Any]) -> bool:
    return cell["cell_type"] == "code" and CHECK_CALL in _source(cell) and not _is_answer(cell)


def _prefix(path_or_stem: str) -> str:
    """The notebook's number, "03" for 03-tcp-handshake-and-teardown: grade ids start with it."""
    stem = Path(path_or_stem).stem
    match = re.match(r"(\d+)-", stem)
    if not match:
        raise ValueError(f"{stem}: a series notebook's name starts with its number (NN-name.ipynb)")
    return match.group(1)


def exercises(nb: dict[str, Any], stem: str) -> list[Exercise]:
    """The notebook's exercises in order: answer cells, then the check cell that grades them.

    Raises ValueError naming the cell when an answer cell has no check cell after it.
    """
    prefix = _prefix(stem)
    found, pending = [], []
    for index, cell in enumerate(nb["cells"]):
        if _is_answer(cell):
            pending.append(index)
        elif _is_check(cell) and pending:
            found.append(Exercise(f"{prefix}-ex{len(found) + 1}", tuple(pending), index))
            pending = []
    if pending:
        raise ValueError(f"{stem}: answer cell {pending[0]} has no check cell (one calling {CHECK_CALL}...) after it")
    return found


def _wrap_solution(text: str) -> str:
    """Put a cell's whole answer between nbgrader's markers; its leading imports stay outside (they are no answer)."""
    if BEGIN in text:
        return text
    lines = text.rstrip("\n").splitlines()
    keep = 0
    while keep < len(lines) and (lines[keep].startswith(("import ", "from ")) or not lines[keep].strip()):
        keep += 1
    head = lines[:keep]
    while head and not head[-1].strip():
        head.pop()
    return "\n".join([*head, BEGIN, *lines[keep:], END])


def mark(nb: dict[str, Any], stem: str) -> dict[str, Any]:
    """Return a copy of `nb` marked nbgrader's way (module docstring, rule 1); the input is left alone."""
    nb = copy.deepcopy(nb)
    prefix = _prefix(stem)
    graded: dict[int, dict[str, Any]] = {}
    for exercise in exercises(nb, stem):
        for number, index in enumerate(exercise.answers, 1):
            suffix = "" if number == 1 else str(number)
            graded[index] = {"grade": False, "grade_id": f"{exercise.grade_id}-answer{suffix}", "locked": False,
                             "schema_version": SCHEMA_VERSION, "solution": True}
        graded[exercise.check] = {"grade": True, "grade_id": exercise.grade_id, "locked": True, "points": 1,
                                  "schema_version": SCHEMA_VERSION, "solution": False}
    for index, cell in enumerate(nb["cells"]):
        meta = cell.setdefault("metadata", {})
        if index in graded:
            meta["nbgrader"] = graded[index]
            if graded[index]["solution"]:
                _set_source(cell, _wrap_solution(_source(cell)))
                tags = meta.setdefault("tags", [])
                if "solution" not in tags:
                    tags.append("solution")
        else:
            # Read-only: nbgrader's generate_assignment locks it and autograde restores its source.
            name = cell.get("id") or str(index)
            meta["nbgrader"] = {"grade": False, "grade_id": f"{prefix}-cell-{name}", "locked": True,
                                "schema_version": SCHEMA_VERSION, "solution": False}
    return nb


def mark_files(paths: list[Path]) -> list[Path]:
    """Mark each notebook file in place; return the files that changed (none, when all were marked)."""
    changed = []
    for path in paths:
        nb = read_notebook(path)
        marked = mark(nb, Path(path).stem)
        if marked != nb:
            write_notebook(marked, path)
            changed.append(Path(path))
    return changed


def _bound_names(code: str) -> list[str]:
    """The names a solution binds at its top level, in order: the stub gives each the value `...`."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    names: list[str] = []

    def add(target: ast.AST) -> None:
        for node in ast.walk(target):
            if isinstance(node, ast.Name) and node.id not in names:
                names.append(node.id)

    def visit(body: list[ast.stmt]) -> None:
        for stmt in body:
            if isinstance(stmt, ast.Assign):
                for target in stmt.targets:
                    if isinstance(target, ast.Name | ast.Tuple | ast.List):
                        add(target)
            elif isinstance(stmt, ast.AnnAssign | ast.AugAssign) and isinstance(stmt.target, ast.Name):
                add(stmt.target)
            elif isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                if stmt.name not in names:
                    names.append(stmt.name)
            elif isinstance(stmt, ast.With | ast.AsyncWith | ast.If | ast.For | ast.While):
                visit(stmt.body)  # a context manager's or a loop's own name is scaffolding, not an answer
            elif isinstance(stmt, ast.Try):
                visit(stmt.body)
                for handler in stmt.handlers:
                    visit(handler.body)

    visit(tree.body)
    return names


def _used_names(code: str) -> set[str]:
    """The names a check cell reads."""
    try:
        return {node.id for node in ast.walk(ast.parse(code)) if isinstance(node, ast.Name)}
    except SyntaxError:
        return set()


def _stub(region: list[str], indent: str, wanted: set[str]) -> list[str]:
    """What replaces a solution region in the student edition: `...` that the checks take as unanswered.

    At the top level each name the solution binds and the check reads becomes `name = ...`; the
    solution's own helper names are left out, so the stub does not hint at the way to the answer.
    """
    if indent:
        return [f"{indent}..."]
    names = _bound_names("\n".join(region))
    names = [n for n in names if n in wanted] or names
    return [f"{name} = ..." for name in names] or ["..."]


def _student_source(text: str, wanted: set[str]) -> str:
    lines = text.splitlines()
    if not any(line.strip() == BEGIN for line in lines):
        lines = _wrap_solution(text).splitlines()
    out: list[str] = []
    region: list[str] | None = None
    indent = ""
    for line in lines:
        if line.strip() == BEGIN:
            region, indent = [], line[: len(line) - len(line.lstrip())]
        elif line.strip() == END and region is not None:
            out.extend(_stub(region, indent, wanted))
            region = None
        elif region is not None:
            region.append(line)
        else:
            out.append(line)
    if region is not None:  # a BEGIN without END: nbgrader refuses it, and so do we
        raise ValueError(f"a solution region has {BEGIN} but no {END}")
    return "\n".join(out)


def student_notebook(nb: dict[str, Any], stem: str) -> dict[str, Any]:
    """Return the student edition of `nb` (module docstring, rule 2); the input is left alone."""
    nb = copy.deepcopy(nb)
    for exercise in exercises(nb, stem):
        wanted = _used_names(_source(nb["cells"][exercise.check]))
        for index in exercise.answers:
            cell = nb["cells"][index]
            _set_source(cell, _student_source(_source(cell), wanted))
        for index in (*exercise.answers, exercise.check):
            nb["cells"][index]["outputs"] = []
            nb["cells"][index]["execution_count"] = None
    return nb


def write_student_edition(out_dir: Path, source_dir: Path) -> list[Path]:
    """Write the student edition of every notebook of the series in `source_dir` to `out_dir`; return the files."""
    out_dir, written = Path(out_dir), []
    notebooks = series(source_dir)
    if not notebooks:
        raise FileNotFoundError(f"no series notebooks (NN-name.ipynb) in {source_dir}")
    if out_dir.resolve() == Path(source_dir).resolve():
        raise ValueError(f"{out_dir} is the instructor edition's own folder: choose another")
    for path in notebooks:
        written.append(write_notebook(student_notebook(read_notebook(path), path.stem), out_dir / path.name))
    return written
