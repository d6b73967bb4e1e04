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
# # 08 ImageNet backbones: a real pretrained network on clothes and digits (offline), flowers and satellite tiles (tfds)
#
# **Description:** Measures how much a real ImageNet network's features help two offline targets, Fashion-MNIST and MNIST at 96x96 pixels: a linear probe on frozen EfficientNet-Lite0 features against the same probe on a random-init twin whose BatchNorm statistics are estimated on the target, at 10 and 100 images per class over 5 seeds; with `TLRECIPES_DATA=tfds` (internet), the original tf_flowers and EuroSAT study with fine-tuning and the scratch twin.
#
# **Accelerator:** CPU or GPU
#
# **Estimated time (full mode):** CPU ~15 min on 2 cores the first time (14 min 10 s measured 2026-12-07); the features are then cached on disk, and a rerun took 1 min 06 s, GPU a few minutes; the tfds path (5 seeds): CPU not practical (hours), GPU ~35 min plus the first download of about 300 MB
#
# **Quick mode:** `TLRECIPES_QUICK=1` runs the offline path with the real ImageNet weights at 32x32 pixels, 3 images per class, 2 seeds and one probe setting, only to check that every cell runs (about a minute on a 2-core CPU); its numbers mean nothing. With `TLRECIPES_DATA=tfds` it uses *mock* tfds data (random images) and random weights.
#
# **This run:** full mode on AMD EPYC CPU (2 cores), no GPU, Keras backend `tensorflow`, code at commit 4e7e006, 1 min 06 s of execution (2026-12-07); the slowest parts: 'Linear probe: ImageNet features vs the random-i…' 35 s, 'Fine-tuning and the from-scratch twin: what the…' 21 s.

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

# %% [markdown]
# Notebooks 00-07 transfer from a small network trained on Fashion-MNIST; the
# everyday case is an ImageNet-pretrained backbone. This notebook uses a real
# one that needs no internet: `tl.application("efficientnet_lite0",
# weights="imagenet")`, EfficientNet-Lite0 trained on ImageNet-1k, read from
# its pinned package. Two targets from the task registry
# (`tlrecipes.lab.tasks`), both far from ImageNet's colour photos of objects:
#
# - **imagenet_to_fashion**: the 10 Fashion-MNIST classes, grayscale product
#   photos of clothes. Still photographs of objects, with textures and
#   shapes: the closer of the two to ImageNet.
# - **imagenet_to_mnist**: handwritten digits, white strokes on black. No
#   texture, no natural-image statistics: the farther one.
#
# Both are 28x28 grayscale, resized to 96x96 and copied to three channels
# (`tlrecipes.lab.real_backbone.to_backbone_input`), in [0, 255]: the
# network rescales inside.
#
# **The question.** How similar is each target to ImageNet, as far as this
# network's features go? The measure is a linear probe: a logistic
# regression on the frozen, average-pooled 1280-d features, against the same
# probe on a *random-init twin* (the same architecture, random weights). The
# difference is what the ImageNet weights add to the architecture alone.
#
# **The textbook's prediction** (the four-case table: target size x
# similarity to the source): frozen ImageNet features should help most when
# data are small and the target resembles the source, so the ImageNet probe
# should lead the random twin by more on Fashion-MNIST than on MNIST, and by
# more at 10 than at 100 images per class. Whether a *different* domain
# (digits) gains at all is the open part.
#
# With `TLRECIPES_DATA=tfds` (internet needed) the notebook runs its tfds
# study instead: MobileNetV2 on tf_flowers (similar) and EfficientNetB0 on
# EuroSAT satellite tiles (different), as a frozen feature extractor and
# with two-phase fine-tuning, against the from-scratch twin.

# %% [markdown]
# ## Setup
#
# The offline path needs only the package (`pip install
# "tlrecipes[tensorflow,offline-data,imagenet]"`); the tfds path also needs
# tensorflow-datasets and internet, and is imported only when chosen.

# %%
import contextlib
import importlib
import logging
import math
import os
import time

import keras
import numpy as np
from IPython.display import display
from matplotlib.figure import Figure

import tlrecipes as tl
from tlrecipes import lab
from tlrecipes.lab.real_backbone import C_GRID, task_splits
from tlrecipes.lab.real_backbone import to_backbone_input as real_backbone_input
from tlrecipes.lab.real_backbone_arms import run_arms

START = time.perf_counter()
logging.getLogger("tensorflow").setLevel(logging.ERROR)
keras.utils.set_random_seed(0)
print("Keras", keras.version(), "backend:", keras.backend.backend())


# %% tags=["parameters"]
QUICK = os.environ.get("TLRECIPES_QUICK", "0") == "1"
# "offline" (default): the real ImageNet EfficientNet-Lite0 on Fashion-MNIST
# and MNIST, no internet. "tfds": tf_flowers and EuroSAT, downloaded.
DATA = os.environ.get("TLRECIPES_DATA", "offline")
if DATA not in ("offline", "tfds"):
    raise ValueError(
        f"Received TLRECIPES_DATA={DATA!r}, expected 'offline' or 'tfds'. "
        "Fix: unset it (offline) or set it to 'tfds' (needs internet)."
    )
# Offline path: similarity to ImageNet by linear probe.
REAL_TASKS = ["imagenet_to_fashion", "imagenet_to_mnist"]
RESOLUTION = 32 if QUICK else 96  # pixels fed to the backbone
REAL_SIZES = [3] if QUICK else [10, 100]  # training images per class
REAL_SEEDS = [0, 1] if QUICK else [0, 1, 2, 3, 4]
VAL_PER_CLASS = 2 if QUICK else 20  # from the training split; chooses C
TEST_PER_CLASS = 5 if QUICK else 50  # fixed sample, the same for every seed
PROBE_C_GRID = (1.0,) if QUICK else C_GRID  # the probe's L2 strengths
FT_LR_GRID = 4  # learning rates a fine-tuned or scratch arm would try
FT_EPOCHS = 10  # epochs per learning rate
# tfds path (TLRECIPES_DATA=tfds): quick mode uses mock data, random weights.
TASKS = ["imagenet_to_flowers", "imagenet_to_eurosat"]
MOCK = QUICK  # tfds.testing.mock_data: random images, no download
MOCK_EXAMPLES = 150  # examples per split in mock mode
WEIGHTS = None if QUICK else "imagenet"
IMAGE_SIZE = 32 if QUICK else None  # None: the task's size (160 / 64 pixels)
SEEDS = [0, 1] if QUICK else [0, 1, 2, 3, 4]
SIZES = [3] if QUICK else [10, 100]  # training images per class
# Every run makes at least MIN_STEPS optimisation steps of BATCH_SIZE images;
# the test accuracy is recorded after each of at least EPOCHS epochs.
EPOCHS = 2 if QUICK else 10
MIN_STEPS = 2 if QUICK else 300
BATCH_SIZE = 32
HEAD_LR = 3e-3  # the new head on a frozen base (two_phase_fit's default)
FINE_TUNE_LR = 1e-5  # the whole pretrained base: low, as in the Keras guide
SCRATCH_LR = 1e-3  # the from-scratch twin
TEST_LIMIT = 60 if QUICK else None  # test images used (None: all)
# Quick mode makes a handful of steps: tracing a 150-layer network into a
# graph would take longer than running it eagerly. Full mode compiles.
RUN_EAGERLY = QUICK
COMPARISONS = []  # every lab.compare result, printed at the end

# %% [markdown]
# ## The data, as the network sees it
#
# One training image per class of each target, resized to `RESOLUTION`
# pixels and copied to RGB: what the backbone is given.

# %%
fig = Figure(figsize=(12, 1.5 * len(REAL_TASKS) + 0.3))
axes = fig.subplots(len(REAL_TASKS), 10, squeeze=False)
for row, name in zip(axes, REAL_TASKS, strict=True):
    (x, y), _, _ = task_splits(name, 1, seed=0, val_per_class=0)
    classes = lab.get_task(name).target_classes
    x = real_backbone_input(x, RESOLUTION) / 255.0
    for ax, image, label in zip(row, x[np.argsort(y)], np.sort(y), strict=True):
        ax.imshow(image)
        ax.set_title(f"{classes[label]}", fontsize=8)
        ax.axis("off")
    row[0].text(-0.3, 0.5, name, transform=row[0].transAxes, rotation=90,
                va="center", ha="right", fontsize=8)  # fmt: skip
fig.tight_layout()
lab.show(fig)

# %% [markdown]
# ## Linear probe: ImageNet features vs the random-init twin
#
# For each target, size and seed, on the same splits (`run_arms`,
# `tlrecipes.lab.real_backbone_arms`):
#
# - **feature_extractor**: the frozen ImageNet network's pooled features,
#   computed once and cached on disk (`cached_features`), and a logistic
#   regression on them whose L2 strength is chosen on validation from
#   `PROBE_C_GRID`; the test sample is read once, by the chosen model.
# - **random_init_probe**: the same probe on a random-init twin drawn from
#   the seed. A freshly initialised network's BatchNorm layers hold mean 0,
#   variance 1, so in inference mode its features vanish through 16 blocks;
#   `calibrate_batchnorm` first sets them to the statistics of the seed's
#   training images (one pass, momentum 0), making this twin "random
#   convolutional features", not a dead network.
#
# Validation images come from the training split; the test sample is fixed
# across seeds and arms.

# %%
results = {}
if DATA == "offline":
    for name in REAL_TASKS:
        started = time.perf_counter()
        results[name] = run_arms(
            name,
            sizes=REAL_SIZES,
            seeds=REAL_SEEDS,
            scratch=False,
            size=RESOLUTION,
            val_per_class=VAL_PER_CLASS,
            test_per_class=TEST_PER_CLASS,
            c_grid=PROBE_C_GRID,
        )
        print(f"{name}: {time.perf_counter() - started:.0f} s")

# %% [markdown]
# ## Results over seeds
#
# Mean ± standard deviation of the test accuracy (chance is 10%), then the
# feature extractor minus the random-init probe, paired by seed with
# `lab.compare` (95% interval; "ahead" when the whole interval is above 0).
# The prediction: a larger difference on Fashion-MNIST than on MNIST, and at
# 10 than at 100 images per class.

# %%
for name, result in results.items():
    for n, cell in result["sizes"].items():
        tests = {
            arm: {s: r["test_accuracy"] for s, r in runs.items()}
            for arm, runs in cell["arms"].items()
        }
        for arm, scores in tests.items():
            acc = np.array(list(scores.values()))
            spread = f"{acc.mean():.3f} ± {acc.std(ddof=1):.3f}"
            print(f"{name} {n:4d}/class {arm:18s} {spread}")
        comparison = lab.compare(
            tests["feature_extractor"],
            tests["random_init_probe"],
            name_a=f"{name} {n}/class: feature_extractor",
            name_b="random_init_probe",
        )
        COMPARISONS.append(comparison)
        print(comparison, "\n")

# %%
if results:
    fig = Figure(figsize=(5.5 * len(results), 3.8))
    for ax, (name, result) in zip(fig.subplots(1, len(results), squeeze=False)[0],
                                  results.items(), strict=True):  # fmt: skip
        for arm in ("feature_extractor", "random_init_probe"):
            acc = np.array([
                [r["test_accuracy"] for r in cell["arms"][arm].values()]
                for cell in result["sizes"].values()
            ])  # fmt: skip
            ax.errorbar(REAL_SIZES, acc.mean(axis=1), yerr=acc.std(axis=1, ddof=1),
                        marker="o", capsize=3, label=arm)  # fmt: skip
        ax.axhline(0.1, color="gray", ls=":", label="chance")
        ax.set(xscale="log", xlabel="training images per class",
               ylabel="test accuracy", title=name)  # fmt: skip
        ax.legend()
    fig.tight_layout()
    display(lab.show(fig))

# %% [markdown]
# ## Fine-tuning and the from-scratch twin: what they would cost here
#
# The offline path does not run fine-tuning (`tl.two_phase_fit` on the real
# backbone) or the from-scratch twin on a CPU: both train every layer of the
# network at 96 pixels, and with the probe's tuning budget (`FT_LR_GRID`
# learning rates x `FT_EPOCHS` epochs, 5 seeds, 2 targets) that is far
# beyond this notebook's 15 minutes on 2 cores. The cell below measures
# this machine's training speed on a few batches and prints the projected
# cost, so the claim rests on a number. On a GPU, or with
# `TLRECIPES_DATA=tfds`, both arms run.

# %%
if DATA == "offline":
    keras.utils.set_random_seed(0)
    base = tl.application("efficientnet_lite0", input_shape=(RESOLUTION, RESOLUTION, 3),
                          weights=None, pooling="avg")  # fmt: skip
    net = keras.Model(base.input, keras.layers.Dense(10)(base.output))
    net.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(
        from_logits=True), jit_compile=False)  # fmt: skip
    shape = (BATCH_SIZE, RESOLUTION, RESOLUTION, 3)
    x = np.random.default_rng(0).uniform(0, 255, shape)
    y = np.arange(BATCH_SIZE) % 10
    net.train_on_batch(x, y)  # warm-up: builds the training step
    steps = 1 if QUICK else 3
    started = time.perf_counter()
    for _ in range(steps):
        net.train_on_batch(x, y)
    rate = steps * BATCH_SIZE / (time.perf_counter() - started)
    print(f"training speed: {rate:.0f} images/s at {RESOLUTION} px")
    for n in REAL_SIZES:
        images = FT_LR_GRID * FT_EPOCHS * 10 * n * len(REAL_SEEDS) * len(REAL_TASKS)
        minutes = 2 * images / rate / 60
        print(f"{n}/class, fine-tuning + scratch twin: {minutes:.0f} min")
    keras.utils.clear_session()

# %% [markdown]
# ## The tfds path (`TLRECIPES_DATA=tfds`): data, in each backbone's own input format
#
# The cells from here to the closing summary do nothing on the offline path.
# `lab.load_tfds_arrays` reads the dataset once into uint8 arrays (the last 20%
# of each dataset's single split is its test set, as the task registry
# defines); `lab.to_backbone_input` only resizes them, as float32 in [0, 255].
# The backbone's own scaling ([-1, 1] for MobileNetV2; none for EfficientNet,
# which rescales inside the model) is the first layer of the model that
# `tl.application` returns, so it is applied exactly once and saved with the
# model: scaling the arrays as well would be the classic silent bug of feeding
# a backbone inputs scaled twice.

# %%
TFDS_NAMES = {"imagenet_to_flowers": "tf_flowers", "imagenet_to_eurosat": "eurosat/rgb"}


def load(task_name):
    """The task's target data as uint8 arrays (mock data in quick mode)."""
    tfds = importlib.import_module("tensorflow_datasets")  # only on this path
    task = lab.get_task(task_name)
    size = IMAGE_SIZE or task.image_shape[0]
    mock = (
        tfds.testing.mock_data(num_examples=MOCK_EXAMPLES)
        if MOCK
        else (contextlib.nullcontext())
    )
    with mock:
        data = lab.load_tfds_arrays(TFDS_NAMES[task_name], (size, size))
    return task, data, size


datasets = {}
for name in TASKS if DATA == "tfds" else []:
    task, data, size = load(name)
    x_test = lab.to_backbone_input(data.x_test[:TEST_LIMIT], size)  # [0, 255]
    datasets[name] = (task, data, size, x_test, data.y_test[:TEST_LIMIT])
    print(
        f"{name}: {task.backbone} at {size}x{size}, {data.num_classes} classes, "
        f"{len(data.x_train):,} train / {len(x_test):,} test images"
        + (" (MOCK DATA)" if MOCK else "")
    )

# %% [markdown]
# ## One run: a strategy, a size, a seed
#
# - **feature_extractor**: the pretrained base frozen (BatchNorm in inference
#   mode), a new head trained at `HEAD_LR`: notebook 01's recipe.
# - **two_phase**: half the steps for the head, then the whole base at
#   `FINE_TUNE_LR` (`tl.two_phase_fit`): notebook 03's recipe.
# - **scratch**: `lab.scratch_twin` of the same model, every layer trained at
#   `SCRATCH_LR` for the same number of steps.
#
# All three see the same images in each seed and record the test accuracy
# after every epoch (recorded, never used to choose anything).


# %%
def budget(n_train):
    steps_per_epoch = math.ceil(n_train / BATCH_SIZE)
    return max(EPOCHS, math.ceil(MIN_STEPS / steps_per_epoch))


def run(task, size, x_train, y_train, x_test, y_test, seed, strategy):
    """Trains one model; returns its test accuracy after each epoch."""
    keras.utils.set_random_seed(seed)
    # Its first layer scales [0, 255] images as the backbone was trained.
    base = tl.application(task.backbone, input_shape=(size, size, 3), weights=WEIGHTS)
    model = tl.add_head(base, len(task.target_classes))  # base returned frozen
    epochs = budget(len(x_train))
    fit = {"batch_size": BATCH_SIZE, "validation_data": (x_test, y_test), "verbose": 0}
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    if strategy == "two_phase":
        # two_phase_fit recompiles for each phase, keeping these settings.
        model.compile(loss=loss, metrics=["accuracy"], run_eagerly=RUN_EAGERLY)
        head_epochs = max(1, epochs // 2)
        history = tl.two_phase_fit(
            model,
            x_train,
            y_train,
            head_epochs=head_epochs,
            fine_tune_epochs=epochs - head_epochs,
            head_lr=HEAD_LR,
            fine_tune_lr=FINE_TUNE_LR,
            **fit,
        )
    else:
        if strategy == "scratch":
            model = lab.scratch_twin(model, seed=seed)
        lr = SCRATCH_LR if strategy == "scratch" else HEAD_LR
        model.compile(
            optimizer=keras.optimizers.Adam(lr),
            loss=loss,
            metrics=["accuracy"],
            run_eagerly=RUN_EAGERLY,
        )
        history = model.fit(x_train, y_train, epochs=epochs, **fit)
    keras.backend.clear_session()
    return [float(a) for a in history.history["val_accuracy"]]


STRATEGIES = ["feature_extractor", "two_phase", "scratch"]
rows = []
for name in datasets:
    task, data, size, x_test, y_test = datasets[name]
    for n in SIZES:
        for seed in SEEDS:
            x, y = lab.sample_per_class(data.x_train, data.y_train, n, seed=seed)
            x = lab.to_backbone_input(x, size)  # resized, still [0, 255]
            for strategy in STRATEGIES:
                started = time.perf_counter()
                curve = run(task, size, x, y, x_test, y_test, seed, strategy)
                rows.append(
                    {
                        "task": name,
                        "strategy": strategy,
                        "n_per_class": n,
                        "seed": seed,
                        "accuracy": curve[-1],
                        "curve": curve,
                        "seconds": time.perf_counter() - started,
                    }
                )
            print(
                f"{name} {n}/class seed {seed}: "
                + ", ".join(f"{r['strategy']} {r['accuracy']:.3f}" for r in rows[-3:])
            )

# %% [markdown]
# ## tfds results over seeds
#
# Mean ± standard deviation of the final test accuracy, then each transfer
# strategy minus scratch, paired by seed with `lab.compare`. The four-case
# table predicts: on flowers (similar), the frozen base wins at both sizes;
# on EuroSAT (different), the gap is smaller and may close or reverse with
# more data.

# %%
for s in lab.aggregate(rows, by=("task", "n_per_class", "strategy")) if rows else []:
    print(
        f"{s['task']:22s} {s['n_per_class']:4d}/class {s['strategy']:18s} "
        f"{s['accuracy_mean']:.3f} ± {s['accuracy_std']:.3f}"
    )
for name in datasets:
    for n in SIZES:
        acc = {
            strategy: {r["seed"]: r["accuracy"] for r in rows if r["task"] == name
                       and r["n_per_class"] == n and r["strategy"] == strategy}
            for strategy in STRATEGIES
        }  # fmt: skip
        for strategy in STRATEGIES[:2]:
            comparison = lab.compare(
                acc[strategy], acc["scratch"],
                name_a=f"{name} {n}/class: {strategy}", name_b="scratch",
                comparisons=2,
            )  # fmt: skip
            COMPARISONS.append(comparison)
            print(comparison)

# %%
if rows:
    fig = Figure(figsize=(6.0 * len(datasets), 4.2))
    axes = np.atleast_1d(fig.subplots(1, len(datasets)))
    for ax, name in zip(axes, datasets, strict=True):
        n = SIZES[0]
        curves = {
            strategy: np.array([r["curve"] for r in rows if r["task"] == name
                                and r["n_per_class"] == n
                                and r["strategy"] == strategy])
            for strategy in ("feature_extractor", "scratch")
        }  # fmt: skip
        lab.plot_transfer_vs_scratch(
            curves["feature_extractor"],
            curves["scratch"],
            labels=("ImageNet features, frozen", "scratch twin"),
            ax=ax,
            title=f"{name}, {n} per class ({len(SEEDS)} seeds)",
        )
    fig.tight_layout()
    display(lab.show(fig))

# %% [markdown]
# The curves show the three benefits for the smallest size: the jumpstart
# (gap after the first epoch), the area between the curves (average gap) and
# the final gap. A pretrained base that only buys a jumpstart and a faster
# rise, with the final gap near zero, saved training time but not accuracy
# (He et al. 2019 found exactly that with enough data and a long schedule).

# %% [markdown]
# ## What this run showed
#
# One line per comparison above: the difference (first arm minus second),
# its 95% interval, the seeds, and the verdict.

# %%
print(lab.what_this_run_showed(COMPARISONS))

# %% [markdown]
# ## Exercises
#
# Offline path:
#
# 1. Set `RESOLUTION = 224` (the network's training size) for one target:
#    does the ImageNet probe's lead grow when digits are seen at the scale
#    ImageNet objects were?
# 2. Skip the calibration (call `cached_features` on a random-init twin
#    built yourself, without `calibrate_batchnorm`) and watch the random
#    reference fall to chance: why is that reference unfair to "random
#    features"?
# 3. Add `1000` to `REAL_SIZES`. Does the difference keep shrinking?
#
# tfds path (`TLRECIPES_DATA=tfds`, internet):
#
# 4. Swap the backbones: EfficientNetB0 on flowers, MobileNetV2 on EuroSAT
#    (`tl.application` puts each one's scaling inside it). Is the ranking a
#    property of the dataset or of the backbone?
# 5. For EuroSAT, freeze only the first half of the base
#    (`tl.two_phase_fit(..., unfreeze_from=...)`) and compare with notebook
#    06's best number of frozen blocks on a different domain.
# 6. Raise `FINE_TUNE_LR` to 1e-3 and watch the two-phase curve after the
#    head phase: how much of the pretrained advantage is destroyed?
# 7. Add `1000` to `SIZES` for EuroSAT (2,160 images per class exist). Where
#    does the from-scratch twin catch up?
# 8. Feed EfficientNet images scaled to [0, 1] (the classic bug) and measure
#    the cost in accuracy.


# %%
print(lab.run_footer(START, quick=QUICK))
