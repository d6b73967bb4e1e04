"""The instructors' solutions (`notebooks/solutions/`) match and run.

- Every numbered exercise in a notebook's "## Exercises" section has an
  `exercise_<K>` function in `notebooks/solutions/<NN>_solutions.py`, and
  no solution answers an exercise that does not exist (no Keras, fast).
- Marked `notebooks` (`make test-notebooks`): each solution script runs in
  quick mode in a subprocess, exits 0 and prints every exercise's header.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.notebook_groups import by_number

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
SOLUTIONS = NOTEBOOKS / "solutions"
NOTEBOOK_FILES = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))


def exercise_numbers(notebook: Path) -> list[int]:
    """The numbers of the markdown list under `# ## Exercises` in a percent notebook."""
    numbers, inside = [], False
    for line in notebook.read_text(encoding="utf-8").splitlines():
        if re.match(r"#\s*##\s+Exercises\b", line):
            inside = True
            continue
        if not inside:
            continue
        if not line.startswith("#"):  # the markdown cell ended
            break
        if re.match(r"#\s*#{1,6}\s", line):  # the next heading
            break
        match = re.match(r"#\s(\d+)\.\s", line)
        if match:
            numbers.append(int(match.group(1)))
    return numbers


def solution_functions(path: Path) -> list[int]:
    """The K of every top-level `def exercise_K(quick: bool)` in a solution file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            match = re.fullmatch(r"exercise_(\d+)", node.name)
            if match:
                assert [a.arg for a in node.args.args] == ["quick"], (
                    f"{path.name}: {node.name} must take exactly `quick`"
                )
                found.append(int(match.group(1)))
    return sorted(found)


def solution_file(notebook: Path) -> Path:
    return SOLUTIONS / f"{notebook.name[:2]}_solutions.py"


def test_every_notebook_has_numbered_exercises():
    assert NOTEBOOK_FILES, "no notebooks found"
    for notebook in NOTEBOOK_FILES:
        numbers = exercise_numbers(notebook)
        assert numbers, f"{notebook.name}: no numbered list under '## Exercises'"
        assert numbers == list(range(1, len(numbers) + 1)), (
            f"{notebook.name}: exercises numbered {numbers}"
        )


@pytest.mark.parametrize("notebook", NOTEBOOK_FILES, ids=lambda p: p.name[:2])
def test_every_exercise_has_a_solution_function(notebook):
    path = solution_file(notebook)
    assert path.exists(), f"{notebook.name} has no solutions file {path.name}"
    assert solution_functions(path) == exercise_numbers(notebook), (
        f"{path.name} defines exercise_{solution_functions(path)}, "
        f"{notebook.name} numbers its exercises {exercise_numbers(notebook)}"
    )


def test_the_parser_reads_a_markdown_list(tmp_path):
    text = (
        "# %% [markdown]\n# ## Exercises\n#\n# 1. First, over\n#    two lines.\n"
        "# 2. Second.\n\n\n# %%\nx = 1\n# 3. not a list item of the cell\n"
    )
    path = tmp_path / "00_example.py"
    path.write_text(text, encoding="utf-8")
    assert exercise_numbers(path) == [1, 2]


@pytest.mark.notebooks
@pytest.mark.parametrize(
    "notebook", by_number(NOTEBOOK_FILES), ids=lambda p: p.name[:2]
)
def test_solutions_run_in_quick_mode(notebook, tmp_path):
    path = solution_file(notebook)
    env = dict(os.environ)
    env.update(
        TLRECIPES_QUICK="1",
        TLRECIPES_OFFLINE="1",
        KERAS_BACKEND=os.environ.get("KERAS_BACKEND", "tensorflow"),
        TLRECIPES_SOLUTIONS_OUT=str(tmp_path),
        MPLBACKEND="Agg",
        PYTHONPATH=os.pathsep.join(
            p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p
        ),
    )
    proc = subprocess.run(
        [sys.executable, str(path), "--quick"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for k in exercise_numbers(notebook):
        header = f"=== {notebook.name[:2]} exercise {k} ==="
        assert header in proc.stdout, f"{header!r} not printed:\n{proc.stdout[-3000:]}"
