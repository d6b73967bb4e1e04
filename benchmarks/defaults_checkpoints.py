"""The saved state of a `choose_defaults.py` run, so a long run can span sessions.

A run's `--checkpoints` folder holds:

    plan.json            the plan it runs (a folder runs one plan only)
    rows.jsonl           one line per finished training run, appended as each
                         (task, size, seed) cell ends, with the commit that ran it
    test_scores.jsonl    one line per test read of a final model, so a later
                         summary never reads the same model's test split again
    TASK/SIZE/SEED/ARM-CONFIG.npz   each run's best-validation weights

`open_checkpoints` goes on with a stopped run (`--resume`). `reuse_cells` copies
the finished cells of another folder whose per-cell settings are the same, so a
plan grown by a task or a size retrains nothing already measured.
`carry_test_scores` brings in the test scores an earlier result read, matched to
the same final models, so "test read once per final model" holds across runs.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROWS_FILE = "rows.jsonl"
PLAN_FILE = "plan.json"
SCORES_FILE = "test_scores.jsonl"
#: What a (task, size, seed) cell's runs depend on besides its task, size and
#: seed. Two plans equal in these measure a shared cell the same way.
CELL_SETTINGS = (
    "quick", "val_per_class", "batch_size", "fine_tune_epochs", "min_fine_tune_steps",
    "min_head_steps",
    "head_epochs", "guide_epochs", "curve_points", "grids", "tuning_budget",
    "references",
)  # fmt: skip
RUN_KEY = ("task", "size", "seed", "arm", "config")
#: Settings that change the runs of some sizes only: cells whose every arm
#: trains the same epochs under both plans are the same measurement.
BY_SIZE = ("min_fine_tune_steps",)


def checkpoint_path(root: str, task: str, size: int, seed: int, arm: str, cid: str):
    """Where one run's best-validation weights are saved."""
    return Path(root) / task / str(size) / str(seed) / f"{arm}-{cid}.npz"


def run_key(row: dict) -> tuple:
    """Which run a row, a weights file or a test score belongs to (`RUN_KEY`)."""
    return tuple(row[k] for k in RUN_KEY)


def _score_entry(ckpt: str, key: tuple, accuracy, n_test, read_in) -> dict:
    return {**dict(zip(RUN_KEY, key)), "test_accuracy": accuracy, "n_test": n_test,
            "read_in": read_in, "weights": weights_digest(ckpt, key)}  # fmt: skip


def weights_digest(root: str, key: tuple) -> str:
    """SHA-256 of one run's saved weights: which model a test score belongs to."""
    return hashlib.sha256(checkpoint_path(root, *key).read_bytes()).hexdigest()


def _lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def _append(path: Path, rows: list[dict]) -> None:
    with open(path, "a") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def open_checkpoints(ckpt: str, plan: dict, resume: bool) -> list[dict]:
    """The rows an earlier run of the same plan saved in `ckpt`, if resuming.

    Every finished (task, size, seed) cell appends its rows to
    `ckpt/rows.jsonl`, so a run stopped part-way (or split over several
    sessions) goes on with `--resume` where it stopped. A folder that holds
    another plan, or a run started without `--resume`, is refused: nothing
    in it is overwritten.
    """
    folder = Path(ckpt)
    plan_file, rows_file = folder / PLAN_FILE, folder / ROWS_FILE
    if plan_file.exists():
        stored, ours = json.loads(plan_file.read_text()), json.loads(json.dumps(plan))
        if stored != ours:
            differ = sorted(k for k in {*stored, *ours} if stored.get(k) != ours.get(k))
            raise SystemExit(
                f"--checkpoints {ckpt} holds a run of another plan (differs in "
                f"{differ}). Fix: the same arguments as that run, or an empty folder."
            )  # fmt: skip
        if not resume:
            raise SystemExit(
                f"--checkpoints {ckpt} already holds a run of this plan. Fix: "
                "--resume to go on with it, or an empty folder."
            )
    elif resume and rows_file.exists():
        raise SystemExit(f"--checkpoints {ckpt} has rows but no {PLAN_FILE}.")
    folder.mkdir(parents=True, exist_ok=True)
    plan_file.write_text(json.dumps(plan))
    return _lines(rows_file)


def save_cell(ckpt: str, rows: list[dict], commit: str | None) -> None:
    """Appends one finished cell's rows, each tagged with the commit that ran it."""
    for row in rows:
        row["commit"] = commit
    _append(Path(ckpt) / ROWS_FILE, rows)


def _settings_differ(a: dict, b: dict) -> list[str]:
    a, b = json.loads(json.dumps(a)), json.loads(json.dumps(b))
    return [k for k in CELL_SETTINGS if a.get(k) != b.get(k)]


def reuse_cells(
    source: str,
    ckpt: str,
    plan: dict,
    done: list[dict],
    epochs_of: Callable[[dict, str, int], dict] | None = None,
) -> list[dict]:
    """Copies the cells of `plan` that the run in `source` finished into `ckpt`.

    Only cells of this plan's tasks, sizes and seeds that `ckpt` does not hold
    yet are copied: their rows (the commit that ran them kept), their weights
    and the test scores read of them. `source` is read, never changed. Refused
    when `source` measured its cells another way (`CELL_SETTINGS`) or on other
    data. A setting that changes only some sizes' runs (`BY_SIZE`, the phase-2
    floor) is allowed when `epochs_of(plan, arm, n_train)` says so: a cell is
    copied only where every arm trains the same epochs under both plans.
    Returns the copied rows, to add to `done`.
    """
    folder = Path(source)
    if not (folder / PLAN_FILE).exists():
        raise SystemExit(
            f"--reuse-cells {source} holds no {PLAN_FILE}: it is not the "
            "--checkpoints folder of a choose_defaults run. Fix: the folder that "
            "was passed as --checkpoints."
        )
    theirs = json.loads((folder / PLAN_FILE).read_text())
    differ = _settings_differ(theirs, plan)
    by_size = [k for k in differ if k in BY_SIZE and epochs_of is not None]
    differ = [k for k in differ if k not in by_size]
    shared = [t for t in plan["tasks"] if t in theirs["tasks"]]
    differ += [
        f"available[{t!r}]"
        for t in shared
        if theirs["available"].get(t) != plan["available"].get(t)
    ]
    if differ:
        raise SystemExit(
            f"--reuse-cells {source} measured its cells another way (differs in "
            f"{differ}). Fix: a folder run with the same settings, or no --reuse-cells."
        )

    def same_runs(row: dict) -> bool:
        return not by_size or all(
            epochs_of(theirs, arm, row["n_train"])
            == epochs_of(plan, arm, row["n_train"])
            for arm in plan["grids"]
        )

    held = {(r["task"], r["size"], r["seed"]) for r in done}
    wanted = {
        (task, size, seed)
        for task in plan["tasks"]
        for size in plan["sizes"][task]
        for seed in plan["seeds"]
    } - held
    rows = [r for r in _lines(folder / ROWS_FILE)
            if (r["task"], r["size"], r["seed"]) in wanted
            and same_runs(r)]  # fmt: skip
    for row in rows:
        key = run_key(row)
        src = checkpoint_path(source, *key)
        if not src.exists():
            raise SystemExit(f"--reuse-cells {source}: {src} is missing.")
        dst = checkpoint_path(ckpt, *key)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
    _append(Path(ckpt) / ROWS_FILE, rows)
    copied = {run_key(r) for r in rows}
    scores = [s for s in _lines(folder / SCORES_FILE)
              if run_key(s) in copied]  # fmt: skip
    _append(Path(ckpt) / SCORES_FILE, scores)
    return rows


def carry_test_scores(result_path: str, ckpt: str, plan: dict, rows: list[dict]) -> int:
    """Brings in the test scores an earlier result read of the runs in `rows`.

    A stored score is carried only for the same final model: same task, size,
    seed, arm and configuration, the same per-cell settings, and the same
    best-validation score. Returns how many were carried.
    """
    result = json.loads(Path(result_path).read_text())
    differ = _settings_differ(result["plan"], plan)
    if differ:
        raise SystemExit(
            f"--test-scores-from {result_path} measured its runs another way "
            f"(differs in {differ}). Fix: the result of a run with the same settings."
        )
    ours = {run_key(r): r for r in rows}
    held = set(load_test_scores(ckpt))
    carried = []
    for run in result["runs"]:
        key = run_key(run)
        if not run.get("test_reads") or key in held or key not in ours:
            continue
        if ours[key]["val_accuracy"] != run["val_accuracy"]:
            raise SystemExit(
                f"--test-scores-from {result_path}: run {key} has validation "
                f"{run['val_accuracy']} there and {ours[key]['val_accuracy']} here: "
                "not the same model. Fix: drop --test-scores-from."
            )
        carried.append(
            _score_entry(ckpt, key, run["test_accuracy"], run["n_test"],
                         result["provenance"]["describe"])
        )  # fmt: skip
    _append(Path(ckpt) / SCORES_FILE, carried)
    return len(carried)


def load_test_scores(ckpt: str) -> dict[tuple, dict[str, Any]]:
    """The latest test score read of each run in `ckpt`, by `RUN_KEY`.

    Each score names the weights it was read from (`weights`, a digest): a
    run trained again since (a cell rerun after a stop) no longer matches it.
    """
    return {run_key(s): s for s in _lines(Path(ckpt) / SCORES_FILE)}


def stored_test_score(ckpt: str, scores: dict, row: dict) -> dict[str, Any] | None:
    """The score read earlier of exactly this run's saved weights, if any."""
    key = run_key(row)
    stored = scores.get(key)
    if stored is None or stored["weights"] != weights_digest(ckpt, key):
        return None
    return stored


def save_test_score(ckpt: str, row: dict, read_in: str | None) -> None:
    """Records one test read, so no later summary reads that model again."""
    entry = _score_entry(ckpt, run_key(row), row["test_accuracy"], row["n_test"],
                         read_in)  # fmt: skip
    _append(Path(ckpt) / SCORES_FILE, [entry])
