"""Execute the tlrecipes notebooks top to bottom, in quick or full mode.

Quick mode (the default) is the CI smoke run: `TLRECIPES_QUICK=1` shrinks every
run-length knob in each notebook's Parameters cell, so a notebook executes in
about a minute on a 2-core CPU. Its outputs are not results: write them to a
scratch folder (`--out`), never over the committed notebooks. The executed
copy's header says `**This run:** quick mode ...` so it never passes for the
full run.

Full mode (`--full`) is the run whose outputs get committed. After each
notebook finishes, the runner replaces the header line `**This run:** ...`
with what actually ran: the device (GPU name, or CPU model and core count),
the Keras backend, the mode, the measured duration and the slowest sections
(from the timestamps nbclient records in each cell), so a reader knows where
the time goes before running anything. Nobody writes that line by hand.

Only `nbclient`, `nbformat`, `jupyter_client` and `ipykernel` are needed (no
Jupyter server, no `jupyter` command): the notebooks run in a `python3`
kernel started with this very interpreter, whatever kernelspecs the machine
has registered.

Usage:

    # CI: every notebook in quick mode, executed copies in /tmp/nb (committed
    # files untouched), 300 s per cell at most
    python notebooks/run_notebooks.py --quick --out /tmp/nb --timeout 300

    # The committed outputs: full mode on a GPU, in place, three notebooks at
    # a time (JAX preallocation off, a third of the GPU memory each)
    KERAS_BACKEND=jax python notebooks/run_notebooks.py --full --jobs 3

    # One notebook
    python notebooks/run_notebooks.py notebooks/07_was_it_really_transfer.ipynb

    # Name the slowest sections of notebooks already executed in full mode
    # (read from the timestamps their cells recorded; nothing is run)
    python notebooks/run_notebooks.py --restamp notebooks/08_*.ipynb

Exit status 0 when every notebook ran, 1 when any failed (a failed notebook's
partial outputs are still written, so the failing cell can be read).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

NOTEBOOK_DIR = Path(__file__).resolve().parent
#: The header line the runner owns; notebooks ship it as "not executed yet."
RUN_LINE = re.compile(r"^\*\*This run:\*\*.*$", re.MULTILINE)
NOT_EXECUTED = "**This run:** not executed yet."


@dataclass
class Outcome:
    """What happened to one notebook."""

    notebook: str
    output: str
    ok: bool
    seconds: float
    error: str = ""


def find_notebooks(paths: list[str] | None = None) -> list[Path]:
    """The notebooks to run: the given paths, or every `NN_*.ipynb` in order.

    A `.py` path is mapped to its paired `.ipynb`.
    """
    if not paths:
        return sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
    found = []
    for name in paths:
        path = Path(name)
        if path.suffix == ".py":
            path = path.with_suffix(".ipynb")
        if not path.exists():
            raise SystemExit(
                f"No notebook at {path}. Fix: pass an .ipynb path (or its paired "
                f".py), e.g. {NOTEBOOK_DIR.name}/05_transferability_by_layer.ipynb."
            )
        found.append(path)
    return found


def keras_backend() -> str:
    """The Keras backend the kernel will use, read without importing Keras."""
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    try:
        return json.loads((home / "keras.json").read_text())["backend"]
    except (OSError, ValueError, KeyError):
        return "tensorflow"


def device_name() -> str:
    """The GPU name (nvidia-smi), else the CPU model and its core count."""
    if shutil.which("nvidia-smi"):
        try:
            names = subprocess.run(
                ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=20,
                check=True,
            ).stdout.split("\n")
            names = [n.strip() for n in names if n.strip()]
            if names:
                count = f"{len(names)} x " if len(names) > 1 else "1 x "
                return f"{count}{names[0]} GPU"
        except (OSError, subprocess.SubprocessError):
            pass
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    cores = cores or os.cpu_count()
    return f"{model} CPU ({cores} cores), no GPU"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def code_commit(root: Path = NOTEBOOK_DIR.parent) -> tuple[str | None, list[str]]:
    """The short commit of the checkout holding `root`, and its changed sources.

    Output folders (`reports/`, `runs/`, `benchmarks/results/`) and the
    notebooks' own `.ipynb` files (which a full run rewrites) do not count as
    changes. Outside a git checkout: `(None, [])`.
    """
    commit = _git(root, "rev-parse", "--short", "HEAD")
    status = _git(root, "status", "--porcelain")
    if commit is None or status is None:
        return None, []
    commit = commit.strip()
    changed = [line[3:] for line in status.splitlines() if line.strip()]
    outputs = ("reports/", "runs/", "benchmarks/results/")
    changed = [
        path
        for path in changed
        if not path.startswith(outputs)
        and not (path.startswith("notebooks/") and path.endswith(".ipynb"))
        and not _only_run_line_changed(root, path)
    ]
    return commit or None, changed


def _git(root: Path, *args: str) -> str | None:
    """The output of `git <args>` run in `root`, or None if git failed."""
    try:
        return subprocess.run(
            ["git", *args],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None


def _only_run_line_changed(root: Path, path: str) -> bool:
    """Whether `path` is a paired notebook script whose only change is the
    `# **This run:**` line that an earlier full run stamped."""
    if not (path.startswith("notebooks/") and path.endswith(".py")):
        return False
    # `path` is relative to the top of the checkout (as `git status` prints
    # it), whatever folder of it `root` is.
    diff = _git(root, "diff", "--unified=0", "HEAD", "--", f":(top){path}")
    if diff is None:
        return False
    edits = [
        line[1:]
        for line in diff.splitlines()
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    return bool(edits) and all(SCRIPT_RUN_LINE.match(line) for line in edits)


def run_line(
    mode: str, seconds: float, device: str, backend: str, commit: str | None = None
) -> str:
    """The header line a finished run stamps into the notebook."""
    today = dt.date.today().isoformat()
    at = f"code at commit {commit}, " if commit else ""
    line = (
        f"**This run:** {mode} mode on {device}, Keras backend `{backend}`, "
        f"{at}{_duration(seconds)} of execution ({today})."
    )
    if mode == "quick":
        line += " Quick mode is a smoke test (TLRECIPES_QUICK=1): its numbers are "
        line += "not results."
    return line


#: The same line in a jupytext percent script, where markdown is commented.
SCRIPT_RUN_LINE = re.compile(r"^# \*\*This run:\*\*.*$", re.MULTILINE)


def stamp_script(text: str, line: str) -> str:
    """`text` (a paired .py) with its `# **This run:**` line replaced by `line`."""
    return SCRIPT_RUN_LINE.sub(lambda _: f"# {line}", text, count=1)


#: What `with_timings` appends to a run line (and `--restamp` replaces).
TIMINGS = "; the slowest parts: "


def section_seconds(nb) -> dict[str, float]:
    """Seconds spent in each `## ` section of an executed notebook, in order.

    Read from the timestamps nbclient records in each code cell's metadata
    (`iopub.execute_input` to `shell.execute_reply`); code before the first
    `## ` heading counts as "set-up". Cells without timestamps count zero.
    """
    seconds: dict[str, float] = {}
    section = "set-up"
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            heading = next(
                (ln for ln in cell.source.splitlines() if ln.startswith("## ")), None
            )
            if heading is not None:
                section = heading[3:].strip()
            continue
        times = cell.get("metadata", {}).get("execution", {})
        begin, end = times.get("iopub.execute_input"), times.get("shell.execute_reply")
        if cell.cell_type != "code" or not begin or not end:
            continue
        took = dt.datetime.fromisoformat(end) - dt.datetime.fromisoformat(begin)
        seconds[section] = seconds.get(section, 0.0) + took.total_seconds()
    return seconds


def with_timings(line: str, nb, top: int = 3, at_least: float = 10.0) -> str:
    """`line` with the `top` slowest sections (each over `at_least` s) appended."""
    line = line.split(TIMINGS)[0].rstrip(".")
    slow = sorted(section_seconds(nb).items(), key=lambda item: -item[1])[:top]
    slow = [(name, s) for name, s in slow if s >= at_least]
    if not slow:
        return line + "."
    parts = ", ".join(
        f"'{name if len(name) <= 48 else name[:47] + '…'}' {_duration(s)}"
        for name, s in slow
    )
    return f"{line}{TIMINGS}{parts}."


def stamp(nb, line: str) -> bool:
    """Replaces the `**This run:**` line of the first markdown cell; True if found."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            source, count = RUN_LINE.subn(line, cell.source, count=1)
            cell.source = source
            return count == 1
    return False


def _kernel_dir() -> Path:
    """A kernelspec folder whose `python3` kernel is this interpreter.

    A machine may register `python3` for another Python (without the
    project's packages) or none at all; pointing the kernel manager at this
    folder makes the notebooks run with `sys.executable` either way.
    """
    folder = Path(tempfile.mkdtemp(prefix="tlrecipes-kernels-"))
    spec = folder / "python3"
    spec.mkdir()
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": argv,
                "display_name": "Python 3 (tlrecipes)",
                "language": "python",
            }
        )
    )
    return folder


def _environment(quick: bool, jobs: int, memory_fraction: float | None) -> None:
    """Sets, in this (worker) process, what the kernel will inherit."""
    os.environ["MPLBACKEND"] = "Agg"
    os.environ["TLRECIPES_QUICK"] = "1" if quick else "0"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    if jobs > 1 or memory_fraction is not None:
        # Several notebooks share one GPU: no process may grab it all.
        fraction = memory_fraction or round(0.9 / jobs, 3)
        os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
        os.environ["XLA_PYTHON_CLIENT_MEM_FRACTION"] = f"{fraction:.3f}"
        os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")


def execute(
    notebook: str | os.PathLike,
    output: str | os.PathLike | None = None,
    *,
    quick: bool = True,
    timeout: int = 600,
    jobs: int = 1,
    memory_fraction: float | None = None,
    commit: str | None = None,
) -> Outcome:
    """Executes one notebook in a fresh `python3` kernel and writes the result.

    Args:
        notebook: The `.ipynb` to run; it is read, never modified unless
            `output` is the same path.
        output: Where to write the executed notebook. Defaults to None: the
            notebook itself (in place).
        quick: Quick mode (`TLRECIPES_QUICK=1`); False runs full mode and
            stamps the header line. Defaults to True.
        timeout: Seconds one cell may run before it fails. Defaults to 600.
        jobs: How many notebooks run side by side (sets the GPU memory share
            of each). Defaults to 1.
        memory_fraction: GPU memory fraction per process for JAX. Defaults to
            None: 0.9 / jobs when jobs > 1, else JAX's own default.
        commit: The code's commit, named in a full run's header line.
            Defaults to None (not named).

    Returns:
        An `Outcome` (notebook, output, ok, seconds, error).
    """
    import nbformat
    from jupyter_client import KernelManager
    from jupyter_client.kernelspec import KernelSpecManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError

    saved_environment = dict(os.environ)
    _environment(quick, jobs, memory_fraction)  # inherited by the kernel
    notebook = Path(notebook)
    output = Path(output) if output is not None else notebook
    nb = nbformat.read(notebook, as_version=4)
    kernel_dir = _kernel_dir()
    km = KernelManager(
        kernel_name="python3",
        kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernel_dir)]),
    )
    client = NotebookClient(
        nb,
        km=km,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(notebook.parent.resolve())}},
    )
    start = time.perf_counter()
    error = ""
    try:
        client.execute()
    except (CellExecutionError, CellTimeoutError) as err:
        error = str(err)
    except Exception as err:  # kernel died, could not start, ...
        error = f"{type(err).__name__}: {err}"
    finally:
        try:
            if km.has_kernel:
                km.shutdown_kernel(now=True)
        except Exception:  # noqa: BLE001 - best effort cleanup
            pass
        shutil.rmtree(kernel_dir, ignore_errors=True)
        os.environ.clear()
        os.environ.update(saved_environment)
    seconds = time.perf_counter() - start
    if quick:
        # The header must not claim the full run's results for quick numbers:
        # the executed copy says what it is (the paired .py is left alone).
        stamp(nb, run_line("quick", seconds, device_name(), keras_backend()))
    if not error and not quick:
        line = run_line("full", seconds, device_name(), keras_backend(), commit)
        line = with_timings(line, nb)
        if not stamp(nb, line):
            error = f"{notebook.name} has no '**This run:**' line in its header."
        # The paired .py (the source of truth) carries the same stamp, so the
        # pair stays in sync; for a copy elsewhere, write a .py beside it.
        script = notebook.with_suffix(".py")
        if not error and script.exists():
            text = stamp_script(script.read_text(), line)
            output.with_suffix(".py").parent.mkdir(parents=True, exist_ok=True)
            output.with_suffix(".py").write_text(text)
    output.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, output)
    return Outcome(str(notebook), str(output), not error, seconds, error)


def _job(args: tuple) -> Outcome:
    notebook, output, quick, timeout, jobs, fraction, commit = args
    return execute(
        notebook,
        output,
        quick=quick,
        timeout=timeout,
        jobs=jobs,
        memory_fraction=fraction,
        commit=commit,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "notebooks", nargs="*", help="Notebooks to run (default: all NN_*.ipynb)."
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--quick",
        action="store_true",
        help="Quick mode, TLRECIPES_QUICK=1 (the default).",
    )
    mode.add_argument(
        "--full",
        action="store_true",
        help="Full mode; stamps device, backend and duration into the header.",
    )
    parser.add_argument(
        "--out",
        help="Folder for the executed notebooks (default: overwrite in place).",
    )
    parser.add_argument(
        "--timeout", type=int, default=600, help="Seconds per cell (default 600)."
    )
    parser.add_argument(
        "--jobs", type=int, default=1, help="Notebooks run in parallel (default 1)."
    )
    parser.add_argument(
        "--memory-fraction",
        type=float,
        default=None,
        help="GPU memory fraction per notebook for JAX (default 0.9 / jobs).",
    )
    parser.add_argument(
        "--allow-dirty",
        action="store_true",
        help="Full mode: run with uncommitted source changes (the header says so).",
    )
    parser.add_argument(
        "--restamp",
        action="store_true",
        help="Re-time already executed full runs: append the slowest sections, "
        "read from the cells' recorded timestamps, to their run lines; runs "
        "nothing.",
    )
    args = parser.parse_args(argv)
    if args.restamp:
        return restamp(find_notebooks(args.notebooks))
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1. Received: --jobs {args.jobs}.")
    quick = not args.full
    notebooks = find_notebooks(args.notebooks)
    if not notebooks:
        parser.error(f"No NN_*.ipynb notebooks found in {NOTEBOOK_DIR}.")
    if quick and args.out is None:
        print(
            "Note: quick-mode outputs are written in place; do not commit them "
            "(pass --out DIR to keep the committed notebooks clean).",
            file=sys.stderr,
        )
    commit = None
    if not quick:
        # Outputs that get committed name the code that made them: read once,
        # before the first notebook rewrites itself.
        commit, changed = code_commit(notebooks[0].parent)
        if changed and not args.allow_dirty:
            parser.error(
                "--full needs a clean checkout, so the header can name the commit "
                f"that made the outputs. Received: {len(changed)} changed path(s), "
                f"e.g. {changed[:3]}. Fix: commit them first, or pass --allow-dirty "
                "(the header then says '+dirty')."
            )
        if commit and changed:
            commit += "+dirty"
    work = []
    for path in notebooks:
        output = Path(args.out) / path.name if args.out else path
        work.append(
            (path, output, quick, args.timeout, args.jobs, args.memory_fraction, commit)
        )
    mode_name = "quick" if quick else "full"
    print(f"Running {len(work)} notebook(s) in {mode_name} mode, {args.jobs} at a time")
    start = time.perf_counter()
    outcomes = []
    if args.jobs == 1:
        for item in work:
            outcomes.append(_job(item))
            _report(outcomes[-1])
    else:
        # Separate processes: each sets its own environment for its kernel.
        with concurrent.futures.ProcessPoolExecutor(max_workers=args.jobs) as pool:
            futures = [pool.submit(_job, item) for item in work]
            for future in concurrent.futures.as_completed(futures):
                outcomes.append(future.result())
                _report(outcomes[-1])
    failed = [o for o in outcomes if not o.ok]
    total = time.perf_counter() - start
    print(
        f"{len(outcomes) - len(failed)}/{len(outcomes)} notebooks ran in "
        f"{_duration(total)} ({mode_name} mode)."
    )
    for outcome in failed:
        print(f"\nFAILED {outcome.notebook}:\n{outcome.error[-3000:]}", file=sys.stderr)
    return 1 if failed else 0


def restamp(notebooks: list[Path]) -> int:
    """Appends the slowest sections to the run line of executed full runs.

    The timings come from the timestamps the run recorded in its cells, so a
    notebook executed before the run line named them gets them without being
    run again. Notebooks not executed in full mode are left as they are.
    """
    import nbformat

    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        header = next((c for c in nb.cells if c.cell_type == "markdown"), None)
        found = RUN_LINE.search(header.source) if header is not None else None
        if found is None or "full mode" not in found.group(0):
            print(f"skipped {path.name}: no full-mode run line")
            continue
        line = with_timings(found.group(0), nb)
        stamp(nb, line)
        nbformat.write(nb, path)
        script = path.with_suffix(".py")
        if script.exists():
            script.write_text(stamp_script(script.read_text(), line))
        print(f"{path.name}: {line}")
    return 0


def _report(outcome: Outcome) -> None:
    status = "ok    " if outcome.ok else "FAILED"
    print(
        f"{status} {Path(outcome.notebook).name:45s} {outcome.seconds:7.1f} s "
        f"-> {outcome.output}",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
