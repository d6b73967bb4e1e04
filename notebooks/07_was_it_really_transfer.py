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
# # 07 Was it really transfer? Frozen layers from D1 against a re-initialised copy
#
# **Description:** A 3-layer dense network trained on 22,000 Fashion-MNIST images of five classes (D1) is frozen and given three new layers trained on 8,000 images of five other classes (D2), then compared with the same network re-initialised and trained on D2 alone, and with the same network whose frozen part is random.
#
# **Accelerator:** CPU or GPU
#
# **Estimated time (full mode):** CPU ~12 min (2-core CPU, measured 2026-12-07 while a second notebook ran beside it), GPU ~8 min (H100, jax, 2026-11-24)
#
# **Quick mode:** `TLRECIPES_QUICK=1` runs two seeds, 3 epochs per run and a shorter size sweep (under a minute on a 2-core CPU); the numbers are then rough and the prose still applies.
#
# **This run:** full mode on AMD EPYC CPU (2 cores), no GPU, Keras backend `tensorflow`, code at commit 4e7e006, 12 min 25 s of execution (2026-12-07); the slowest parts: 'Does the answer depend on the size of D2?' 6 min 34 s, 'The experiment, seed by seed' 5 min 43 s.
#
# A question on Data Science Stack Exchange:
#
# > I train a Deep Neural Network model with around three layers on the dataset
# > D1 [22,000 samples] [...] test accuracy = 82%. Now, when I use that model to
# > make predictions on D2 [8,000 samples] without any fine-tuning, I get [...]
# > 12.3%. But when I add three more layers to the pre-trained model while
# > keeping the three layers of the initial model frozen, I get [...] 87.6%.
# > [...] most of the learning that led to the 90% accuracy was only because of
# > the additional layers [...] Is this a correct inference?
#
# The accepted answer: the low accuracy without fine-tuning proves nothing
# (the classes of D2 are not the classes of D1), and *"the only way to tell
# [...] is to compare results by using just the normal D2 features and a
# re-initialised copy of the original NN"*, trained the same way, and to look
# at both learning curves: transfer helped if it learns faster or ends higher.
#
# This notebook runs that experiment on real data shaped like the question:
# Fashion-MNIST pixels (784 features per example), D1 = 22,000 images of
# T-shirt/top, Trouser, Sandal, Shirt, Bag; D2 = 8,000 images of Pullover,
# Dress, Coat, Sneaker, Ankle boot (two disjoint class groups, as the two
# datasets of the question have different labels). Four models learn D2:
#
# 1. **transfer**: the three D1 layers, frozen, plus three new layers (the
#    question's model);
# 2. **scratch twin**: the same six layers, re-initialised, all trained on D2
#    (the answer's comparison; `lab.scratch_twin`);
# 3. **random frozen**: the same six layers with the first three left at
#    their *random* initial weights and frozen: if the new layers "do all the
#    learning", this model should match the transfer model;
# 4. **original net, re-initialised**: the three-layer D1 architecture with a
#    new output layer, trained on D2 from scratch (the answer's literal
#    suggestion: "changing the dataset file names and the output layer shape").
#
# Every model trains with the same optimizer, learning rate, batch size and
# number of epochs, over several seeds; each seed draws its own D1 and D2
# samples and initial weights.

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
# ## Setup

# %%
import logging
import os
import time

import keras
import numpy as np
from IPython.display import display
from matplotlib.figure import Figure

import tlrecipes as tl
from tlrecipes import lab

START = time.perf_counter()
# TensorFlow warns each time a new model retraces its predict function; many
# small models are this notebook's method, so the warning is noise here.
logging.getLogger("tensorflow").setLevel(logging.ERROR)
keras.utils.set_random_seed(0)
print("Keras", keras.version(), "backend:", keras.backend.backend())


# %% tags=["parameters"]
QUICK = os.environ.get("TLRECIPES_QUICK", "0") == "1"
# "offline": Fashion-MNIST class groups (no internet); "tfds": CIFAR-100's two
# 50-class halves as D1 and D2 (3,072 pixel features; downloads CIFAR-100).
DATA = os.environ.get("TLRECIPES_DATA", "offline")
TASK = {"offline": "fashion_a_to_b", "tfds": "cifar100_a_to_b"}[DATA]
SEEDS = [0, 1] if QUICK else [0, 1, 2, 3, 4]
D1_SIZE = 22_000  # examples of the source set, as in the question
D2_SIZE = 8_000  # examples of the target set
HIDDEN = (256, 128, 64)  # the three layers trained on D1
NEW_HIDDEN = (64, 32)  # two new hidden layers + a new output = three new layers
EPOCHS = 3 if QUICK else 20
BATCH_SIZE = 128
LEARNING_RATE = 1e-3
# The size sweep at the end: smaller D2 sets (the 8,000 run is reused), each
# run given at least MIN_STEPS optimisation steps.
D2_SWEEP = [500] if QUICK else [100, 500, 2_000]
MIN_STEPS = 60 if QUICK else 400

# %% [markdown]
# ## The data: D1 and D2 as flat pixel vectors
#
# The question's data are feature vectors, so the images are flattened to 784
# numbers in [0, 1] and fed to dense layers: no convolution, nothing that
# knows these are images. Each seed samples D1 (the same number per class) from
# the five source classes and D2 from the five target classes; both are
# evaluated on their classes' full official test split, which no model ever
# trains on.

# %%
task = lab.get_task(TASK)
source, target = task.source_data(), task.target_data()


def flat(x):
    """Images (n, h, w, c) as float32 feature vectors in [0, 1]."""
    x = x.reshape(len(x), -1).astype("float32")
    return x / 255.0 if x.max() > 1.0 else x


x_test_a, y_test_a = flat(source.x_test), source.y_test
x_test_b, y_test_b = flat(target.x_test), target.y_test
NUM_A, NUM_B = source.num_classes, target.num_classes
FEATURES = x_test_a.shape[1]


def draw(data, size, seed):
    """`size` training examples of `data`, the same number per class."""
    x, y = lab.sample_per_class(
        data.x_train, data.y_train, size // data.num_classes, seed
    )
    return flat(x), y


print(f"D1: classes {source.class_names}, {D1_SIZE:,} examples per seed")
print(f"D2: classes {target.class_names}, {D2_SIZE:,} examples per seed")
print(
    f"{FEATURES} features per example; test sets: {len(x_test_a):,} (A), "
    f"{len(x_test_b):,} (B)"
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
            source.x_train,
            source.y_train,
            class_names=task.source_classes,
            title=f"D1 ({TASK} source), the classes the source network learned",
        )
    )
)
display(
    lab.show(
        lab.plot_examples(
            target.x_train,
            target.y_train,
            class_names=task.target_classes,
            title=f"D2 ({TASK} target), the classes transferred to",
        )
    )
)


# %% [markdown]
# ## The models
#
# One function builds the D1 network (three hidden layers and an output), one
# puts three new layers on its third hidden layer. Layer names say where a
# layer comes from (`d1_...` trained on D1, `new_...` added for D2), so
# freezing is a readable loop over names.


# %%
def d1_network(num_classes, seed):
    """The question's network: three dense layers and an output (logits)."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((FEATURES,), name="features")
    x = inputs
    for i, units in enumerate(HIDDEN, 1):
        x = keras.layers.Dense(units, activation="relu", name=f"d1_dense{i}")(x)
    outputs = keras.layers.Dense(num_classes, name="d1_output")(x)  # logits
    return keras.Model(inputs, outputs, name="d1_network")


def with_new_layers(network, num_classes, seed):
    """The D1 network's hidden layers (shared, not copied) plus three new ones."""
    keras.utils.set_random_seed(seed + 1000)
    x = network.get_layer(f"d1_dense{len(HIDDEN)}").output
    for i, units in enumerate(NEW_HIDDEN, 1):
        x = keras.layers.Dense(units, activation="relu", name=f"new_dense{i}")(x)
    outputs = keras.layers.Dense(num_classes, name="new_output")(x)  # logits
    return keras.Model(network.input, outputs, name="d1_plus_new")


def freeze_d1_layers(model):
    """Freezes the layers that came from the D1 network; the rest train."""
    for layer in model.layers:
        layer.trainable = not layer.name.startswith("d1_")
    return model


def train(model, x, y, epochs, curve=True):
    """Trains with the shared recipe; returns (test accuracy per epoch, final)."""
    model.compile(
        optimizer=keras.optimizers.Adam(LEARNING_RATE),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    # The test set is only *recorded* after each epoch, never used to choose
    # anything (no early stopping, no model selection).
    history = model.fit(
        x,
        y,
        epochs=epochs,
        batch_size=BATCH_SIZE,
        validation_data=(x_test_b, y_test_b) if curve else None,
        verbose=0,
    )
    final = float(model.evaluate(x_test_b, y_test_b, verbose=0)[1])
    return history.history.get("val_accuracy"), final


demo = freeze_d1_layers(with_new_layers(d1_network(NUM_A, 0), NUM_B, 0))
print(tl.trainable_summary(demo))

# %% [markdown]
# ## The experiment, seed by seed
#
# For each seed: train the D1 network on D1 (all layers), measure it on D1's
# test set and, as the question did, on D2's test set *without any training*;
# then train the four models on D2. The "no fine-tuning" number maps D1's
# output 0 (T-shirt/top) to D2's class 0 (Pullover) and so on: the labels mean
# different things, so this number says nothing about the features, which is
# the first half of the answer.

# %%
ARMS = ["transfer", "scratch twin", "random frozen", "original net, re-initialised"]
results = []  # one dict per seed
networks = {}  # the trained D1 network of each seed
curves = {arm: [] for arm in ARMS}
for seed in SEEDS:
    x1, y1 = draw(source, D1_SIZE, seed)
    x2, y2 = draw(target, D2_SIZE, seed)
    network = d1_network(NUM_A, seed)
    network.compile(
        optimizer=keras.optimizers.Adam(LEARNING_RATE),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    network.fit(x1, y1, epochs=EPOCHS, batch_size=BATCH_SIZE, verbose=0)
    networks[seed] = network  # reused by the size sweep below
    row = {
        "seed": seed,
        "d1_test": float(network.evaluate(x_test_a, y_test_a, verbose=0)[1]),
        "d2_no_fine_tuning": float(
            np.mean(np.argmax(network.predict(x_test_b, verbose=0), -1) == y_test_b)
        ),
    }
    transfer = freeze_d1_layers(with_new_layers(network, NUM_B, seed))
    twin = lab.scratch_twin(transfer, seed=seed + 2000)  # all six layers trainable
    random_frozen = freeze_d1_layers(lab.scratch_twin(transfer, seed=seed + 2000))
    original = d1_network(NUM_B, seed + 3000)  # 3 layers + a 5-class output
    for arm, model in zip(ARMS, (transfer, twin, random_frozen, original), strict=True):
        curve, final = train(model, x2, y2, EPOCHS)
        curves[arm].append(curve)
        row[arm] = final
    results.append(row)
    print(
        f"seed {seed}: D1 test {row['d1_test']:.3f}, D2 without fine-tuning "
        f"{row['d2_no_fine_tuning']:.3f}, "
        + ", ".join(f"{arm} {row[arm]:.3f}" for arm in ARMS)
    )
curves = {arm: np.array(c) for arm, c in curves.items()}

# %% [markdown]
# ## The numbers, over seeds
#
# Mean ± standard deviation over seeds, then the paired differences (each seed
# compares models trained on the same D2 sample), each with its 95% interval
# and the verdict `lab.compare` draws from it: ahead or behind when the
# interval excludes zero, a tie otherwise. The three intervals of transfer
# against its three controls are corrected for their number.
#
# These models train in this notebook's own Keras loop, not through the lab's
# validation protocol: no validation split is held out, and each accuracy is
# the last epoch read on test. Nothing is picked on those numbers (the arms
# and sizes are fixed in advance), so there is no choice for a validation
# split to make. A last-epoch read is noisier than a best-validation
# checkpoint would be (notebook 06 uses one).

# %%
columns = ["d1_test", "d2_no_fine_tuning", *ARMS]
summary = lab.aggregate(results, values=columns)[0]
for column in columns:
    print(
        f"{column:32s} {summary[column + '_mean']:.3f} ± {summary[column + '_std']:.3f}"
    )


print()
by_arm = {arm: {r["seed"]: r[arm] for r in results} for arm in ARMS}
for other in ARMS[1:]:
    print(
        lab.compare_or_note(
            by_arm["transfer"],
            by_arm[other],
            name_a="transfer",
            name_b=other,
            comparisons=len(ARMS) - 1,  # transfer against three controls
        )
    )
chance = 1 / NUM_B
print(
    f"\nChance level on D2: {chance:.3f}. Without fine-tuning the D1 network scored "
    f"{summary['d2_no_fine_tuning_mean']:.3f} ± {summary['d2_no_fine_tuning_std']:.3f}."
)

# %% [markdown]
# Read the table in this order:
#
# - **D2 without fine-tuning** sits near (or below) chance: the D1 network's
#   outputs name D1's classes, so this number cannot say whether its hidden
#   layers are useful for D2. The question's 12.3% is the same phenomenon, and
#   it is no argument against transfer.
# - **transfer - random frozen** is the contribution of the D1 layers over
#   random ones of the same shape. If it is clearly positive, the new layers
#   did *not* do all the learning: the frozen D1 features are what they build
#   on.
# - **transfer - scratch twin** answers the question that matters in
#   practice: is the transferred model better than simply training the same
#   network on D2? With 8,000 examples of five fairly easy classes, a network
#   trained on D2 alone may be just as good; then the transfer was real (the
#   D1 features were used) but not *useful* at this data size.
#
# The learning curves show the other benefit the answer mentions, speed.

# %%
steps = np.arange(1, EPOCHS + 1)
fig = Figure(figsize=(12, 4.2))
ax_all, ax_pair = fig.subplots(1, 2)
colors = {
    "transfer": "#1f77b4",
    "scratch twin": "#555555",
    "random frozen": "#d62728",
    "original net, re-initialised": "#2ca02c",
}
for arm in ARMS:
    mean, std = curves[arm].mean(0), curves[arm].std(0)
    ax_all.plot(steps, mean, marker="o", ms=3, label=arm, color=colors[arm])
    ax_all.fill_between(
        steps, mean - std, mean + std, color=colors[arm], alpha=0.15, lw=0
    )
ax_all.set_xlabel("epoch on D2")
ax_all.set_ylabel("test accuracy on D2")
ax_all.set_title(
    f"Four ways to learn D2 ({D2_SIZE:,} examples, {len(SEEDS)} seeds)", fontsize=10
)
ax_all.grid(alpha=0.3)
ax_all.legend(fontsize=8, loc="lower right")
lab.plot_transfer_vs_scratch(
    curves["transfer"],
    curves["scratch twin"],
    steps=steps,
    labels=("transfer", "scratch twin"),
    ax=ax_pair,
)
fig.tight_layout()
lab.show(fig)

# %%
benefits = [
    lab.transfer_benefit(t, s, steps=steps)
    for t, s in zip(curves["transfer"], curves["scratch twin"], strict=True)
]
measures = ["jumpstart", "auc_difference", "final_difference", "threshold_speedup"]
benefit_summary = lab.aggregate(benefits, values=measures)[0]
for name in measures:
    n = benefit_summary[name + "_n"]
    if n == 0:
        print(f"{name:20s} never reached by the transfer model in any seed")
        continue
    print(
        f"{name:20s} {benefit_summary[name + '_mean']:+.3f} ± "
        f"{benefit_summary[name + '_std']:.3f} (over {n} seed(s))"
    )

# %% [markdown]
# `jumpstart` is the gap after the first epoch, `auc_difference` the average
# gap over training, `final_difference` the gap at the end; `threshold_speedup`
# is how many times sooner the transfer model reached the scratch twin's final
# accuracy (missing when it never did). If the jumpstart and area are positive
# while the final gap is near zero, transfer bought speed, not accuracy: the
# first of the two benefits the answer lists.
#
# ## Does the answer depend on the size of D2?
#
# The answer ends with *"this result may also depend on the sizes of datasets
# D1 and D2"*. The same comparison with smaller D2 samples (each run given at
# least `MIN_STEPS` optimisation steps, so a 100-example run is not stopped
# after a handful of updates) shows where transfer starts to pay:

# %%
sweep = []
for size in D2_SWEEP:
    steps_per_epoch = -(-size // BATCH_SIZE)
    epochs = max(EPOCHS, -(-MIN_STEPS // steps_per_epoch))
    for seed in SEEDS:
        x2, y2 = draw(target, size, seed)
        transfer = freeze_d1_layers(with_new_layers(networks[seed], NUM_B, seed))
        models = {
            "transfer": transfer,
            "scratch twin": lab.scratch_twin(transfer, seed=seed + 2000),
            "random frozen": freeze_d1_layers(
                lab.scratch_twin(transfer, seed=seed + 2000)
            ),
        }
        for arm, model in models.items():
            _, final = train(model, x2, y2, epochs, curve=False)
            sweep.append({"arm": arm, "d2_size": size, "seed": seed, "accuracy": final})
for row in results:  # the main experiment is the D2_SIZE point
    for arm in ARMS[:3]:
        sweep.append(
            {"arm": arm, "d2_size": D2_SIZE, "seed": row["seed"], "accuracy": row[arm]}
        )

sweep_summary = lab.aggregate(sweep, by=("d2_size", "arm"))
sizes = sorted({r["d2_size"] for r in sweep})
print(
    "D2 size  " + "".join(f"{arm:>22s}" for arm in ARMS[:3]) + "   transfer - scratch"
)
for size in sizes:
    cells = {s["arm"]: s for s in sweep_summary if s["d2_size"] == size}
    gaps = [
        t["accuracy"] - s["accuracy"]
        for t in sweep
        if t["d2_size"] == size and t["arm"] == "transfer"
        for s in sweep
        if s["d2_size"] == size
        and s["arm"] == "scratch twin"
        and s["seed"] == t["seed"]
    ]
    gap_std = np.std(gaps, ddof=1) if len(gaps) > 1 else 0.0
    print(
        f"{size:7,d}  "
        + "".join(
            f"{cells[a]['accuracy_mean']:15.3f} ± {cells[a]['accuracy_std']:.3f}"
            for a in ARMS[:3]
        )
        + f"   {np.mean(gaps):+.3f} ± {gap_std:.3f}"
    )
print(
    "\n(transfer - scratch twin: mean ± std of the paired differences; the "
    "intervals and verdicts, one per size, are in What this run showed.)"
)

fig = Figure(figsize=(6.4, 4.2))
ax = fig.subplots()
for arm in ARMS[:3]:
    points = sorted(
        (s for s in sweep_summary if s["arm"] == arm), key=lambda s: s["d2_size"]
    )
    ax.errorbar(
        [p["d2_size"] for p in points],
        [p["accuracy_mean"] for p in points],
        yerr=[p["accuracy_std"] for p in points],
        marker="o",
        capsize=3,
        label=arm,
        color=colors[arm],
    )
ax.set_xscale("log")
ax.set_xticks(sizes)
ax.set_xticklabels([f"{s:,}" for s in sizes])
ax.minorticks_off()
ax.set_xlabel("D2 training examples (log scale)")
ax.set_ylabel("test accuracy on D2")
ax.set_title("Frozen D1 layers vs scratch twin vs random frozen layers", fontsize=10)
ax.grid(alpha=0.3)
ax.legend(fontsize=8)
lab.show(fig)

# %% [markdown]
# ## What to answer the person who asked
#
# Compare with the question's numbers (D1 test 82%, no fine-tuning 12.3%,
# transfer 87.6%): the table above gives this run's versions of all three,
# plus the two numbers the question did not have, the scratch twin and the
# random-frozen control. The inference "most of the learning was done by the
# new layers because the model was poor without fine-tuning" does not follow
# from the 12.3%; whether the new layers did all the learning is measured by
# *transfer - random frozen*, and whether transfer was worth it by *transfer -
# scratch twin* at the D2 size you actually have. Research on larger networks
# says the same (Yosinski et al. 2014, notebook 05; Soekhoe et al. 2016,
# notebook 06): transferred features should help most when the target set is
# small, and the benefit should fade as it grows. Whether this run agrees is
# in the `transfer (D2 = ...) - scratch twin` lines of *What this run showed*
# below, one per D2 size, each with its interval and verdict.


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
arms = {arm: {r["seed"]: r[arm] for r in results} for arm in ARMS}
lines = [
    lab.compare_or_note(
        arms["transfer"],
        arms[other],
        name_a=f"transfer (D2 = {D2_SIZE:,})",
        name_b=other,
        comparisons=len(ARMS) - 1,  # transfer against three controls
    )
    for other in ARMS[1:]
]
for size in [s for s in sizes if s != D2_SIZE]:  # D2_SIZE: the lines above
    by_arm = lab.scores_by_seed(sweep, arm="arm", d2_size=size)
    lines.append(
        lab.compare_or_note(
            by_arm["transfer"],
            by_arm["scratch twin"],
            name_a=f"transfer (D2 = {size:,})",
            name_b="scratch twin",
        )
    )
print(lab.what_this_run_showed(lines))


# %% [markdown]
# ## Exercises
#
# 1. Unfreeze the D1 layers of the transfer model (fine-tune all six layers
#    from the D1 weights). Does it beat both the frozen transfer model and the
#    scratch twin at 8,000 examples? At 100?
# 2. Make D1 and D2 less related: use `fashion_to_mnist`'s Fashion-MNIST as D1
#    and MNIST digits as D2 (784 pixels again). How do *transfer - random
#    frozen* and *transfer - scratch twin* change?
# 3. Train the D1 network for 1 epoch instead of `EPOCHS`. Is a worse D1
#    network a worse feature extractor for D2?
# 4. The random-frozen control still reaches a decent accuracy. Why can three
#    new layers learn on top of three random ones? (Hint: random projections.)
#    Try `HIDDEN = (32, 16, 8)` and see whether that is still true.
# 5. Report this experiment the way the answer suggests: one learning-curve
#    figure and one sentence with a number and its spread over seeds.


# %%
print(lab.run_footer(START, quick=QUICK))
