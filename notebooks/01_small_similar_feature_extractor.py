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
# # 01 Small data, similar problem: the frozen base as a feature extractor
#
# **Description:** With about 10 images per class of a task similar to the source, a frozen pretrained base with a new head is compared with training from scratch, fine-tuning everything, and two-phase fine-tuning.
#
# **Accelerator:** CPU or GPU
#
# **Estimated time (full mode):** CPU ~5 min (2-core CPU, measured 2026-12-07 while a second notebook ran beside it), GPU ~1 min
#
# **Quick mode:** `TLRECIPES_QUICK=1` runs two seeds, short runs and a 1,000-image test set (about a minute on a 2-core CPU); the numbers are then rough and the prose still applies.
#
# **This run:** full mode on AMD EPYC CPU (2 cores), no GPU, Keras backend `tensorflow`, code at commit 4e7e006, 5 min 14 s of execution (2026-12-07); the slowest parts: 'Four strategies, one budget' 5 min 06 s.
#
# The classic advice (the transfer-learning tutorial this project grew from,
# after CS231n's notes) for the first of the four cases:
#
# > Small Dataset, Similar Problem: Use the pre-trained model as a fixed
# > feature extractor. Our data is small so when fine-tuning the whole model,
# > we will lose the features learned from the pre-trained model.
#
# Two claims to test: (1) a frozen base with a new head beats training the
# same network from scratch on the small set, and (2) fine-tuning the whole
# model on so little data does worse than keeping it frozen. We measure four
# strategies on the same 50 images (10 per class), under the same budget of
# optimisation steps, with several seeds:
#
# | strategy | what trains |
# |---|---|
# | `scratch` | the same network, re-initialised, every layer |
# | `feature_extractor` | only the new head; the base is frozen (BatchNorm in inference mode) |
# | `fine_tune_all` | every layer from the start, starting from the pretrained weights |
# | `two_phase` | the head first (half the budget), then the whole base at a low rate (`two_phase_fit`) |
#
# Source: a small convnet trained on Fashion-MNIST's T-shirt/top, Trouser,
# Sandal, Shirt and Bag. Target: Pullover, Dress, Coat, Sneaker, Ankle boot.
# Tops and footwear are on both sides, which is what makes this pair
# "similar".

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
from IPython.display import display
from matplotlib.figure import Figure

from tlrecipes import lab

START = time.perf_counter()
keras.utils.set_random_seed(0)
print("Keras", keras.version(), "backend:", keras.backend.backend())


# %% tags=["parameters"]
QUICK = os.environ.get("TLRECIPES_QUICK", "0") == "1"
# "offline": Fashion-MNIST halves (no internet); "tfds": CIFAR-100 halves
# (downloads CIFAR-100 and trains the source model once).
DATA = os.environ.get("TLRECIPES_DATA", "offline")
TASK = {"offline": "fashion_a_to_b", "tfds": "cifar100_a_to_b"}[DATA]
SEEDS = [0, 1] if QUICK else [0, 1, 2, 3, 4]  # at least 5 on a CPU, 10 on a GPU
N_PER_CLASS = 10  # target training images per class
STRATEGIES = ["scratch", "feature_extractor", "fine_tune_all", "two_phase"]
EPOCHS = 10
MIN_STEPS = 60 if QUICK else 300  # optimisation steps of every run (batch 32)
CURVE_POINTS = 4 if QUICK else 10
# Validation images per class, drawn from the target's training pool and
# disjoint from the training sample: the learning curves are read on them and
# each run keeps its best-validation point; test is read once, on that model.
VAL_PER_CLASS = 10 if QUICK else 20
TEST_PER_CLASS = 200 if QUICK else None  # None: the whole official test split

# %% [markdown]
# ## Source model and target data


# %%


task = lab.get_task(TASK)
source = lab.get_source(TASK, quick=QUICK)
target = lab.target_arrays(task, TEST_PER_CLASS)
print(f"source test accuracy on its own task: {source.metrics['test_accuracy']:.3f}")
print(
    f"target: {N_PER_CLASS} training images per class (drawn per seed), "
    f"{len(target[2])} test images"
)

# %% [markdown]
# ## The data
#
# Before anything trains, look at it: random training images of each class,
# the source task's first, then the target's. What do the two share (shapes,
# strokes, textures) and what differs? That difference is the "similarity"
# the advice turns on.

# %%
display(
    lab.show(
        lab.plot_examples(
            task.source_data().x_train,
            task.source_data().y_train,
            class_names=task.source_classes,
            title=f"Source: {TASK}, the classes the source network learned",
        )
    )
)
display(
    lab.show(
        lab.plot_examples(
            target[0],
            target[1],
            class_names=task.target_classes,
            title=f"Target: {TASK}, the classes transferred to",
        )
    )
)


# %% [markdown]
# ## Four strategies, one budget
#
# `size_sweep` trains each strategy for each seed on the same balanced sample
# (each seed draws its own 10 images per class and its own head
# initialisation). `VAL_PER_CLASS` more images per class form a validation
# split: each run keeps the point of its curve that scores best on it, and
# the full test split is read once, on that model. All runs make the same
# number of optimisation steps: with 50 images an epoch is 2 steps, so the
# budget is set in steps (`TrainConfig.min_steps`), not epochs. A head on a
# frozen base trains at `head_lr` (1e-2), runs in which the base trains at
# `learning_rate` (1e-3), and the second phase of `two_phase` at
# `fine_tune_lr` (1e-4): the library's measured defaults, not tuned here.

# %%
CONFIG = lab.TrainConfig(
    epochs=EPOCHS,
    min_steps=MIN_STEPS,
    curve_points=CURVE_POINTS,
    val_per_class=VAL_PER_CLASS,
)
rows = lab.size_sweep(
    source,
    target,
    sizes=[N_PER_CLASS],
    strategies=STRATEGIES,
    seeds=SEEDS,
    config=CONFIG,
    progress=False,
)
summary = {
    r["strategy"]: r
    for r in lab.aggregate(rows, by=["strategy"], values=["accuracy", "train_accuracy"])
}
print(f"{'strategy':18s} {'test accuracy':>16s} {'train accuracy':>16s}")
for name in STRATEGIES:
    r = summary[name]
    print(
        f"{name:18s} {r['accuracy_mean']:.3f} ± {r['accuracy_std']:.3f}     "
        f"{r['train_accuracy_mean']:.3f} ± {r['train_accuracy_std']:.3f}"
    )
print(
    f"({len(SEEDS)} seed(s); train accuracy is Keras's running average over the "
    "last epoch, with dropout active)"
)

# %% [markdown]
# Differences are taken seed by seed (the strategies of one seed share the
# training sample), which removes the part of the spread that comes from
# which 50 images were drawn. `lab.compare` gives each its 95% interval and
# the verdict the interval supports (ahead, behind or tie). The case's
# question, asked in advance, is the advice against scratch; the two other
# transfer strategies are then each compared with the advice, a family of
# two whose intervals are corrected for it (`compare_to_baseline`).

# %%
arms = lab.scores_by_seed(rows)
case = lab.compare_or_note(
    arms["feature_extractor"],
    arms["scratch"],
    name_a="feature_extractor (this case's advice)",
    name_b="scratch",
)
against_frozen = lab.compare_to_baseline_or_note(
    {name: arms[name] for name in ["feature_extractor", "fine_tune_all", "two_phase"]},
    "feature_extractor",
)
print(case, *against_frozen, sep="\n")

def plot_strategy_curves(rows: list[dict], strategies: list[str], title: str) -> Figure:
    """Validation accuracy along training and final test accuracy, per strategy."""
    fig = Figure(figsize=(10.5, 3.8), layout="constrained")
    ax_curve, ax_bar = fig.subplots(1, 2, width_ratios=[1.6, 1])
    colors = {
        "scratch": "#555555",
        "feature_extractor": "#1f77b4",
        "fine_tune_all": "#ff7f0e",
        "two_phase": "#2ca02c",
    }
    for name in strategies:
        runs = [r for r in rows if r["strategy"] == name]
        steps = np.asarray(runs[0]["curve_steps"])
        acc = np.array([r["curve_accuracy"] for r in runs])
        mean = acc.mean(axis=0)
        std = acc.std(axis=0, ddof=1) if len(acc) > 1 else np.zeros_like(mean)
        color = colors.get(name)
        ax_curve.plot(steps, mean, marker="o", ms=3, label=name, color=color)
        ax_curve.fill_between(steps, mean - std, mean + std, alpha=0.15, color=color)
    ax_curve.set_xlabel("optimisation step")
    ax_curve.set_ylabel("validation accuracy")
    ax_curve.grid(alpha=0.3)
    ax_curve.legend(fontsize=8)
    ax_curve.set_title("learning curves (band: ±1 std over seeds)", fontsize=9)
    stats = {r["strategy"]: r for r in lab.aggregate(rows, by=["strategy"])}
    means = [stats[n]["accuracy_mean"] for n in strategies]
    stds = [stats[n]["accuracy_std"] for n in strategies]
    ax_bar.bar(
        range(len(strategies)),
        means,
        yerr=stds,
        capsize=4,
        color=[colors.get(n) for n in strategies],
    )
    for i, m in enumerate(means):
        ax_bar.text(i, m + 0.01, f"{m:.3f}", ha="center", va="bottom", fontsize=8)
    ax_bar.set_xticks(
        range(len(strategies)), [n.replace("_", "\n") for n in strategies], fontsize=8
    )
    ax_bar.set_ylim(0, 1)
    ax_bar.set_ylabel("test accuracy (best-validation point)")
    ax_bar.grid(axis="y", alpha=0.3)
    ax_bar.set_title("test accuracy, mean ± std", fontsize=9)
    fig.suptitle(title, fontsize=10)
    return fig


lab.show(
    plot_strategy_curves(
        rows,
        STRATEGIES,
        f"{task.name}: {N_PER_CLASS} images per class, {len(SEEDS)} seed(s)",
    )
)

# %% [markdown]
# ## Reading the results
#
# **Claim 1: a frozen base beats scratch.** The first printed difference,
# `feature_extractor - scratch`, answers it. If its verdict is "ahead", the
# features learned on the five source classes carry over to
# the five target classes even though no target class was ever seen in
# training: the edges, textures and shapes of clothing are shared.
#
# **Claim 2: fine-tuning everything on small data destroys the features.**
# Compare `fine_tune_all` with `feature_extractor`. The tutorial's argument is
# overfitting: 50 images cannot constrain 93,000 weights. Look at the train
# accuracy column: a run whose training accuracy is near 1.0 while its test
# accuracy is lower has memorised the sample. Whether that memorisation costs
# test accuracy compared with the frozen base is what the number says; in a
# network this small, with BatchNorm kept in inference mode and a moderate
# learning rate, it need not. If `fine_tune_all` is not below
# `feature_extractor` here, the advice is conservative rather than wrong:
# freezing is the choice that cannot go badly, not necessarily the best one.
#
# **Two-phase fine-tuning** trains the head first so that the first
# fine-tuning gradients are not random. Compared with the frozen base it
# spends half the budget adjusting the base at a low rate: if the difference
# is around zero, the extra phase neither helps nor hurts at this size.
#
# A note on the budget: with a frozen base only the 645 weights of the head
# train, so its curve flattens early; the runs that train the base keep
# climbing for longer. The curves show whether the budget was long enough for
# each strategy to settle (a curve still rising at the end means the final
# number understates that strategy).

# %% [markdown]
# ## This case in the measured 2x2 table
#
# The study (`tlrecipes study`) measures all four cases under one protocol:
# 5 seeds, validation split, every strategy against its from-scratch twin.
# Its cell for this case (small target data, similar problem) is printed
# below from the results shipped with the package, the same numbers as the
# README's table and `reports/study/REPORT.md`. This notebook's own run,
# above and below, uses its own settings: where the two differ, both are
# measurements, of different setups.

# %%
print(lab.study_cell("small", "similar"))


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
print(lab.what_this_run_showed([case, against_frozen]))


# %% [markdown]
# ## Exercises
#
# 1. Set `N_PER_CLASS` to 5 and to 50. At which size does `scratch` catch up
#    with `feature_extractor`?
# 2. Use `lab.TrainConfig(head_lr=1e-3)` (the Keras guide's default for the
#    head). How much does the frozen base lose, and why does a head on frozen
#    features need a larger step than a network trained from scratch?
# 3. Replace `fine_tune_all` by `freeze_1` and `freeze_2` (the first one or
#    two blocks frozen, the rest trained). Is there a depth that beats both
#    extremes?
# 4. Run the same notebook with `TASK = "fashion_to_mnist"` (clothes to
#    digits, a *different* problem). Which of the two claims still holds?
#    (Notebook 02 looks at that case.)
# 5. The train accuracy printed above includes dropout. Measure it without
#    dropout (`model.evaluate` on the training images) for one scratch run:
#    how large is the generalisation gap really?


# %%
print(lab.run_footer(START, quick=QUICK))
