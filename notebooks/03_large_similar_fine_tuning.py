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
# # 03 Large data, similar problem: two-phase fine-tuning, its learning rate, and the BatchNorm pitfall
#
# **Description:** With several hundred images per class of a similar task, a trained head is fine-tuned together with the base at learning rates from 1e-5 to 1e-1, and BatchNorm left in training mode is shown to make fit and evaluate disagree on the same data.
#
# **Accelerator:** CPU or GPU
#
# **Estimated time (full mode):** CPU ~19 min (2-core CPU, measured 2026-12-07 while a second notebook ran beside it), GPU ~2 min
#
# **Quick mode:** `TLRECIPES_QUICK=1` runs one seed, 100 images per class (20 for validation), three learning rates and short runs on a 1,000-image test set (about a minute on a 2-core CPU); the numbers are then rough and the prose still applies.
#
# **This run:** full mode on AMD EPYC CPU (2 cores), no GPU, Keras backend `tensorflow`, code at commit 3a5c4e5, 18 min 35 s of execution (2026-12-07); the slowest parts: '1. Phase 1 once, phase 2 at many learning rates' 13 min 10 s, '2. The BatchNorm pitfall: fit says one thing, e…' 5 min 18 s.
#
# The advice for the third of the four cases (from the transfer-learning
# tutorial this project grew from):
#
# > Large Dataset, Similar Problem: Fine-tune the pre-trained model. Because
# > the data is large, we can fine-tune the pre-trained model without
# > overfitting. [...] We should use a smaller learning rate for the
# > pre-trained model [...] we don't want to change its weights too much.
#
# The recipe is two-phase (`two_phase_fit`): train a new head on the frozen
# base, then unfreeze the base and continue at a low learning rate. This
# notebook measures three things about it:
#
# 1. what fine-tuning adds over the frozen base and over training from
#    scratch, at 500 images per class, with every choice (the epoch each
#    run keeps, the learning rate of each arm) made on a validation split
#    and the same number of learning rates tried for the scratch twin;
# 2. what "a low learning rate" means: the same trained head fine-tuned at
#    rates from 1e-5 to 1e-1, and how far the weights move;
# 3. the BatchNorm pitfall users report ("93% in fit, 25% in evaluate"): what
#    happens when BatchNorm runs in training mode in a "frozen" base, and the
#    fix.
#
# Source: a small convnet trained on Fashion-MNIST's T-shirt/top, Trouser,
# Sandal, Shirt and Bag; target: Pullover, Dress, Coat, Sneaker, Ankle boot.

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
import math
import os
import time

import keras
import numpy as np
from matplotlib.figure import Figure

import tlrecipes as tl
from tlrecipes import lab
from tlrecipes.freezing import is_batchnorm
from tlrecipes.optimizers import make_optimizer

START = time.perf_counter()
keras.utils.set_random_seed(0)
print("Keras", keras.version(), "backend:", keras.backend.backend())


# %% tags=["parameters"]
QUICK = os.environ.get("TLRECIPES_QUICK", "0") == "1"
# "offline": Fashion-MNIST halves (no internet); "tfds": CIFAR-100 halves
# (downloads CIFAR-100 and trains the source model once).
DATA = os.environ.get("TLRECIPES_DATA", "offline")
TASK = {"offline": "fashion_a_to_b", "tfds": "cifar100_a_to_b"}[DATA]
SEEDS = [0] if QUICK else [0, 1, 2, 3, 4]  # at least 5 on a CPU, 10 on a GPU
N_PER_CLASS = 100 if QUICK else 500  # target training images per class
# Validation images per class, drawn from the target's training pool and
# disjoint from the training sample: every choice (the epoch each run keeps,
# the best learning rate) is made on them; test is read once per final model.
VAL_PER_CLASS = 20 if QUICK else 100
BATCH_SIZE = 32
HEAD_EPOCHS = 2 if QUICK else 3  # phase 1: the head on the frozen base
FINE_TUNE_EPOCHS = 2 if QUICK else 5  # phase 2: everything but BatchNorm
HEAD_LR = 1e-2
FINE_TUNE_LRS = [1e-4, 1e-2, 1e-1] if QUICK else [1e-5, 1e-4, 1e-3, 1e-2, 1e-1]
# The scratch twin chooses from as many learning rates (the same budget).
SCRATCH_LRS = [3e-4, 1e-3, 3e-3] if QUICK else [1e-4, 3e-4, 1e-3, 3e-3, 1e-2]
# BatchNorm pitfall: a short schedule, as in the reports.
PITFALL_EPOCHS = 1 if QUICK else 2
PITFALL_BATCH_SIZES = [8, 64]
TEST_PER_CLASS = 200 if QUICK else None  # None: the whole official test split

# %% [markdown]
# ## Source model and target data


# %%
task = lab.get_task(TASK)
source = lab.get_source(TASK, quick=QUICK)
data = task.target_data()
_, _, x_test, y_test = lab.target_arrays(task, TEST_PER_CLASS)
x_test = x_test.astype("float32") / 255.0
NUM_CLASSES = len(task.target_classes)

# %%
def train_val_sample(seed: int) -> tuple[np.ndarray, ...]:
    """(x, y, x_val, y_val): N_PER_CLASS training and VAL_PER_CLASS validation
    images per class, disjoint, drawn with `seed` (the same draw `size_sweep`
    makes for the scratch twin), scaled to [0, 1]."""
    x_pool, y_pool, x_val, y_val = lab.train_val_split(
        data.x_train, data.y_train, VAL_PER_CLASS, seed=seed
    )
    x, y = lab.sample_per_class(x_pool, y_pool, N_PER_CLASS, seed)
    return x.astype("float32") / 255.0, y, x_val.astype("float32") / 255.0, y_val


def accuracy(model: keras.Model, x: np.ndarray, y: np.ndarray) -> float:
    logits = model.predict(x, batch_size=512, verbose=0)
    return float(np.mean(logits.argmax(-1) == y))


def compile_model(model: keras.Model, learning_rate: float) -> None:
    model.compile(
        optimizer=make_optimizer("adam", learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )


def fit_keep_best(model: keras.Model, x, y, x_val, y_val, epochs: int) -> float:
    """Trains `epochs` epochs, reading validation after each, and ends with the
    weights of the best-validation epoch. Returns that validation accuracy."""
    best, best_weights = -1.0, None
    for _ in range(epochs):
        model.fit(x, y, epochs=1, batch_size=BATCH_SIZE, verbose=0)
        val = accuracy(model, x_val, y_val)
        if val > best:
            best, best_weights = val, model.get_weights()
    model.set_weights(best_weights)
    return best


# %%
print(f"source test accuracy on its own task: {source.metrics['test_accuracy']:.3f}")
print(
    f"target: {N_PER_CLASS} training and {VAL_PER_CLASS} validation images per "
    f"class, {len(x_test)} test images; "
    f"{math.ceil(N_PER_CLASS * NUM_CLASSES / BATCH_SIZE)} steps per epoch"
)

# %% [markdown]
# ## 1. Phase 1 once, phase 2 at many learning rates
#
# For each seed, phase 1 trains a new head on the frozen base (`add_head`
# freezes it, BatchNorm in inference mode). Its weights are kept, and phase 2
# starts from exactly them for every learning rate: `freeze_until(model, 0)`
# unfreezes everything except BatchNorm, the model is recompiled (a change of
# `trainable` only takes effect at `compile`), and it trains for
# `FINE_TUNE_EPOCHS`. This is what `two_phase_fit` does, step by step, so the
# only difference between the runs is the fine-tuning rate. Every phase ends
# on its best-validation epoch (`fit_keep_best`), and each final model's test
# accuracy is read once.
#
# Besides test accuracy we record how far fine-tuning moved the pretrained
# convolution kernels: the relative distance ‖W − W_source‖ / ‖W_source‖,
# averaged over the three blocks.

# %%
SOURCE_KERNELS = {
    layer.name: np.asarray(layer.kernel)
    for layer in source.base.layers
    if isinstance(layer, keras.layers.Conv2D)
}


def kernel_drift(base: keras.Model) -> float:
    drifts = [
        np.linalg.norm(np.asarray(base.get_layer(name).kernel) - w) / np.linalg.norm(w)
        for name, w in SOURCE_KERNELS.items()
    ]
    return float(np.mean(drifts))


# %%
lr_rows = []
for seed in SEEDS:
    x, y, x_val, y_val = train_val_sample(seed)
    keras.utils.set_random_seed(seed)
    base = source.copy_base()
    model = tl.add_head(base, NUM_CLASSES)
    compile_model(model, HEAD_LR)
    head_val = fit_keep_best(model, x, y, x_val, y_val, HEAD_EPOCHS)
    head_weights = model.get_weights()
    lr_rows.append(
        {
            "seed": seed,
            "lr": None,
            "arm": "head only",
            "val_accuracy": head_val,
            "accuracy": accuracy(model, x_test, y_test),
            "drift": kernel_drift(base),
        }
    )
    for lr in FINE_TUNE_LRS:
        model.set_weights(head_weights)
        tl.freeze_until(model, 0)  # the whole base trains, BatchNorm stays frozen
        compile_model(model, lr)
        keras.utils.set_random_seed(seed)
        val = fit_keep_best(model, x, y, x_val, y_val, FINE_TUNE_EPOCHS)
        lr_rows.append(
            {
                "seed": seed,
                "lr": lr,
                "arm": f"fine-tuned at lr={lr:g}",
                "val_accuracy": val,
                "accuracy": accuracy(model, x_test, y_test),
                "drift": kernel_drift(base),
            }
        )
    print(f"seed {seed}: head only and {len(FINE_TUNE_LRS)} fine-tuning rates done")

# %% [markdown]
# The scratch twin gets the same total number of epochs (phase 1 + phase 2),
# every layer training, and the same tuning budget: it is trained at
# `len(SCRATCH_LRS)` learning rates, and its rate is picked on validation
# like the fine-tuning rate. Each run keeps its best-validation epoch.

# %%
scratch_rows = []
for lr in SCRATCH_LRS:
    runs = lab.size_sweep(
        source,
        (data.x_train, data.y_train, x_test, y_test),
        sizes=[N_PER_CLASS],
        strategies=["scratch"],
        seeds=SEEDS,
        config=lab.TrainConfig(
            epochs=HEAD_EPOCHS + FINE_TUNE_EPOCHS,
            min_steps=0,
            batch_size=BATCH_SIZE,
            curve_points=HEAD_EPOCHS + FINE_TUNE_EPOCHS,
            val_per_class=VAL_PER_CLASS,
            learning_rate=lr,
        ),
        progress=False,
    )
    scratch_rows += [{**r, "lr": lr, "arm": f"scratch at lr={lr:g}"} for r in runs]

# %%
tuned = lab.scores_by_seed(lr_rows, arm="arm")
tuned_val = lab.scores_by_seed(lr_rows, arm="arm", score="val_accuracy")
scratch_test = lab.scores_by_seed(scratch_rows, arm="arm")
scratch_val = lab.scores_by_seed(scratch_rows, arm="arm", score="val_accuracy")
# The picks, on validation only; ties go to the arm listed first.
best_ft = lab.pick_best({k: v for k, v in tuned_val.items() if k != "head only"})
best_scratch = lab.pick_best(scratch_val)
head = lab.aggregate([r for r in lr_rows if r["lr"] is None])[0]
by_lr = {
    r["lr"]: r
    for r in lab.aggregate(
        [r for r in lr_rows if r["lr"]], by=["lr"], values=["accuracy", "drift"]
    )
}
scratch = {
    r["lr"]: r for r in lab.aggregate(scratch_rows, by=["lr"], values=["accuracy"])
}
print(f"{'arm':28s} {'validation':>10s} {'test':>6s}  (means over seeds)")
for name, val in {**tuned_val, **scratch_val}.items():
    test = {**tuned, **scratch_test}[name]
    mark = "  <- picked on validation" if name in (best_ft, best_scratch) else ""
    print(
        f"{name:28s} {np.mean(list(val.values())):10.3f} "
        f"{np.mean(list(test.values())):6.3f}{mark}"
    )
for lr, r in by_lr.items():
    print(f"fine-tuned at lr={lr:<7g} kernels moved {r['drift_mean']:.1%}")


# %%
def plot_lr_sweep() -> Figure:
    fig = Figure(figsize=(10.5, 3.9), layout="constrained")
    ax, ax_drift = fig.subplots(1, 2)
    lrs = list(by_lr)
    means = np.array([by_lr[lr]["accuracy_mean"] for lr in lrs])
    stds = np.array([by_lr[lr]["accuracy_std"] for lr in lrs])
    ax.errorbar(
        lrs,
        means,
        yerr=stds,
        marker="o",
        capsize=4,
        color="#2ca02c",
        label="after fine-tuning (phase 2)",
    )
    scratch_lrs = list(scratch)
    ax.errorbar(
        scratch_lrs,
        [scratch[lr]["accuracy_mean"] for lr in scratch_lrs],
        yerr=[scratch[lr]["accuracy_std"] for lr in scratch_lrs],
        marker="s",
        capsize=4,
        color="#555555",
        linestyle=":",
        label="scratch, same epochs, at its own rate",
    )
    m, s = head["accuracy_mean"], head["accuracy_std"]
    label = f"head only (phase 1): {m:.3f}"
    ax.axhline(m, color="#1f77b4", linestyle="--", label=label)
    ax.axhspan(m - s, m + s, color="#1f77b4", alpha=0.12, lw=0)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (Adam)")
    ax.set_ylabel("test accuracy")
    ax.set_title("test accuracy, mean ± std over seeds", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    drift = [by_lr[lr]["drift_mean"] for lr in lrs]
    drift_std = [by_lr[lr]["drift_std"] for lr in lrs]
    ax_drift.errorbar(
        lrs, drift, yerr=drift_std, marker="o", capsize=4, color="#d62728"
    )
    ax_drift.set_xscale("log")
    ax_drift.set_yscale("log")
    ax_drift.set_xlabel("fine-tuning learning rate (Adam)")
    ax_drift.set_ylabel("‖W − W_source‖ / ‖W_source‖ (conv kernels)")
    ax_drift.set_title("how far the pretrained kernels moved", fontsize=9)
    ax_drift.grid(alpha=0.3, which="both")
    fig.suptitle(
        f"{task.name}: {N_PER_CLASS} images per class, {HEAD_EPOCHS} head "
        f"epochs + {FINE_TUNE_EPOCHS} fine-tuning epochs, "
        f"{len(SEEDS)} seed(s)",
        fontsize=10,
    )
    return fig


lab.show(plot_lr_sweep())

# %% [markdown]
# How to read it. The dashed line is what the frozen base with its trained
# head already achieves; every point of the green curve starts from exactly
# that model. A point above the line means fine-tuning adapted the features
# to the target; a point below it means fine-tuning *destroyed* some of what
# was learned, and the right panel shows why: Adam's step is about the
# learning rate per weight, whatever the gradient's size, so at 1e-2 or 1e-1
# the kernels are moved by a large fraction of their own size within a few
# hundred steps. The prediction: the pretrained features are then gone, and
# what is left is a network trained from a bad initialisation with the
# remaining steps; compare with the grey scratch points. The textbook "small
# learning rate" is a range, not a number: the rate picked on validation, and
# each rate's paired difference from the head-only model, are in *What this
# run showed*; exercise 1 shows how the range depends on the number of steps.

# %% [markdown]
# ## 2. The BatchNorm pitfall: fit says one thing, evaluate another
#
# A BatchNormalization layer normalises with the statistics of the current
# batch when it runs in *training mode* and with its moving averages in
# *inference mode*, and updates the moving averages (by `1 − momentum` per
# step) only in training mode. `fit` runs the model in training mode,
# `evaluate` and `predict` in inference mode. If BatchNorm in a "frozen" base
# still runs in training mode, the head learns on features normalised by
# batch statistics and is then evaluated on features normalised by moving
# averages that may not have caught up. Users report it as "93% accuracy in
# fit, 25% in evaluate on the same data".
#
# In Keras 3 a layer with `trainable=False` always runs in inference mode, so
# the pitfall needs BatchNorm left trainable. Two common ways that happens:
#
# - freezing a base by hand layer type by layer type (only the `Conv2D`
#   layers), or unfreezing everything for fine-tuning including BatchNorm;
# - building the model as `base(x)` without `training=False`, or relying on
#   `training=False` alone: in Keras 3.15 it does **not** stop an unfrozen
#   BatchNorm from updating (checked in the next cell).
#
# The fix is to keep BatchNorm layers at `trainable=False`, which is what
# `add_head` and `freeze_until` do by default.

# %%
x, y = train_val_sample(SEEDS[0])[:2]
keras.utils.set_random_seed(0)
model = tl.add_head(source.copy_base(), NUM_CLASSES)  # base(x, training=False)
tl.unfreeze(model, train_bn=True)  # ... and then BatchNorm unfrozen too
bn = model.get_layer("convnet").get_layer("block3_bn")
before = np.asarray(bn.moving_mean).copy()
compile_model(model, 1e-5)
model.fit(x[:256], y[:256], epochs=1, batch_size=BATCH_SIZE, verbose=0)
moved = float(np.abs(np.asarray(bn.moving_mean) - before).max())
print(
    f"base called with training=False, BatchNorm unfrozen: block3_bn's moving mean "
    f"moved by up to {moved:.4f} in {math.ceil(256 / BATCH_SIZE)} steps "
    f"({'updated: training=False did not protect it' if moved > 0 else 'unchanged'})"
)

# %% [markdown]
# Now the measurement. Each condition trains a new head (without dropout, so
# that BatchNorm is the only layer that behaves differently in the two modes)
# on the pretrained base for `PITFALL_EPOCHS` epochs at the head rate, then
# measures accuracy on **the same training images** three ways: the number
# `fit` logged for its last epoch, the final model in training mode batch by
# batch (what `fit` computes, without the drift of the weights during the
# epoch), and `evaluate` (inference mode); and the test accuracy. The
# conditions:
#
# - **BatchNorm frozen (the fix)**: `add_head(base)`, the default;
# - **BatchNorm training, momentum 0.9**: `add_head(base, bn_training=True)`:
#   the base is called as `base(x)` and its BatchNorm layers stay trainable
#   while the rest is frozen (the source model was trained with momentum 0.9);
# - **BatchNorm training, momentum 0.99**: the same with Keras's default
#   momentum, the one every `keras.applications` model uses: the moving
#   averages move ten times more slowly.
#
# each at a small (8) and a usual (64) batch size. The "fit log" column is a
# running average over the last epoch, so with few steps it is lower than
# the final model's accuracy for every condition, BatchNorm or not; compare
# "train mode" with "evaluate" to see the BatchNorm effect alone.


# %%
def train_mode_accuracy(
    model: keras.Model, x: np.ndarray, y: np.ndarray, batch_size: int
) -> float:
    """Accuracy with the model in training mode (BatchNorm on batch statistics),
    batch by batch, as `fit` sees the data; the weights are restored afterwards
    because a training-mode call updates the moving averages."""
    saved = model.get_weights()
    order = np.random.default_rng(0).permutation(len(x))
    correct = 0
    for start in range(0, len(x), batch_size):
        index = order[start : start + batch_size]
        logits = keras.ops.convert_to_numpy(model(x[index], training=True))
        correct += int(np.sum(logits.argmax(-1) == y[index]))
    model.set_weights(saved)
    return correct / len(x)


# %%
def pitfall_run(condition: str, batch_size: int, seed: int) -> dict:
    x, y = train_val_sample(seed)[:2]
    keras.utils.set_random_seed(seed)
    base = source.copy_base()
    if condition == "BatchNorm frozen (fix)":
        model = tl.add_head(base, NUM_CLASSES, dropout=0.0)
    else:
        momentum = 0.99 if condition.endswith("0.99") else 0.9
        for layer in tl.flat_layers(base):
            if is_batchnorm(layer):
                layer.momentum = momentum
        model = tl.add_head(base, NUM_CLASSES, dropout=0.0, bn_training=True)
    compile_model(model, HEAD_LR)
    history = model.fit(x, y, epochs=PITFALL_EPOCHS, batch_size=batch_size, verbose=0)
    train_mode = train_mode_accuracy(model, x, y, batch_size)
    _, eval_acc = model.evaluate(x, y, batch_size=256, verbose=0)
    return {
        "condition": condition,
        "batch_size": batch_size,
        "seed": seed,
        "fit_accuracy": float(history.history["accuracy"][-1]),
        "train_mode_accuracy": float(train_mode),
        "evaluate_accuracy": float(eval_acc),
        "test_accuracy": accuracy(model, x_test, y_test),
        "steps": PITFALL_EPOCHS * math.ceil(len(x) / batch_size),
    }


# %%
CONDITIONS = [
    "BatchNorm frozen (fix)",
    "BatchNorm training, momentum 0.9",
    "BatchNorm training, momentum 0.99",
]
pitfall_rows = [
    pitfall_run(condition, batch_size, seed)
    for condition in CONDITIONS
    for batch_size in PITFALL_BATCH_SIZES
    for seed in SEEDS
]
pitfall = lab.aggregate(
    pitfall_rows,
    by=["condition", "batch_size"],
    values=[
        "fit_accuracy",
        "train_mode_accuracy",
        "evaluate_accuracy",
        "test_accuracy",
    ],
)
print(
    f"{'condition':34s} {'batch':>5s} {'fit log':>13s} {'train mode':>13s} "
    f"{'evaluate':>13s} {'test':>13s}"
)
for r in pitfall:
    print(
        f"{r['condition']:34s} {r['batch_size']:5d} "
        + " ".join(
            f"{r[k + '_mean']:.3f} ± {r[k + '_std']:.3f}"
            for k in [
                "fit_accuracy",
                "train_mode_accuracy",
                "evaluate_accuracy",
                "test_accuracy",
            ]
        )
    )


# %%
def plot_pitfall() -> Figure:
    fig = Figure(figsize=(10.5, 3.9), layout="constrained")
    axes = fig.subplots(1, len(PITFALL_BATCH_SIZES), sharey=True, squeeze=False)[0]
    width = 0.38
    for ax, batch_size in zip(axes, PITFALL_BATCH_SIZES, strict=True):
        rows = [r for r in pitfall if r["batch_size"] == batch_size]
        xs = np.arange(len(rows))
        for offset, key, color, label in [
            (-width / 2, "train_mode_accuracy", "#ff7f0e", "training mode (as in fit)"),
            (width / 2, "evaluate_accuracy", "#1f77b4", "evaluate (inference mode)"),
        ]:
            means = [r[f"{key}_mean"] for r in rows]
            ax.bar(
                xs + offset,
                means,
                width,
                yerr=[r[f"{key}_std"] for r in rows],
                capsize=3,
                color=color,
                label=label,
            )
            for xi, m in zip(xs + offset, means, strict=True):
                ax.text(xi, m + 0.01, f"{m:.2f}", ha="center", va="bottom", fontsize=7)
        ax.set_xticks(
            xs,
            [
                r["condition"].replace("BatchNorm ", "BN ").replace(", ", "\n")
                for r in rows
            ],
            fontsize=8,
        )
        ax.set_title(f"batch size {batch_size}", fontsize=9)
        ax.set_ylim(0, 1.1)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("accuracy on the training images")
    axes[0].legend(fontsize=8, loc="lower left")
    fig.suptitle(
        f"Same data, two modes: {PITFALL_EPOCHS} epoch(s) of head training, "
        f"mean ± std over {len(SEEDS)} seed(s)",
        fontsize=10,
    )
    return fig


lab.show(plot_pitfall())

# %%
gaps = {
    (r["condition"], r["batch_size"]): r["train_mode_accuracy_mean"]
    - r["evaluate_accuracy_mean"]
    for r in pitfall
}
worst = max(gaps, key=lambda k: abs(gaps[k]))
fix = max(abs(gaps[("BatchNorm frozen (fix)", b)]) for b in PITFALL_BATCH_SIZES)
print(
    f"largest training-mode vs evaluate gap on the same images: {gaps[worst]:+.3f} "
    f"({worst[0]}, batch {worst[1]})"
)
print(f"largest gap with BatchNorm frozen (the fix): {fix:.3f}")

# %% [markdown]
# How to read it. With BatchNorm frozen, fit and evaluate should agree (up
# to dropout and the running average): the head is trained on exactly the
# features it is evaluated on, so the orange and blue bars should match; the
# "train mode - evaluate" lines of *What this run showed* check it.
# With BatchNorm in training mode, the gap between the orange and the blue
# bar is the pitfall. How large it gets
# depends on how far the moving averages lag behind the batch statistics:
# more with momentum 0.99 than 0.9 (slower averages), more with fewer steps,
# and more when the target's statistics differ from the source's (this pair
# is similar, so the source's averages are not far off; notebook 04 measures
# how far they are for clothes → digits). Small batches add noise to the
# batch statistics the head learns on. Whatever the size of the gap measured
# here, the lesson holds: **a training accuracy that `evaluate` cannot
# reproduce on the same data points to BatchNorm**, and the fix costs nothing:
# keep its layers frozen (`add_head`, `freeze_until` and `two_phase_fit` do
# by default; pass `train_bn=True` only on purpose, see notebook 04).

# %% [markdown]
# ## This case in the measured 2x2 table
#
# The study (`tlrecipes study`) measures all four cases under one protocol:
# 5 seeds, validation split, every strategy against its from-scratch twin.
# Its cell for this case (large target data, similar problem) is printed
# below from the results shipped with the package, the same numbers as the
# README's table and `reports/study/REPORT.md`. This notebook's own run,
# above and below, uses its own settings: where the two differ, both are
# measurements, of different setups.

# %%
print(lab.study_cell("large", "similar"))


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
lines = [
    lab.compare_or_note(
        tuned[f"fine-tuned at lr={1e-4:g}"],  # two_phase_fit's default rate
        scratch_test[f"scratch at lr={1e-3:g}"],  # the lab's default rate
        name_a="two-phase at its default lr=1e-4 (this case's advice)",
        name_b="scratch at its default 1e-3",
    ),
    f"picked on validation, each from {len(FINE_TUNE_LRS)} learning rates: "
    f"{best_ft}; {best_scratch}",
    lab.compare_or_note(
        tuned[best_ft],
        scratch_test[best_scratch],
        name_a=f"two-phase, {best_ft} (picked)",
        name_b=f"{best_scratch} (picked)",
    ),
    lab.compare_to_baseline_or_note(tuned, "head only"),
]
for condition in CONDITIONS:
    for batch_size in PITFALL_BATCH_SIZES:
        runs = [
            r
            for r in pitfall_rows
            if r["condition"] == condition and r["batch_size"] == batch_size
        ]
        lines.append(
            lab.compare_or_note(
                {r["seed"]: r["train_mode_accuracy"] for r in runs},
                {r["seed"]: r["evaluate_accuracy"] for r in runs},
                name_a=f"{condition}, batch {batch_size}: train mode",
                name_b="evaluate",
            )
        )
print(lab.what_this_run_showed(lines))


# %% [markdown]
# ## Exercises
#
# 1. Double `FINE_TUNE_EPOCHS`. Does the best learning rate move down? (A
#    longer schedule needs a smaller rate to move the weights the same
#    distance.)
# 2. Replace Adam by SGD with momentum (`make_optimizer("sgd", lr)`) in
#    `compile_model`. Is the useful range of rates the same? Why not?
# 3. Fine-tune only the last block (`tl.freeze_until(model, "block3_conv")`)
#    at 1e-2. Does keeping the first two blocks frozen protect against the
#    high rate?
# 4. Set `PITFALL_EPOCHS = 10`. Does the fit/evaluate gap close as the moving
#    averages catch up?
# 5. Run the pitfall section on `fashion_to_mnist` (set `TASK`, and
#    `N_PER_CLASS = 300` with `VAL_PER_CLASS = 100`: the 400 offline digits
#    per class), whose target
#    statistics differ more from the source's. Is the gap larger?


# %%
print(lab.run_footer(START, quick=QUICK))
