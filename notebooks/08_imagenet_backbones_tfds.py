# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 08 ImageNet backbones on tfds datasets: flowers (similar) and satellite tiles (different)
#
# **Description:** Measures an ImageNet-pretrained MobileNetV2 on tf_flowers and EfficientNetB0 on EuroSAT, as a frozen feature extractor and with two-phase fine-tuning, against the same backbone trained from scratch, at two target sizes over several seeds.
#
# **Accelerator:** GPU
#
# **Estimated time (full mode):** CPU not practical (hours), GPU ~20 min (plus the first download of about 300 MB of data and weights)
#
# **Quick mode:** `TLRECIPES_QUICK=1` runs offline on *mock* data (`tfds.testing.mock_data`: random images and labels), randomly initialised backbones (`weights=None`) at 32x32 pixels, one seed and a tiny budget, only to check that every cell runs (under a minute on a 2-core CPU); its numbers mean nothing.
#
# **This run:** not executed yet.
#
# > **This notebook is committed without outputs.** A full run needs internet:
# > tensorflow-datasets downloads tf_flowers (218 MB) and EuroSAT (90 MB), and
# > `keras.applications` downloads the ImageNet weights. The project's machines
# > have none, so no full-mode results exist yet; run it on a GPU machine that
# > is online (Colab works), and never read the quick mode's mock numbers as
# > results.
#
# Notebooks 00-07 transfer from a small network trained on Fashion-MNIST; the
# everyday case is an ImageNet-pretrained `keras.applications` backbone. Two
# targets from the project's task registry, one on each side of the similarity
# axis of the four-case table (target-data size x similarity to the source):
#
# - **imagenet_to_flowers**: MobileNetV2 at 160x160 to 5 flower classes.
#   Natural photos to natural photos: the TF transfer-learning tutorial's
#   setting, where a frozen base is expected to do well.
# - **imagenet_to_eurosat**: EfficientNetB0 at 64x64 to 10 land-use classes
#   of Sentinel-2 satellite tiles. Objects seen from the side to terrain seen
#   from above: a different domain, where the source tutorial advises against
#   the pretrained model when data are small, and fine-tuning or scratch may
#   win when data are large.
#
# The same measurements as the offline notebooks: each strategy against a
# from-scratch twin (`lab.scratch_twin`: same architecture, random weights,
# same data, optimizer and number of steps), final test accuracy with its
# spread over seeds, and Torrey & Shavlik's three benefits from the learning
# curves (`lab.transfer_benefit`).

# %% [markdown]
# ## Setup
#
# Reading tfds datasets needs TensorFlow and tensorflow-datasets installed
# (`pip install "tlrecipes[tensorflow]"`); the models themselves run on any
# Keras backend, since the images are converted to numpy arrays once.

# %%
import contextlib
import importlib
import io
import logging
import math
import os
import time

import keras
import numpy as np
import tensorflow_datasets as tfds
from IPython.display import Image
from matplotlib.figure import Figure

import tlrecipes as tl
from tlrecipes import lab

START = time.perf_counter()
logging.getLogger("tensorflow").setLevel(logging.ERROR)
keras.utils.set_random_seed(0)
print("Keras", keras.version(), "backend:", keras.backend.backend())


def show(fig: Figure) -> Image:
    """Displays a matplotlib Figure as a PNG under any backend (Agg included)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    return Image(data=buffer.getvalue())


# %% tags=["parameters"]
QUICK = os.environ.get("TLRECIPES_QUICK", "0") == "1"
# This notebook is about tfds data and ImageNet weights: it has no offline
# version. Quick mode replaces both with mock data and random weights.
DATA = os.environ.get("TLRECIPES_DATA", "tfds")
TASKS = ["imagenet_to_flowers", "imagenet_to_eurosat"]
MOCK = QUICK  # tfds.testing.mock_data: random images, no download
MOCK_EXAMPLES = 150  # examples per split in mock mode
WEIGHTS = None if QUICK else "imagenet"
IMAGE_SIZE = 32 if QUICK else None  # None: the task's size (160 / 64 pixels)
SEEDS = [0] if QUICK else [0, 1, 2]
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

# %% [markdown]
# ## Data: tfds to numpy, in each backbone's own input format
#
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
for name in TASKS:
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
for name in TASKS:
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
# ## Results over seeds
#
# Mean ± standard deviation of the final test accuracy, then each transfer
# strategy minus scratch, paired by seed. The four-case table predicts: on
# flowers (similar), the frozen base wins at both sizes; on EuroSAT
# (different), the gap is smaller and may close or reverse with more data.
# The lines below say whether this run agrees.

# %%
summary = lab.aggregate(rows, by=("task", "n_per_class", "strategy"))
for s in summary:
    print(
        f"{s['task']:22s} {s['n_per_class']:4d}/class {s['strategy']:18s} "
        f"{s['accuracy_mean']:.3f} ± {s['accuracy_std']:.3f}"
    )
print()
for name in TASKS:
    for n in SIZES:
        acc = {
            (r["strategy"], r["seed"]): r["accuracy"]
            for r in rows
            if r["task"] == name and r["n_per_class"] == n
        }
        for strategy in STRATEGIES[:2]:
            d = np.array([acc[(strategy, s)] - acc[("scratch", s)] for s in SEEDS])
            std = d.std(ddof=1) if len(d) > 1 else 0.0
            word = (
                "beats"
                if d.mean() - std > 0
                else "loses to"
                if d.mean() + std < 0
                else "ties with"
            )
            print(
                f"{name} {n}/class: {strategy} {word} scratch by "
                f"{d.mean():+.3f} ± {std:.3f}"
            )

# %%
fig = Figure(figsize=(6.0 * len(TASKS), 4.2))
axes = fig.subplots(1, len(TASKS))
for ax, name in zip(np.atleast_1d(axes), TASKS, strict=True):
    n = SIZES[0]
    curves = {
        strategy: np.array(
            [
                r["curve"]
                for r in rows
                if r["task"] == name
                and r["n_per_class"] == n
                and r["strategy"] == strategy
            ]
        )
        for strategy in ("feature_extractor", "scratch")
    }
    lab.plot_transfer_vs_scratch(
        curves["feature_extractor"],
        curves["scratch"],
        labels=("ImageNet features, frozen", "scratch twin"),
        ax=ax,
        title=f"{name}, {n} per class ({len(SEEDS)} seed(s))",
    )
fig.tight_layout()
show(fig)

# %% [markdown]
# The curves show the three benefits for the smallest size: the jumpstart
# (gap after the first epoch), the area between the curves (average gap) and
# the final gap. A pretrained base that only buys a jumpstart and a faster
# rise, with the final gap near zero, saved training time but not accuracy
# (He et al. 2019 found exactly that with enough data and a long schedule).
#
# ## Exercises
#
# 1. Swap the backbones: EfficientNetB0 on flowers, MobileNetV2 on EuroSAT
#    (`tl.application` puts each one's scaling inside it). Is the ranking a
#    property of the dataset or of the backbone?
# 2. For EuroSAT, freeze only the first half of the base
#    (`tl.two_phase_fit(..., unfreeze_from=...)`) and compare with notebook
#    06's best number of frozen blocks on a different domain.
# 3. Raise `FINE_TUNE_LR` to 1e-3 and watch the two-phase curve after the
#    head phase: how much of the pretrained advantage is destroyed?
# 4. Add `1000` to `SIZES` for EuroSAT (2,160 images per class exist). Where
#    does the from-scratch twin catch up?
# 5. Feed EfficientNet images scaled to [0, 1] (the classic bug) and measure
#    the cost in accuracy.


# %%
def device_description() -> str:
    """The accelerator the backend computes on, for the record."""
    backend = keras.backend.backend()
    try:
        if backend == "jax":
            devices = importlib.import_module("jax").devices()
            return ", ".join(sorted({d.device_kind for d in devices}))
        if backend == "torch":
            torch = importlib.import_module("torch")
            if torch.cuda.is_available():
                return torch.cuda.get_device_name(0)
        if backend == "tensorflow":
            tf = importlib.import_module("tensorflow")
            gpus = tf.config.list_physical_devices("GPU")
            if gpus:
                return ", ".join(g.name for g in gpus)
    except Exception as err:  # noqa: BLE001 - only describing the device
        return f"unknown ({err})"
    return "CPU"


print(
    f"elapsed: {time.perf_counter() - START:.0f} s, backend "
    f"{keras.backend.backend()}, device {device_description()}, "
    f"mode {'quick' if QUICK else 'full'}"
    + (" (MOCK DATA, random weights)" if MOCK else "")
)
