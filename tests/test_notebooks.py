"""Notebook hygiene: pairs in sync, headers and structure, quick-mode execution.

Every notebook opens with the Colab install cell (right after its header) and
closes, before its Exercises, with a `## What this run showed` markdown cell
and one code cell printing its key comparisons. No tracked file refers to
the `shared` folder outside the repository, or to the placeholder owner of
the old GitHub links.

The structure and pairing checks take well under a second and always run. The
execution tests run each notebook top to bottom in quick mode
(`TLRECIPES_QUICK=1`) through `notebooks/run_notebooks.py`, on a copy written
to a temporary folder: the committed notebooks are never modified. They are
marked `notebooks` (select with `-m notebooks`, skip with `-m "not notebooks"`)
and `slow`: each takes about a minute on a 2-core CPU.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.notebook_groups import by_number

nbformat = pytest.importorskip("nbformat")
jupytext = pytest.importorskip("jupytext")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
PAIRED_SCRIPTS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.py"))
IDS = [path.stem for path in NOTEBOOKS]
#: The four case notebooks, each printing its cell of the study's 2x2 table.
CASE_NOTEBOOKS = {
    "01_small_similar_feature_extractor": ("small", "similar"),
    "02_small_different": ("small", "different"),
    "03_large_similar_fine_tuning": ("large", "similar"),
    "04_large_different": ("large", "different"),
}

#: The first code cell of every notebook, right after its header.
COLAB_CELL = """\
# Colab only: install tlrecipes into the Colab runtime (does nothing elsewhere).
import subprocess
import sys

if "google.colab" in sys.modules:
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q",
         "tlrecipes[tensorflow,offline-data,imagenet] @ git+https://github.com/tlrecipes/tlrecipes"],
        check=True,
    )"""
SHOWED = "## What this run showed"
#: Split so that this file does not match itself.
SHARED = "../" + "shared"
PLACEHOLDER = "github.com/" + "OWNER"

HEADER_LINES = [
    r"^# \d\d \S.*$",
    r"^\*\*Description:\*\* .+\.$",
    r"^\*\*Accelerator:\*\* (CPU|GPU|CPU or GPU)$",
    r"^\*\*Estimated time \(full mode\):\*\* CPU .+, GPU .+$",
    r"^\*\*Quick mode:\*\* .+$",
    r"^\*\*This run:\*\* .+$",
]


def _runner():
    spec = importlib.util.spec_from_file_location(
        "run_notebooks", NOTEBOOK_DIR / "run_notebooks.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _cells(notebook) -> list[tuple[str, str]]:
    return [(cell.cell_type, cell.source.strip()) for cell in notebook.cells]


def _is_colab(cell) -> bool:
    return cell.cell_type == "code" and "google.colab" in cell.source


def _showed_index(notebook) -> int | None:
    """Index of the code cell under `## What this run showed`, or None."""
    cells = notebook.cells
    for i, cell in enumerate(cells[:-1]):
        heading = cell.cell_type == "markdown" and re.search(
            rf"^{SHOWED}\s*$", cell.source, re.M
        )
        if heading and cells[i + 1].cell_type == "code":
            return i + 1
    return None


def _tracked_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    return [ROOT / name for name in listed.split("\0") if name]


def test_there_are_notebooks():
    assert NOTEBOOKS, f"no NN_*.ipynb notebooks in {NOTEBOOK_DIR}"


def test_every_script_has_its_notebook_and_back():
    assert {p.stem for p in PAIRED_SCRIPTS} == {p.stem for p in NOTEBOOKS}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_and_script_agree(path):
    """The .ipynb and its jupytext .py hold the same cells (outputs ignored)."""
    from_script = jupytext.read(path.with_suffix(".py"))
    from_notebook = nbformat.read(path, as_version=4)
    script_cells, notebook_cells = _cells(from_script), _cells(from_notebook)
    assert len(script_cells) == len(notebook_cells), (
        f"{path.name}: {len(notebook_cells)} cells, its .py has {len(script_cells)}. "
        f"Fix: jupytext --sync {path.with_suffix('.py').name}"
    )
    for i, (a, b) in enumerate(zip(notebook_cells, script_cells, strict=True)):
        assert a == b, (
            f"{path.name}: cell {i} differs from the .py. Fix: edit the .py, then "
            f"jupytext --to ipynb {path.with_suffix('.py').name}"
        )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_header(path):
    notebook = nbformat.read(path, as_version=4)
    first = notebook.cells[0]
    assert first.cell_type == "markdown"
    lines = [line for line in first.source.splitlines() if line.strip()]
    for pattern in HEADER_LINES:
        assert any(re.match(pattern, line) for line in lines), (
            f"{path.name}: no header line matching {pattern!r}"
        )
    assert lines[0].startswith(f"# {path.name[:2]} "), "title must start with NN"
    run_lines = [line for line in first.source.splitlines() if "**This run:**" in line]
    assert len(run_lines) == 1, "exactly one '**This run:**' line, for the runner"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_structure(path):
    """One parameters cell with QUICK, an Exercises section, imports in Setup only."""
    notebook = nbformat.read(path, as_version=4)
    code = [c for c in notebook.cells if c.cell_type == "code" and not _is_colab(c)]
    parameters = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(parameters) == 1, f"{path.name}: {len(parameters)} parameters cells"
    assert 'os.environ.get("TLRECIPES_QUICK", "0") == "1"' in parameters[0].source
    assert code.index(parameters[0]) == 1, "the parameters cell follows the Setup cell"
    assert any(
        c.cell_type == "markdown" and re.search(r"^## Exercises", c.source, re.M)
        for c in notebook.cells
    ), f"{path.name}: no '## Exercises' section"
    for cell in code[1:]:
        imports = re.findall(r"^(?:import \w|from \S+ import )", cell.source, re.M)
        assert not imports, f"{path.name}: imports outside the Setup cell: {imports}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_colab_cell_follows_the_header(path):
    """The first code cell installs tlrecipes on Colab, and only there."""
    notebook = nbformat.read(path, as_version=4)
    second = notebook.cells[1] if len(notebook.cells) > 1 else None
    assert second is not None and _is_colab(second), (
        f"{path.name}: cell 1 (right after the header) is not the Colab install "
        "cell. Fix: paste COLAB_CELL from tests/test_notebooks.py there."
    )
    assert second.source.strip() == COLAB_CELL, (
        f"{path.name}: the Colab cell differs from COLAB_CELL in "
        "tests/test_notebooks.py. Fix: paste it exactly."
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_what_this_run_showed_closes_the_notebook(path):
    """A `## What this run showed` markdown cell and its code cell, before the
    Exercises."""
    notebook = nbformat.read(path, as_version=4)
    index = _showed_index(notebook)
    assert index is not None, (
        f"{path.name}: no '{SHOWED}' markdown cell followed by a code cell. Fix: "
        "add one before the Exercises, printing lab.what_this_run_showed([...])."
    )
    exercises = [
        i
        for i, cell in enumerate(notebook.cells)
        if cell.cell_type == "markdown"
        and re.search(r"^## Exercises", cell.source, re.M)
    ]
    assert exercises and index < exercises[0], (
        f"{path.name}: '{SHOWED}' must come before the Exercises section"
    )
    assert "what_this_run_showed" in notebook.cells[index].source


def test_no_tracked_file_refers_to_shared():
    """The shared folder exists on one machine only: nothing may point there."""
    offenders = [
        str(path.relative_to(ROOT))
        for path in _tracked_files()
        if path.is_file() and SHARED.encode() in path.read_bytes()
    ]
    assert not offenders, f"files referring to {SHARED}: {offenders}"


def test_no_owner_placeholder_in_links():
    """The project lives at github.com/tlrecipes/tlrecipes: no placeholder left."""
    offenders = [
        str(path.relative_to(ROOT))
        for path in _tracked_files()
        if path.is_file() and PLACEHOLDER.encode() in path.read_bytes()
    ]
    assert not offenders, (
        f"files with the {PLACEHOLDER} placeholder: {offenders}. "
        "Fix: use https://github.com/tlrecipes/tlrecipes."
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_committed_notebook_is_clean_or_from_a_full_run(path):
    """Committed outputs only come from a full run, whose header says so."""
    notebook = nbformat.read(path, as_version=4)
    has_outputs = any(
        cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"
    )
    header = notebook.cells[0].source
    if has_outputs:
        assert "**This run:** full mode on" in header, (
            f"{path.name} has outputs but its header does not state a full run. "
            "Fix: clear the outputs, or run notebooks/run_notebooks.py --full."
        )
    else:
        assert "**This run:** not executed yet." in header


def test_stamp_replaces_only_the_run_line():
    runner = _runner()
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_markdown_cell("# 99 T\n\n**This run:** not executed yet.\n\nx"),
        nbformat.v4.new_markdown_cell("**This run:** not this one."),
    ]
    line = runner.run_line(
        "full", 125.4, "NVIDIA H100 80GB HBM3 GPU", "jax", commit="abc1234"
    )
    assert runner.stamp(notebook, line)
    assert notebook.cells[0].source == f"# 99 T\n\n{line}\n\nx"
    assert notebook.cells[1].source == "**This run:** not this one."
    assert "2 min 05 s" in line and "`jax`" in line
    assert line.startswith("**This run:** full mode on")
    assert "code at commit abc1234" in line


def test_stamp_script_replaces_the_commented_run_line():
    runner = _runner()
    text = "# %% [markdown]\n# # 99 T\n#\n# **This run:** not executed yet.\n#\n# x\n"
    line = runner.run_line("full", 61, "CPU", "tensorflow", commit="abc1234")
    stamped = runner.stamp_script(text, line)
    assert stamped == text.replace("**This run:** not executed yet.", line)
    script = jupytext.reads(stamped, fmt="py:percent")
    assert line in script.cells[0].source


def _timed(cell, begin: str, end: str):
    cell.metadata["execution"] = {
        "iopub.execute_input": f"2026-12-07T10:{begin}Z",
        "shell.execute_reply": f"2026-12-07T10:{end}Z",
    }
    return cell


def _timed_notebook():
    v4 = nbformat.v4
    return v4.new_notebook(
        cells=[
            v4.new_markdown_cell("# 00 T\n\n**This run:** not executed yet."),
            _timed(v4.new_code_cell("import x"), "00:00.0", "00:04.5"),
            v4.new_markdown_cell("## 1. Training\n\nText."),
            _timed(v4.new_code_cell("fit()"), "00:05.0", "02:05.0"),
            _timed(v4.new_code_cell("fit2()"), "02:05.0", "03:05.0"),
            v4.new_markdown_cell("Prose only, no heading."),
            _timed(v4.new_code_cell("plot()"), "03:05.0", "03:35.0"),
            v4.new_markdown_cell("## 2. Plots"),
            _timed(v4.new_code_cell("plot()"), "03:35.0", "03:50.0"),
            v4.new_code_cell("never ran"),
        ]
    )


def test_sections_are_timed_from_the_recorded_cell_timestamps():
    runner = _runner()
    nb = _timed_notebook()
    assert runner.section_seconds(nb) == {
        "set-up": 4.5,
        "1. Training": 210.0,
        "2. Plots": 15.0,
    }
    line = "**This run:** full mode on CPU, 3 min 50 s of execution (2026-12-07)."
    timed = runner.with_timings(line, nb)
    assert timed == (
        "**This run:** full mode on CPU, 3 min 50 s of execution (2026-12-07); "
        "the slowest parts: '1. Training' 3 min 30 s, '2. Plots' 15 s."
    )
    assert runner.with_timings(timed, nb) == timed  # re-timing replaces, not adds
    assert runner.with_timings(line, nb, at_least=1000) == line


def test_restamp_times_an_executed_full_run_in_place(tmp_path):
    runner = _runner()
    nb = _timed_notebook()
    line = "**This run:** full mode on CPU, 3 min 50 s of execution (2026-12-07)."
    runner.stamp(nb, line)
    path = tmp_path / "00_t.ipynb"
    nbformat.write(nb, path)
    script = tmp_path / "00_t.py"
    script.write_text(f"# # 00 T\n#\n# {line}\nimport x\n")
    unrun = tmp_path / "01_u.ipynb"
    nbformat.write(_timed_notebook(), unrun)
    assert runner.main(["--restamp", str(path), str(unrun)]) == 0
    stamped = nbformat.read(path, as_version=4).cells[0].source
    assert "the slowest parts: '1. Training' 3 min 30 s" in stamped
    assert "# **This run:** full mode on CPU" in script.read_text()
    assert "the slowest parts" in script.read_text()
    # A notebook never executed in full mode is left alone.
    assert "not executed yet" in nbformat.read(unrun, as_version=4).cells[0].source


def test_full_mode_names_the_commit_and_refuses_a_dirty_checkout(tmp_path):
    """A full run's header names its commit; changed sources stop it first."""
    runner = _runner()
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "00_x.ipynb").write_text("{}")
    script = tmp_path / "notebooks" / "00_x.py"
    script.write_text("# # Title\n#\n# **This run:** not executed yet.\nx = 1\n")
    (tmp_path / "tlrecipes.py").write_text("x = 1\n")
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "c"], check=True)
    head = subprocess.run(
        [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    # A notebook rewritten by the run itself, or a report, is not a change.
    (tmp_path / "notebooks" / "00_x.ipynb").write_text('{"cells": []}')
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "r.md").write_text("r")
    # Nor is the run line an earlier full run stamped into a paired script ...
    line = runner.run_line("full", 61.0, "CPU", "tensorflow", head)
    script.write_text(runner.stamp_script(script.read_text(), line))
    assert runner.code_commit(tmp_path) == (head, [])
    assert runner.code_commit(tmp_path / "notebooks") == (head, [])  # as main() asks
    # ... but any other edit of that script is.
    script.write_text(script.read_text().replace("x = 1", "x = 2"))
    assert runner.code_commit(tmp_path) == (head, ["notebooks/00_x.py"])
    script.write_text(script.read_text().replace("x = 2", "x = 1"))
    assert runner.code_commit(tmp_path) == (head, [])
    (tmp_path / "tlrecipes.py").write_text("x = 2\n")
    assert runner.code_commit(tmp_path) == (head, ["tlrecipes.py"])
    with pytest.raises(SystemExit):
        runner.main(["--full", str(tmp_path / "notebooks" / "00_x.ipynb")])


@pytest.mark.notebooks
@pytest.mark.slow
@pytest.mark.parametrize("path", by_number(NOTEBOOKS), ids=IDS)
def test_notebook_runs_in_quick_mode(path, tmp_path):
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    runner = _runner()
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    out = tmp_path / path.name
    outcome = runner.execute(path, out, quick=True, timeout=300)
    assert outcome.ok, outcome.error[-4000:]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    executed = nbformat.read(out, as_version=4)
    errors = [
        output
        for cell in executed.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.output_type == "error"
    ]
    assert not errors
    index = _showed_index(executed)
    assert index is not None, f"{path.name}: no '{SHOWED}' cell"
    printed = "".join(
        output.get("text", "")
        for output in executed.cells[index].get("outputs", [])
        if output.output_type == "stream"
    )
    assert printed.strip(), f"{path.name}: the '{SHOWED}' cell printed nothing"
    case = CASE_NOTEBOOKS.get(path.stem)
    if case is not None:  # the four case notebooks print their cell of the 2x2
        everything = "".join(
            output.get("text", "")
            for cell in executed.cells
            if cell.cell_type == "code"
            for output in cell.get("outputs", [])
        )
        size, similarity = case
        assert f"The measured 2x2 table, case {size} (" in everything
        assert f"), {similarity} (" in everything
    # A quick run's header says so: its numbers are a smoke test, not results.
    assert "**This run:** quick mode on " in executed.cells[0].source
    assert "**This run:** full mode" not in executed.cells[0].source
