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
# # 00 What transfers? Pretrained weights vs the same network from scratch
#
# **Description:** The same architecture trained on the target task twice, once from pretrained weights and once from a random initialisation, measured by Torrey & Shavlik's three benefits (higher start, higher slope, higher asymptote).
#
# **Accelerator:** CPU or GPU
#
# **Estimated time (full mode):** CPU ~13 min (2-core CPU, measured 2026-12-07 while a second notebook ran beside it), GPU ~2 min
#
# **Quick mode:** `TLRECIPES_QUICK=1` runs two seeds, one target size, short runs and a 1,000-image test set (about a minute on a 2-core CPU); the numbers are then rough and the prose still applies.
#
# **This run:** full mode on AMD EPYC CPU (2 cores), no GPU, Keras backend `tensorflow`, code at commit 84bdade, 13 min 24 s of execution (2026-12-07); the slowest parts: 'Pretrained weights vs random initialisation, al…' 9 min 32 s, 'Is it the architecture? Frozen random features …' 3 min 44 s.
#
# A student in a deep-learning course asked, in the course's forum:
#
# > Is it mostly the actual network architecture that is valuable rather than
# > the pre-trained weight of each layer? [...] I guess finding a better
# > starting point than simply initializing randomly is favourable?
#
# The answer given there was "you actually use the learned weights; copying
# only the architecture is not transfer learning". This notebook turns that
# answer into a measurement. We take one network, a small convnet trained on
# five Fashion-MNIST classes (the **source**: T-shirt/top, Trouser, Sandal,
# Shirt, Bag), and train it on the five other classes (the **target**:
# Pullover, Dress, Coat, Sneaker, Ankle boot) in two ways that differ in one
# thing only: the starting weights.
#
# - **pretrained**: start from the source weights, train every layer;
# - **scratch**: the same architecture, re-initialised (`scratch_twin`),
#   trained with the same data, optimizer, learning rate and number of steps.
#
# Whatever separates the two curves is what the weights carried.

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
# (downloads CIFAR-100 and trains the source model once, ~minutes on a GPU).
DATA = os.environ.get("TLRECIPES_DATA", "offline")
TASK = {"offline": "fashion_a_to_b", "tfds": "cifar100_a_to_b"}[DATA]
SEEDS = [0, 1] if QUICK else [0, 1, 2, 3, 4]  # at least 5 on a CPU, 10 on a GPU
# Target training images per class: a small and a larger set.
SIZES = [10] if QUICK else [10, 200]
# Every run gets at least MIN_STEPS optimisation steps (batch 32), and the
# test accuracy is measured CURVE_POINTS times along the way.
EPOCHS = 10
MIN_STEPS = 60 if QUICK else 300
CURVE_POINTS = 4 if QUICK else 10
# Test images per class (None: the whole official test split).
TEST_PER_CLASS = 200 if QUICK else None

# %% [markdown]
# ## The source model and the target data
#
# The source model is loaded the way `weights="imagenet"` loads ImageNet
# weights: `load_source_model` finds the model shipped with the package (or
# cached earlier) and checks its checksum. If none is stored it is trained
# once and cached (`train_source_model`); quick mode then trains a one-epoch
# source so CI stays fast.


# %%


task = lab.get_task(TASK)
source = lab.get_source(TASK, quick=QUICK)
target = lab.target_arrays(task, TEST_PER_CLASS)
print(task.description)
print(
    f"source: {source.info['data']['n_train']} training images, test accuracy "
    f"{source.metrics['test_accuracy']:.3f} on its own task"
)
print(
    f"target: {len(target[0])} training images available, {len(target[2])} "
    f"test images, classes {task.target_classes}"
)
source.base.summary()

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
# Every run below trains under the same budget (`TrainConfig`): the same batch
# size and at least `MIN_STEPS` optimisation steps. Budgeting in steps rather
# than epochs matters: with 10 images per class and batch size 32 an "epoch"
# is two steps.
#
# This notebook reads its learning curves on the test split, because the
# curves are what it shows: it compares fixed arms and picks nothing, so no
# choice depends on those reads. Notebooks that choose (a strategy, a depth, a
# checkpoint) hold out a validation split and choose on it (01, 05, 06).

# %%
CONFIG = lab.TrainConfig(epochs=EPOCHS, min_steps=MIN_STEPS, curve_points=CURVE_POINTS)
print(CONFIG)

# %% [markdown]
# ## Pretrained weights vs random initialisation, all layers trained
#
# `transfer_vs_scratch` trains the transfer model (`strategy="fine_tune_all"`:
# start from the source weights, every layer trains from the first step; a
# new head is added on top) and its from-scratch twin, for every seed; each
# seed draws its own training sample and its own initialisation. It returns
# the learning curves and the three benefits of Torrey & Shavlik for each seed:
#
# - **jumpstart**: the gap at the first measurement (after a tenth of the
#   budget): a higher start;
# - **area**: the average gap over the whole run (area between the curves
#   divided by its length): a higher slope;
# - **final**: the gap at the end: a higher asymptote;
# - **threshold speed-up**: how many times sooner the transfer model reaches
#   the accuracy the scratch model ends with.

# %%
comparisons = {}
for n in SIZES:
    comparisons[n] = lab.transfer_vs_scratch(
        source,
        target,
        strategy="fine_tune_all",
        n_per_class=n,
        seeds=SEEDS,
        config=CONFIG,
        progress=False,
    )


def mean_std(summary: dict, key: str) -> str:
    return f"{summary[key + '_mean']:+.3f} ± {summary[key + '_std']:.3f}"


for n, comparison in comparisons.items():
    s = comparison.summary
    print(f"--- {n} images per class, {s['final_difference_n']} seed(s) ---")
    print(
        f"  final accuracy: pretrained {s['transfer_accuracy_mean']:.3f} ± "
        f"{s['transfer_accuracy_std']:.3f}, scratch "
        f"{s['scratch_accuracy_mean']:.3f} ± {s['scratch_accuracy_std']:.3f}"
    )
    print(f"  jumpstart (higher start):     {mean_std(s, 'jumpstart')}")
    print(f"  area/avg gap (higher slope):  {mean_std(s, 'auc_difference')}")
    print(f"  final gap (higher asymptote): {mean_std(s, 'final_difference')}")
    speedup = s["threshold_speedup_mean"]
    print(
        f"  reaches scratch's final accuracy {speedup:.1f}x sooner "
        f"({s['threshold_speedup_n']} of {len(SEEDS)} seeds reach it)"
    )

# %% [markdown]
# The figure shows both learning curves (mean over seeds, band = ±1 standard
# deviation) with the three benefits drawn on them: the arrow on the left is
# the jumpstart, the green (or red) area the gap over training, the arrow on
# the right the final gap; the stars mark where each curve first reaches the
# dotted threshold (the scratch model's final accuracy).

# %%
fig = Figure(figsize=(6.4 * len(SIZES), 4.4), layout="constrained")
axes = fig.subplots(1, len(SIZES), squeeze=False)[0]
for ax, (n, comparison) in zip(axes, comparisons.items(), strict=True):
    lab.plot_transfer_vs_scratch(
        comparison, labels=("pretrained init", "scratch (same architecture)"), ax=ax
    )
    ax.set_title(f"{n} images per class\n" + ax.get_title(), fontsize=9)
lab.show(fig)

# %% [markdown]
# How to read it. If the pretrained curve starts far above the scratch curve
# and the gap narrows later, the weights bought mostly *speed*: the scratch
# model gets there too, given the same data and enough steps (He et al. 2019
# found the same for ImageNet pretraining with enough target data). If the
# gap is still there at the end, the weights also bought a *better
# asymptote*, which is what happens when the target data is too small to
# learn good features from. Compare the two panels: the printed numbers say
# how each benefit changes from the small to the larger target set.

# %%
if len(SIZES) > 1:
    small, large = (comparisons[n].summary for n in (SIZES[0], SIZES[-1]))
    for key, name in [
        ("jumpstart", "jumpstart"),
        ("auc_difference", "average gap"),
        ("final_difference", "final gap"),
    ]:
        print(
            f"{name:12s}: {small[key + '_mean']:+.3f} at {SIZES[0]}/class -> "
            f"{large[key + '_mean']:+.3f} at {SIZES[-1]}/class"
        )

# %% [markdown]
# ## Is it the architecture? Frozen random features vs frozen pretrained features
#
# The scratch twin already has the architecture, so the gap above is the
# weights' doing. One more way to separate the two: freeze the base and train
# only a new head on top, once with the pretrained base and once with a
# randomly initialised one. A frozen random convnet is not useless (random
# convolution features are a known, surprisingly decent baseline); what the
# pretrained weights add on top of it is what was *learned* on the source.

# %%
keras.utils.set_random_seed(0)
random_base = lab.small_convnet(
    source.base.input_shape[1:],
    blocks=source.config.blocks,
    width=source.config.width,
    bn_momentum=source.config.bn_momentum,
    name="random_convnet",
)
probe_rows = []
for name, base in [("pretrained base", source), ("random base", random_base)]:
    rows = lab.size_sweep(
        base,
        target,
        sizes=[SIZES[0]],
        strategies=["feature_extractor"],
        seeds=SEEDS,
        config=CONFIG,
        progress=False,
    )
    probe_rows += [{**r, "base": name} for r in rows]
probe = {r["base"]: r for r in lab.aggregate(probe_rows, by=["base"])}
for name, r in probe.items():
    print(
        f"frozen {name:16s} + new head: {r['accuracy_mean']:.3f} ± "
        f"{r['accuracy_std']:.3f} ({r['accuracy_n']} seeds, {SIZES[0]}/class)"
    )
gap = [
    a["accuracy"] - b["accuracy"]
    for a, b in zip(
        [r for r in probe_rows if r["base"] == "pretrained base"],
        [r for r in probe_rows if r["base"] == "random base"],
        strict=True,
    )
]
print(
    f"learned weights add {np.mean(gap):+.3f} ± "
    f"{np.std(gap, ddof=1) if len(gap) > 1 else 0.0:.3f} over the bare architecture"
)

# %%
fig = Figure(figsize=(5.6, 3.6), layout="constrained")
ax = fig.subplots()
labels = [
    "scratch\n(all layers)",
    "pretrained init\n(all layers)",
    "frozen random\n+ head",
    "frozen pretrained\n+ head",
]
s = comparisons[SIZES[0]].summary
means = [
    s["scratch_accuracy_mean"],
    s["transfer_accuracy_mean"],
    probe["random base"]["accuracy_mean"],
    probe["pretrained base"]["accuracy_mean"],
]
stds = [
    s["scratch_accuracy_std"],
    s["transfer_accuracy_std"],
    probe["random base"]["accuracy_std"],
    probe["pretrained base"]["accuracy_std"],
]
colors = ["#555555", "#1f77b4", "#aaaaaa", "#6fa8dc"]
ax.bar(labels, means, yerr=stds, capsize=4, color=colors)
for i, m in enumerate(means):
    ax.text(i, m + 0.01, f"{m:.3f}", ha="center", va="bottom", fontsize=8)
ax.set_ylabel("test accuracy")
ax.set_ylim(0, 1)
ax.set_title(
    f"{SIZES[0]} target images per class, mean ± std over {len(SEEDS)} seed(s)",
    fontsize=9,
)
ax.grid(axis="y", alpha=0.3)
lab.show(fig)

# %% [markdown]
# ## What we learned
#
# - The fair comparison for any transfer claim is the same network,
#   re-initialised and trained the same way. Everything in this notebook is
#   measured against that twin.
# - Look at the printed benefits: a positive jumpstart and average gap with a
#   final gap that shrinks as the target grows means the pretrained weights
#   are mostly a better *starting point* (the student's guess); a final gap
#   that stays positive at small sizes means they also carry features the
#   small target set cannot teach.
# - The frozen-base comparison isolates the weights from the architecture:
#   the difference between the two frozen bases is what training on the
#   source taught the network.
# - *What this run showed*, below, gives each of these differences with its
#   interval over seeds and the verdict it supports (ahead, behind or tie).
#
# The next notebooks take the four cases of the classic advice one by one
# (small or large target data, similar or different problem).


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
def first_point(rows: list[dict], strategy: str) -> dict:
    """{seed: test accuracy at the first measurement} of one strategy."""
    runs = [r for r in rows if r["strategy"] == strategy]
    return {r["seed"]: r["curve_accuracy"][0] for r in runs}


lines = []
for n, comparison in comparisons.items():
    final = lab.scores_by_seed(comparison.rows)
    lines += [
        lab.compare_or_note(
            first_point(comparison.rows, "fine_tune_all"),
            first_point(comparison.rows, "scratch"),
            name_a=f"pretrained, first point ({n}/class)",
            name_b="scratch twin",
        ),
        lab.compare_or_note(
            final["fine_tune_all"],
            final["scratch"],
            name_a=f"pretrained, final ({n}/class)",
            name_b="scratch twin",
        ),
    ]
frozen = lab.scores_by_seed(probe_rows, arm="base")
lines.append(
    lab.compare_or_note(
        frozen["pretrained base"],
        frozen["random base"],
        name_a=f"frozen pretrained + head ({SIZES[0]}/class)",
        name_b="frozen random + head",
    )
)
print(lab.what_this_run_showed(lines))


# %% [markdown]
# ## Exercises
#
# 1. Run the comparison with 5 and with 500 images per class (add them to
#    `SIZES`). At which size does the final gap stop being larger than its
#    standard deviation?
# 2. Use `strategy="feature_extractor"` or `"two_phase"` in
#    `transfer_vs_scratch`. Which of the three benefits changes most?
# 3. Use the other offline task, `"fashion_to_mnist"` (clothes to digits).
#    Are the benefits smaller for a less similar source?
# 4. The forum thread also asks about reusing weights between runs of a
#    hyperparameter search. Train the scratch model once, then use its base as
#    the "source" of a second run on the same data: how large is the jumpstart?
# 5. Halve `MIN_STEPS`. Which benefit grows and which shrinks, and why?


# %%
print(lab.run_footer(START, quick=QUICK))
