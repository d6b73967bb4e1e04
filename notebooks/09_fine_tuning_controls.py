# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 09 Fine-tuning controls: discriminative rates, gradual unfreezing, surgical fine-tuning
#
# **Description:** On the two large offline targets, plain two-phase fine-tuning is compared, from the same trained head and over several seeds, with ULMFiT's discriminative learning rates, gradual unfreezing, surgical fine-tuning of each block, and plain fine-tuning at a ten times higher rate.
#
# **Accelerator:** CPU or GPU
#
# **Estimated time (full mode):** CPU ~15 min (2-core laptop), GPU ~3 min
#
# **Quick mode:** `TLRECIPES_QUICK=1` runs one seed, 60 images per class and 3 fine-tuning epochs (about two minutes on a 2-core CPU); the numbers are then rough and the prose still applies.
#
# **This run:** full mode on AMD EPYC CPU (2 cores), no GPU, Keras backend `tensorflow`, 20 min 45 s of execution (2026-12-02); the slowest parts: 'The methods' 20 min 23 s, 'set-up' 19 s.
#
# Keras has one learning rate per optimizer. fastai's `fine_tune` and the
# research behind it add three controls on top of "unfreeze and train at a
# low rate" (notebook 03):
#
# - **discriminative learning rates** (Howard & Ruder 2018, ULMFiT): each
#   lower group of layers learns at the rate of the group above divided by
#   2.6, because lower layers hold general features that should change least;
# - **gradual unfreezing** (ULMFiT): open the top block first, then one more
#   block at a time, so the lower layers only move once the upper ones fit;
# - **surgical fine-tuning** (Lee et al. 2023): tune only the block that
#   matches the kind of shift: early blocks for input-level shifts, later
#   blocks for feature-level shifts, the head for label shifts.
#
# Each claim is a hypothesis here, measured on the offline large/similar pair
# (Fashion-MNIST classes 0,1,5,6,8 -> 2,3,4,7,9) and large/different pair
# (clothes -> digits). Every method starts from the *same* phase-1 model of
# its seed and gets the same phase-2 budget, so differences are paired by
# seed. A fifth arm, plain fine-tuning at ten times the rate, separates "the
# layers learn at different rates" from "the network learns faster overall".
# `benchmarks/compare_finetune_controls.py` runs the same comparison at
# 500/400 images per class and writes `reports/finetune_controls/`.

# %%
# Colab only: install tlrecipes into the Colab runtime (does nothing elsewhere).
import subprocess
import sys

if "google.colab" in sys.modules:
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q",
         "tlrecipes[tensorflow,offline-data,imagenet] @ git+https://github.com/tlrecipes/tlrecipes"],
        check=True,
    )

# %%
import io
import os
import statistics
import time

import keras
import numpy as np
from IPython.display import Image
from matplotlib.figure import Figure

import tlrecipes as tl
from tlrecipes import lab

START = time.perf_counter()
keras.utils.set_random_seed(0)
print("Keras", keras.version(), "backend:", keras.backend.backend())


def show(fig: Figure) -> Image:
    """Displays a matplotlib Figure as a PNG under any backend (Agg included)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    return Image(data=buffer.getvalue())


# %% tags=["parameters"]
QUICK = os.environ.get("TLRECIPES_QUICK", "0") == "1"
# Both cases need a self-trained source and a target of the same image shape:
# the offline tasks (see notebook 08 for ImageNet backbones on tfds data).
DATA = os.environ.get("TLRECIPES_DATA", "offline")
TASKS = {"offline": ["fashion_a_to_b", "fashion_to_mnist"]}[DATA]
SEEDS = [0] if QUICK else [0, 1, 2]
N_PER_CLASS = 60 if QUICK else 400  # 400: every offline training digit
HEAD_EPOCHS = 1 if QUICK else 5  # phase 1 (full mode: over 200 steps)
FINE_TUNE_EPOCHS = 3 if QUICK else 6  # phase 2 budget of every method
FINE_TUNE_LR = 1e-4  # two_phase_fit's default
BATCH_SIZE = 32
TEST_IMAGES = 1000 if QUICK else None  # None: the whole official test split

# %% [markdown]
# ## The methods
#
# After phase 1 (the new head trained on the frozen base, as `two_phase_fit`
# does), each method gets `FINE_TUNE_EPOCHS` epochs:
#
# | method | what trains, at which rate |
# |---|---|
# | `plain` | everything but BatchNorm, at `FINE_TUNE_LR` (two_phase_fit's phase 2) |
# | `plain_10x` | the same at 10 x `FINE_TUNE_LR` |
# | `discriminative` | head at `FINE_TUNE_LR`, each block below / 2.6 (ULMFiT) |
# | `discriminative_10x` | head at 10 x `FINE_TUNE_LR`, each block below / 2.6 (fastai-style) |
# | `gradual` | block3 + head, then block2 too, then all, a third of the epochs each |
# | `surgical_<group>` | only that group (block1, block2, block3 or the head) |
#
# `discriminative_10x` and `plain_10x` share the head's rate; the first gives
# the blocks below it 2.6, 6.8 and 17.6 times smaller steps. If it beats
# `plain` only as much as `plain_10x` does, the gain is the higher rate, not
# the ratio between layers.

# %%
PHASE2 = [
    "plain",
    "plain_10x",
    "discriminative",
    "discriminative_10x",
    "gradual",
    "surgical_block1",
    "surgical_block2",
    "surgical_block3",
    "surgical_head",
]
FIT = {"batch_size": BATCH_SIZE, "verbose": 0}


def get_source(task_name: str) -> lab.SourceModel:
    """The shipped or cached source model; trained once if none is stored."""
    try:
        return lab.load_source_model(task_name)
    except FileNotFoundError:
        config = lab.SourceConfig(epochs=1) if QUICK else lab.SourceConfig()
        try:
            return lab.load_source_model(task_name, config)
        except FileNotFoundError:
            return lab.train_source_model(task_name, config)


def accuracy(model: keras.Model, x: np.ndarray, y: np.ndarray) -> float:
    hits = 0
    for i in range(0, len(x), 1000):
        out = keras.ops.convert_to_numpy(model(x[i : i + 1000], training=False))
        hits += int((out.argmax(-1) == y[i : i + 1000]).sum())
    return hits / len(x)


def fine_tune(model, method: str, x, y) -> None:
    """Phase 2 of one method, on a model whose head is already trained."""
    rate = FINE_TUNE_LR * (10 if method.endswith("_10x") else 1)
    if method.startswith(("plain", "discriminative")):
        multipliers = (
            tl.lr_multipliers(model, 2.6) if method.startswith("disc") else None
        )
        tl.two_phase_fit(
            model,
            x,
            y,
            head_epochs=0,
            fine_tune_epochs=FINE_TUNE_EPOCHS,
            fine_tune_lr=rate,
            lr_multipliers=multipliers,
            **FIT,
        )
    elif method == "gradual":
        tl.gradual_unfreeze_fit(
            model,
            x,
            y,
            epochs_per_stage=max(1, FINE_TUNE_EPOCHS // 3),
            learning_rate=rate,
            **FIT,
        )
    else:
        block = method.removeprefix("surgical_")
        tl.surgical_fit(
            model, x, y, block=block, epochs=FINE_TUNE_EPOCHS, learning_rate=rate,
            **FIT,
        )  # fmt: skip


rows = []
for task_name in TASKS:
    source = get_source(task_name)
    for seed in SEEDS:
        data = lab.get_task(task_name).target_subset(N_PER_CLASS, seed=seed)
        x, y = data.x_train.astype("float32") / 255.0, data.y_train
        x_test, y_test = data.x_test.astype("float32") / 255.0, data.y_test
        if TEST_IMAGES:
            x_test, y_test = x_test[:TEST_IMAGES], y_test[:TEST_IMAGES]
        keras.utils.set_random_seed(seed)
        model = tl.add_head(source.copy_base(), len(data.class_names))
        tl.two_phase_fit(
            model, x, y, head_epochs=HEAD_EPOCHS, fine_tune_epochs=0, seed=seed,
            **FIT,
        )  # fmt: skip
        after_head = [keras.ops.convert_to_numpy(v) for v in model.variables]
        rows.append(
            {"task": task_name, "seed": seed, "method": "head_only",
             "accuracy": accuracy(model, x_test, y_test)}
        )  # fmt: skip
        for method in PHASE2:
            for variable, value in zip(model.variables, after_head, strict=True):
                variable.assign(value)  # every method starts from the same head
            keras.utils.set_random_seed(seed + 1000)  # and sees the same batches
            fine_tune(model, method, x, y)
            rows.append(
                {"task": task_name, "seed": seed, "method": method,
                 "accuracy": accuracy(model, x_test, y_test)}
            )  # fmt: skip
        print(f"{task_name}, seed {seed}: done ({time.perf_counter() - START:.0f} s)")
print(f"{len(rows)} runs; test images per run: {len(y_test)}")

# %% [markdown]
# ## Results, paired by seed
#
# For each method: test accuracy (mean ± std over seeds) and its paired
# difference to `plain` (same seed, same phase-1 head, same batches), with
# the number of seeds on which it was ahead. With three seeds, a difference
# smaller than its spread is no result either way.

# %%
METHODS = ["head_only", *PHASE2]


def paired(task: str, method: str, reference: str = "plain") -> list[float]:
    def acc(m):
        return {
            r["seed"]: r["accuracy"]
            for r in rows
            if r["task"] == task and r["method"] == m
        }

    a, b = acc(method), acc(reference)
    return [100 * (a[s] - b[s]) for s in SEEDS]


def mean_std(values: list[float]) -> tuple[float, float]:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return statistics.mean(values), spread


summary = {}
for task_name in TASKS:
    print(f"\n{task_name} ({N_PER_CLASS} images per class, {len(SEEDS)} seed(s))")
    print(f"  {'method':20s} {'accuracy %':>14s} {'vs plain, points':>18s} ahead")
    for method in METHODS:
        accs = [
            100 * r["accuracy"]
            for r in rows
            if r["task"] == task_name and r["method"] == method
        ]
        diffs = paired(task_name, method)
        summary[task_name, method] = (mean_std(accs), mean_std(diffs))
        (m, s), (d, ds) = summary[task_name, method]
        ahead = sum(v > 0 for v in diffs)
        gap = "reference" if method == "plain" else f"{d:+6.1f} ± {ds:4.1f}"
        print(f"  {method:20s} {m:7.1f} ± {s:4.1f} {gap:>18s} {ahead}/{len(SEEDS)}")
    ratio = paired(task_name, "discriminative_10x", "plain_10x")
    d, ds = mean_std(ratio)
    print(f"  discriminative_10x - plain_10x (the ratio itself): {d:+.1f} ± {ds:.1f}")

# %%
fig = Figure(figsize=(11, 4.2), layout="constrained")
axes = fig.subplots(1, len(TASKS), squeeze=False)[0]
for ax, task_name in zip(axes, TASKS, strict=True):
    means = [summary[task_name, m][0][0] for m in METHODS]
    stds = [summary[task_name, m][0][1] for m in METHODS]
    colors = ["0.6" if m in ("head_only", "plain") else "C0" for m in METHODS]
    ax.bar(range(len(METHODS)), means, yerr=stds, color=colors, capsize=3)
    ax.axhline(summary[task_name, "plain"][0][0], color="k", lw=0.8, ls="--",
               label="plain")  # fmt: skip
    low = min(m - s for m, s in zip(means, stds, strict=True))
    ax.set_ylim(max(0.0, low - 3), min(100.0, max(means) + max(stds) + 3))
    ax.set_xticks(range(len(METHODS)), METHODS, rotation=45, ha="right")
    ax.set_ylabel("test accuracy, % (mean ± std over seeds)")
    ax.set_title(f"{task_name}, {N_PER_CLASS}/class")
    ax.legend(loc="lower right", fontsize="small")
show(fig)

# %% [markdown]
# ## How to read it
#
# - **Gradual unfreezing** is ULMFiT's claim that opening the top first
#   protects the lower layers. A positive paired difference on every seed
#   supports it at this scale; a difference within its spread says that six
#   epochs of plain fine-tuning at 1e-4 do not wreck the lower blocks anyway.
# - **Discriminative rates** at the head's rate (`discriminative`) give the
#   base *smaller* steps than `plain` does (the multipliers scale Adam's
#   update, and Adam does not care about the gradient's scale): if it falls
#   behind `plain`, the base needed its full rate. The last printed line per
#   task is the question the ratio stands on: `discriminative_10x` against
#   `plain_10x`, which differ only in the blocks' slower rates. Near zero or
#   below, the higher rate, not the ratio, is what helped.
# - **Surgical fine-tuning** of one block: Lee et al. found the first block
#   best for corruptions and the last for label shifts. Clothes -> digits is a
#   shift of both kinds; if no single block comes close to `plain` there,
#   the shift needs more than one block. On the similar pair the head and the
#   last block are the candidates.
# - The distance from `head_only` to `plain` is the value of fine-tuning at
#   all; compare it with the differences between the controls.

# %%
print(f"mode {'quick' if QUICK else 'full'}; {time.perf_counter() - START:.0f} s")

# %% [markdown]
# ## What this run showed
#
# One line per key comparison of this notebook, computed from the results
# above (nothing is retrained): the difference between two arms paired by
# seed, its 95% interval and the verdict `lab.compare` draws from the interval
# alone (ahead, behind or tie). Where several arms face one baseline, the
# intervals are corrected for their number (`compare_to_baseline`). A
# quick-mode run has one seed for most notebooks: its lines give the
# difference with no interval and no verdict.

# %%
lines = []
for task_name in TASKS:
    arms = lab.scores_by_seed(rows, arm="method", task=task_name)
    lines += [
        f"{task_name}: each method against plain "
        f"(intervals corrected for {len(arms) - 1} comparisons)",
        lab.compare_to_baseline_or_note(arms, "plain"),
        lab.compare_or_note(
            arms["discriminative_10x"],
            arms["plain_10x"],
            name_a=f"{task_name}: discriminative_10x",
            name_b="plain_10x",
        ),
    ]
print(lab.what_this_run_showed(lines))


# %% [markdown]
# ## Exercises
#
# 1. Set `FINE_TUNE_EPOCHS = 12`. Does gradual unfreezing still help when
#    each stage gets four epochs, or does plain fine-tuning catch up?
# 2. ULMFiT's 2.6 came from language models. Try `tl.lr_multipliers(model,
#    10.0)` and `tl.lr_multipliers(model, lowest=0.5)` in `fine_tune`: which
#    spacing does best on each pair?
# 3. Set `N_PER_CLASS = 20`. Which control matters most when the target is
#    small, and does surgical fine-tuning of the head alone win then?
# 4. Run `tl.lr_find` on the model after phase 1 and use its suggestion as
#    `FINE_TUNE_LR`. Does the ranking of the methods change?
# 5. Surgical fine-tuning for an input-level shift: add Gaussian noise to the
#    target images of `fashion_a_to_b` (a corruption, as in Lee et al.) and
#    compare `surgical_block1` with `surgical_block3`.
