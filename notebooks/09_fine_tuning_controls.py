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
# **Description:** On the two large offline targets, plain two-phase fine-tuning is compared, from the same trained head, on a validation split and over five seeds, with plain fine-tuning at ten times the rate, ULMFiT's discriminative learning rates, gradual unfreezing and surgical fine-tuning of each block.
#
# **Accelerator:** CPU or GPU
#
# **Estimated time (full mode):** CPU ~21 min (2-core CPU, measured 2026-12-07 while a second notebook ran beside it), GPU ~3 min
#
# **Quick mode:** `TLRECIPES_QUICK=1` runs one seed, 30 training and 10 validation images per class and 1 + 3 epochs on 1,000 test images (about two minutes on a 2-core CPU); the numbers are then rough and the prose still applies.
#
# **This run:** full mode on AMD EPYC CPU (2 cores), no GPU, Keras backend `tensorflow`, code at commit 84bdade, 20 min 49 s of execution (2026-12-07); the slowest parts: 'The runs' 20 min 43 s.
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
# its seed and gets the same phase-2 budget and the same batches, so
# differences are paired by seed. A further arm, plain fine-tuning at ten
# times the rate, separates "the layers learn at different rates" from "the
# network learns faster overall". Each run ends on its best-validation epoch
# and its test accuracy is read once; the best method is picked on
# validation. `benchmarks/compare_finetune_controls.py` runs the same cells
# (`lab.finetune_controls_cell`) and writes `reports/finetune_controls/`.

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
import os
import time

import keras
import numpy as np
from matplotlib.figure import Figure

from tlrecipes import lab
from tlrecipes.lab.finetune_controls import FINE_TUNE_METHODS

START = time.perf_counter()
keras.utils.set_random_seed(0)
print("Keras", keras.version(), "backend:", keras.backend.backend())

# %% tags=["parameters"]
QUICK = os.environ.get("TLRECIPES_QUICK", "0") == "1"
# Both cases need a self-trained source and a target of the same image shape:
# the offline tasks (see notebook 08 for ImageNet backbones on tfds data).
DATA = os.environ.get("TLRECIPES_DATA", "offline")
# Training images per class of each target (the offline MNIST holds 400 per
# class: 350 train, 50 validate).
TASKS = {"offline": {"fashion_a_to_b": 500, "fashion_to_mnist": 350}}[DATA]
if QUICK:
    TASKS = {task: 30 for task in TASKS}
VAL_PER_CLASS = 10 if QUICK else 50
SEEDS = [0] if QUICK else [0, 1, 2, 3, 4]  # at least 5 on a CPU, 10 on a GPU
HEAD_EPOCHS = 1 if QUICK else 5  # phase 1 (full mode: over 200 steps)
FINE_TUNE_EPOCHS = 3 if QUICK else 6  # phase 2 budget of every method
FINE_TUNE_LR = 1e-4  # two_phase_fit's default
BATCH_SIZE = 32
TEST_IMAGES = 1000 if QUICK else None  # None: the whole official test split

# %% [markdown]
# ## The methods
#
# After phase 1 (the new head trained on the frozen base, as `two_phase_fit`
# does, ending on its best-validation epoch), each method gets
# `FINE_TUNE_EPOCHS` epochs. `lr` below is `FINE_TUNE_LR`.
#
# `discriminative_hi` and `plain_10x` share the head's rate; the first gives
# the blocks below it 2.6, 6.8 and 17.6 times smaller steps. If it beats
# `plain` only as much as `plain_10x` does, the gain is the higher rate, not
# the ratio between layers.

# %%
METHODS = list(FINE_TUNE_METHODS)
for method, what in FINE_TUNE_METHODS.items():
    print(f"{method:18s} {what}")

# %% [markdown]
# ## The runs
#
# One call per (task, seed): `lab.finetune_controls_cell` draws the
# validation and training images, trains the head, and runs every method
# from it.

# %%
rows = []
for task_name, n_per_class in TASKS.items():
    for seed in SEEDS:
        rows += lab.finetune_controls_cell(
            task_name,
            seed,
            n_per_class=n_per_class,
            val_per_class=VAL_PER_CLASS,
            head_epochs=HEAD_EPOCHS,
            fine_tune_epochs=FINE_TUNE_EPOCHS,
            lr=FINE_TUNE_LR,
            methods=METHODS,
            batch_size=BATCH_SIZE,
            test_images=TEST_IMAGES,
        )
        print(f"{task_name}, seed {seed}: done ({time.perf_counter() - START:.0f} s)")
print(f"{len(rows)} runs; test images per run: {rows[0]['n_test']}")

# %% [markdown]
# ## Results
#
# For each method: validation accuracy (what the pick sees) and test
# accuracy (mean ± std over seeds). The method with the best mean validation
# accuracy is picked per task; its paired comparison with `plain`, and every
# method's, is in *What this run showed*.

# %%
test = {t: lab.scores_by_seed(rows, arm="method", score="test_accuracy", task=t)
        for t in TASKS}  # fmt: skip
val = {t: lab.scores_by_seed(rows, arm="method", score="val_accuracy", task=t)
       for t in TASKS}  # fmt: skip
# Picked on validation; ties go to the method listed first (head_only, plain).
picked = {t: lab.pick_best(val[t]) for t in TASKS}
for task_name, n_per_class in TASKS.items():
    print(f"\n{task_name} ({n_per_class} images per class, {len(SEEDS)} seed(s))")
    print(f"  {'method':18s} {'validation %':>12s} {'test % (mean ± std)':>20s}")
    for method in METHODS:
        v = 100 * np.mean(list(val[task_name][method].values()))
        t = 100 * np.array(list(test[task_name][method].values()))
        spread = t.std(ddof=1) if len(t) > 1 else 0.0
        mark = "  <- picked on validation" if method == picked[task_name] else ""
        print(f"  {method:18s} {v:12.1f} {t.mean():13.1f} ± {spread:4.1f}{mark}")

# %%
fig = Figure(figsize=(11, 4.2), layout="constrained")
axes = fig.subplots(1, len(TASKS), squeeze=False)[0]
for ax, (task_name, n_per_class) in zip(axes, TASKS.items(), strict=True):
    scores = [100 * np.array(list(test[task_name][m].values())) for m in METHODS]
    means = [s.mean() for s in scores]
    stds = [s.std(ddof=1) if len(s) > 1 else 0.0 for s in scores]
    colors = ["0.6" if m in ("head_only", "plain") else "C0" for m in METHODS]
    colors[METHODS.index(picked[task_name])] = "C2"
    ax.bar(range(len(METHODS)), means, yerr=stds, color=colors, capsize=3)
    ax.axhline(means[METHODS.index("plain")], color="k", lw=0.8, ls="--",
               label="plain")  # fmt: skip
    low = min(m - s for m, s in zip(means, stds, strict=True))
    ax.set_ylim(max(0.0, low - 3), min(100.0, max(means) + max(stds) + 3))
    ax.set_xticks(range(len(METHODS)), METHODS, rotation=45, ha="right")
    ax.set_ylabel("test accuracy, % (mean ± std over seeds)")
    ax.set_title(f"{task_name}, {n_per_class}/class (green: picked on validation)")
    ax.legend(loc="lower right", fontsize="small")
lab.show(fig)

# %% [markdown]
# ## How to read it
#
# - **Gradual unfreezing** is ULMFiT's claim that opening the top first
#   protects the lower layers. An interval above zero against `plain`
#   supports it at this scale; an interval around zero says that six epochs
#   of plain fine-tuning at 1e-4 do not wreck the lower blocks anyway.
# - **Discriminative rates** at the head's rate (`discriminative`) give the
#   base *smaller* steps than `plain` does (the multipliers scale Adam's
#   update, and Adam does not care about the gradient's scale): if it falls
#   behind `plain`, the base needed its full rate. The last line per task of
#   *What this run showed* is the question the ratio stands on:
#   `discriminative_hi` against `plain_10x`, which differ only in the blocks'
#   slower rates. A tie or worse says the higher rate, not the ratio, is what
#   helped.
# - **Surgical fine-tuning** of one block: Lee et al. found the first block
#   best for corruptions and the last for label shifts. Clothes -> digits is a
#   shift of both kinds; if no single block comes close to `plain` there,
#   the shift needs more than one block. On the similar pair the head and the
#   last block are the candidates.
# - The distance from `head_only` to `plain` is the value of fine-tuning at
#   all; compare it with the differences between the controls.

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
    arms = test[task_name]
    lines += [
        f"{task_name}: picked on validation: {picked[task_name]}; each method "
        f"against plain (intervals corrected for {len(arms) - 1} comparisons)",
        lab.compare_to_baseline_or_note(arms, "plain"),
        lab.compare_or_note(
            arms["discriminative_hi"],
            arms["plain_10x"],
            name_a=f"{task_name}: discriminative_hi",
            name_b="plain_10x",
        ),
    ]
print(lab.what_this_run_showed(lines))


# %% [markdown]
# ## Exercises
#
# 1. Set `FINE_TUNE_EPOCHS = 12`. Does gradual unfreezing still help when
#    each stage gets four epochs, or does plain fine-tuning catch up?
# 2. ULMFiT's 2.6 came from language models. Copy
#    `lab.finetune_controls.fine_tune` into a cell and try
#    `tl.lr_multipliers(model, 10.0)` and `tl.lr_multipliers(model,
#    lowest=0.5)`: which spacing does best on each pair?
# 3. Set every size in `TASKS` to 20. Which control matters most when the
#    target is small, and does surgical fine-tuning of the head alone win
#    then?
# 4. Run `tl.lr_find` on the model after phase 1 and use its suggestion as
#    `FINE_TUNE_LR`. Does the ranking of the methods change?
# 5. Surgical fine-tuning for an input-level shift: add Gaussian noise to the
#    target images of `fashion_a_to_b` (a corruption, as in Lee et al.) and
#    compare `surgical_block1` with `surgical_block3`.


# %%
print(lab.run_footer(START, quick=QUICK))
