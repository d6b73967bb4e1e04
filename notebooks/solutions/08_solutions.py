"""Solutions to notebook 08 (ImageNet backbones), offline: EfficientNet-Lite0.

Run: `python notebooks/solutions/08_solutions.py [--quick] [--exercise K]`.
Exercises 1-3 are the notebook's offline path; 4-8 were written for its
tfds path (flowers, EuroSAT) and two backbones, and these solutions answer
them offline too, with the lab's real backbone, `tl.application("efficientnet_lite0")` (ImageNet-1k weights
shipped with its package), on `imagenet_to_fashion` and `imagenet_to_mnist`
(`tlrecipes/lab/real_backbone.py`: 96-pixel inputs, cached features, a
linear probe chosen on validation). Where an exercise needs a second
ImageNet backbone or a tfds dataset, the docstring says what replaces it.
Arms are compared with `lab.compare` (paired by seed, 95% interval).
"""

from __future__ import annotations

import keras
import numpy as np
from _helpers import mean_std, note, report, run_main

import tlrecipes as tl
from tlrecipes import lab
from tlrecipes.heads import find_head_start
from tlrecipes.lab import real_backbone as rb
from tlrecipes.lab.real_backbone_arms import run_arms
from tlrecipes.optimizers import make_optimizer
from tlrecipes.training import HEAD_LR

TASKS = rb.REAL_BACKBONE_TASKS


def _settings(quick: bool) -> dict:
    return {
        "seeds": [0, 1] if quick else [0, 1, 2, 3, 4],
        "n": 2 if quick else 100,
        "size": 32 if quick else rb.RESOLUTION,
        "val_per_class": 2 if quick else 20,
        "test_per_class": 5 if quick else None,
        "c_grid": (1.0,) if quick else rb.C_GRID,
        "head_epochs": 1 if quick else 5,
        "fine_tune_epochs": 1 if quick else 5,
    }


def _protocol(quick: bool):
    s = _settings(quick)
    return rb.protocol_settings(size=s["size"], val_per_class=s["val_per_class"],
                                test_per_class=s["test_per_class"], c_grid=s["c_grid"])


def _probe(quick: bool, task: str, weights: str | None) -> dict[int, float]:
    s = _settings(quick)
    return {seed: rb.probe_on_task(lab.get_task(task), s["n"], seed, weights,
                                   _protocol(quick)).test_accuracy
            for seed in s["seeds"]}


def _probe_at(quick: bool, task: str, weights: str | None, size: int,
              n: int | None = None) -> dict[int, float]:
    s = _settings(quick)
    settings = rb.protocol_settings(size=size, val_per_class=s["val_per_class"],
                                    test_per_class=s["test_per_class"],
                                    c_grid=s["c_grid"])
    return {seed: rb.probe_on_task(lab.get_task(task), n or s["n"], seed, weights,
                                   settings).test_accuracy
            for seed in s["seeds"]}


def exercise_1(quick: bool) -> None:
    """`RESOLUTION = 224`: does the ImageNet probe's lead grow at ImageNet's scale?

    Method: on `imagenet_to_mnist`, the linear probe on ImageNet features and
    on the calibrated random-init twin's, at 96 px (the notebook) and at 224
    px (the network's training size; 32 and 64 px in quick mode); the lead is
    their paired difference, and the question is the difference of leads.
    Prediction: ImageNet filters were trained on objects tens of pixels wide,
    so digits upscaled to 224 px should match them better.
    """
    low, high = (32, 64) if quick else (rb.RESOLUTION, 224)
    task = TASKS[-1]
    leads = {}
    for size in (low, high):
        imagenet = _probe_at(quick, task, "imagenet", size)
        random = _probe_at(quick, task, None, size)
        print(f"  {size} px: imagenet {mean_std(imagenet)}, random-init "
              f"{mean_std(random)}")
        report(imagenet, random, f"imagenet@{size}", f"random-init@{size}")
        leads[size] = {seed: imagenet[seed] - random[seed] for seed in imagenet}
    report(leads[high], leads[low], f"lead@{high}", f"lead@{low}")


def exercise_2(quick: bool) -> None:
    """Skip the BatchNorm calibration: the random reference falls to chance.

    Method: the random-init twin's features read without `calibrate_batchnorm`
    (a `tl.application(..., weights=None)` built with the same seed, features
    by `predict`), against the calibrated twin the notebook uses, on
    `imagenet_to_fashion`. Why it is unfair: an uncalibrated network divides
    by BatchNorm statistics (mean 0, variance 1) that do not describe its
    activations, so the signal shrinks through 16 blocks; that measures a
    broken network, not "random convolutional features".
    """
    s = _settings(quick)
    task = TASKS[0]
    calibrated = _probe_at(quick, task, None, s["size"])
    raw, scale = {}, {}
    for seed in s["seeds"]:
        keras.utils.set_random_seed(seed)
        model = tl.application("efficientnet_lite0", weights=None, pooling="avg",
                               input_shape=(s["size"], s["size"], 3))
        train, val, test = rb.task_splits(task, s["n"], seed,
                                          val_per_class=s["val_per_class"],
                                          test_per_class=s["test_per_class"])

        def feats(x, model=model):
            return model.predict(rb.to_backbone_input(x, s["size"]), verbose=0)

        f_train = feats(train[0])
        scale[seed] = float(np.abs(f_train).mean())
        raw[seed] = rb.linear_probe((f_train, train[1]), (feats(val[0]), val[1]),
                                    (feats(test[0]), test[1]), c_grid=s["c_grid"],
                                    seed=seed).test_accuracy
    print(f"  uncalibrated features: mean |value| {np.mean(list(scale.values())):.2e}")
    print(f"  calibrated {mean_std(calibrated)}, uncalibrated {mean_std(raw)} "
          f"(chance {1 / len(lab.get_task(task).target_classes):.3f})")
    report(calibrated, raw, "calibrated random-init", "uncalibrated")


def exercise_3(quick: bool) -> None:
    """Add 1000 to `REAL_SIZES`: does the difference keep shrinking?

    Method: the ImageNet probe minus the calibrated random-init probe at each
    size on `imagenet_to_fashion` (offline MNIST holds only 400 per class),
    paired by seed; then the change from the middle size to the largest.
    Prediction (Soekhoe et al. 2016): the benefit of transfer shrinks as the
    target grows.
    """
    sizes = (2, 5, 10) if quick else (10, 100, 1000)
    task = TASKS[0]
    lead = {}
    for n in sizes:
        imagenet = _probe_at(quick, task, "imagenet", _settings(quick)["size"], n)
        random = _probe_at(quick, task, None, _settings(quick)["size"], n)
        lead[n] = {seed: imagenet[seed] - random[seed] for seed in imagenet}
        report(imagenet, random, f"imagenet@{n}/class", f"random-init@{n}/class")
    report(lead[sizes[-1]], lead[sizes[-2]], f"lead@{sizes[-1]}", f"lead@{sizes[-2]}")


def exercise_4(quick: bool) -> None:
    """Is the ranking a property of the dataset or of the backbone?

    Offline there is one ImageNet backbone; the second "backbone" here is its
    random-init twin (`weights=None`), the reference `linear_probe_similarity`
    uses. Method: the linear probe on both feature sets, on both tasks; the
    ranking of the two tasks under each. Swapping in MobileNetV2 /
    EfficientNetB0 needs `keras.applications` ImageNet weights (a download).
    """
    table = {}
    for weights in ("imagenet", None):
        for task in TASKS:
            table[(weights, task)] = _probe(quick, task, weights)
            print(f"  {weights or 'random-init'} on {task}: "
                  f"{mean_std(table[(weights, task)])}")
    for weights in ("imagenet", None):
        means = {t: float(np.mean(list(table[(weights, t)].values()))) for t in TASKS}
        ranked = sorted(TASKS, key=lambda t: -means[t])
        tied = len(set(means.values())) < len(means)
        print(f"  ranking with {weights or 'random-init'} features: "
              + " > ".join(f"{t} ({means[t]:.3f})" for t in ranked)
              + (" (equal means: a tie, no ranking)" if tied else ""))
    for task in TASKS:
        report(table[("imagenet", task)], table[(None, task)],
               f"imagenet ({task})", "random-init")
    note("the same ranking under both backbones points at the dataset.")


def _model(num_classes: int, size: int, seed: int):
    keras.utils.set_random_seed(seed)
    base = tl.application("efficientnet_lite0", input_shape=(size, size, 3))
    return tl.add_head(base, num_classes), base


def _compile(model, lr: float, quick: bool) -> None:
    model.compile(optimizer=make_optimizer("adam", lr),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], run_eagerly=quick)


def _accuracy(model, x, y) -> float:
    return float(np.mean(model.predict(x, batch_size=64, verbose=0).argmax(-1) == y))


def _fine_tune(quick: bool, task: str, seed: int, *, fine_tune_lr: float,
               unfreeze_from: int | str = 0) -> tuple[float, float]:
    """(accuracy after the head phase, after fine-tuning), as `two_phase_fit` does."""
    s = _settings(quick)
    (x, y), _, (x_test, y_test) = rb.task_splits(
        task, s["n"], seed, val_per_class=s["val_per_class"],
        test_per_class=s["test_per_class"])
    x, x_test = rb.to_backbone_input(x, s["size"]), rb.to_backbone_input(x_test, s["size"])
    model, base = _model(int(y.max()) + 1, s["size"], seed)
    tl.freeze_until(model, find_head_start(model))
    _compile(model, HEAD_LR, quick)
    model.fit(x, y, epochs=s["head_epochs"], batch_size=32, verbose=0)
    head = _accuracy(model, x_test, y_test)
    if unfreeze_from == "half":  # the first half of the base's layers stay frozen
        unfreeze_from = len(tl.flat_layers(base)) // 2
    tl.freeze_until(model, unfreeze_from)  # BatchNorm stays frozen
    _compile(model, fine_tune_lr, quick)
    model.fit(x, y, epochs=s["fine_tune_epochs"], batch_size=32, verbose=0)
    return head, _accuracy(model, x_test, y_test)


def exercise_5(quick: bool) -> None:
    """Freeze only the first half of the base, then fine-tune the rest.

    Method: head phase, then fine-tuning at 1e-5 from the middle layer of the
    base (`tl.freeze_until`, what `two_phase_fit(unfreeze_from=...)` does)
    against fine-tuning the whole base; on `imagenet_to_fashion` (EuroSAT
    needs tfds). Notebook 06 measures the same question (how many blocks to
    freeze) on its small network: compare the sign of the difference there.
    """
    s = _settings(quick)
    task = TASKS[0]
    seeds = s["seeds"][:1] if quick else s["seeds"]
    halves = {seed: _fine_tune(quick, task, seed, fine_tune_lr=1e-5,
                               unfreeze_from="half")[1] for seed in seeds}
    whole = {seed: _fine_tune(quick, task, seed, fine_tune_lr=1e-5)[1] for seed in seeds}
    print(f"  second half fine-tuned {mean_std(halves)}, whole base {mean_std(whole)}")
    report(halves, whole, "second half", "whole base")


def exercise_6(quick: bool) -> None:
    """`FINE_TUNE_LR = 1e-3`: how much of the pretrained advantage is destroyed?

    Method: the same head phase, then the whole base fine-tuned at 1e-5 and
    at 1e-3; the accuracy after the head phase and after fine-tuning. The
    Keras guide fine-tunes at 1e-5 because large steps overwrite the
    pretrained features before the new head's gradients settle.
    """
    s = _settings(quick)
    seeds = s["seeds"][:1] if quick else s["seeds"]
    for lr in (1e-5, 1e-3):
        runs = {seed: _fine_tune(quick, TASKS[0], seed, fine_tune_lr=lr) for seed in seeds}
        head = {k: v[0] for k, v in runs.items()}
        tuned = {k: v[1] for k, v in runs.items()}
        print(f"  lr={lr:g}: after the head {mean_std(head)}, after fine-tuning "
              f"{mean_std(tuned)}")
        report(tuned, head, f"fine-tuned @{lr:g}", "head only")


def exercise_7(quick: bool) -> None:
    """Where does the from-scratch twin catch up, as the target grows?

    Method: `run_arms` (feature extractor, random-init probe, scratch twin,
    each tuned on validation with the same number of configurations) at
    growing sizes (10, 100, 1000 per class; EuroSAT is replaced by
    `imagenet_to_fashion`, which has 6,000 per class). Kornblith et al.
    (2019) and He et al. (2019) saw the gap to scratch shrink with data.
    """
    s = _settings(quick)
    result = run_arms(TASKS[0], sizes=(2,) if quick else (10, 100, 1000),
                      seeds=s["seeds"], size=s["size"],
                      val_per_class=s["val_per_class"],
                      test_per_class=s["test_per_class"], epochs=1 if quick else 10,
                      c_grid=s["c_grid"], lr_grid=(1e-3,) if quick else rb.LR_GRID)
    for n, entry in result["sizes"].items():
        arms = {a: {k: r["test_accuracy"] for k, r in v.items()}
                for a, v in entry["arms"].items()}
        print(f"  {n} per class: " + ", ".join(f"{a} {mean_std(v)}" for a, v in arms.items()))
        report(arms["feature_extractor"], arms["scratch"], f"feature_extractor (n={n})",
               "scratch", comparisons=len(arms) - 1)
    note("the first size whose verdict is 'tie' is where the twin caught up.")


def exercise_8(quick: bool) -> None:
    """EfficientNet fed images scaled to [0, 1] (the classic bug): the cost.

    Method: the linear probe on features of the same images passed in
    [0, 255] (what the network expects: it rescales inside) and divided by
    255 first (scaled twice); paired by seed on `imagenet_to_fashion`.
    """
    s = _settings(quick)
    right, wrong = {}, {}
    for seed in s["seeds"]:
        train, val, test = rb.task_splits(TASKS[0], s["n"], seed,
                                          val_per_class=s["val_per_class"],
                                          test_per_class=s["test_per_class"])
        for out, scale in ((right, 1.0), (wrong, 255.0)):
            def feats(x, scale=scale):
                return rb.cached_features(x.astype("float32") / scale, size=s["size"])

            out[seed] = rb.linear_probe((feats(train[0]), train[1]),
                                        (feats(val[0]), val[1]),
                                        (feats(test[0]), test[1]),
                                        c_grid=s["c_grid"], seed=seed).test_accuracy
    print(f"  [0, 255] {mean_std(right)}, [0, 1] {mean_std(wrong)}")
    report(wrong, right, "[0, 1] inputs", "[0, 255] inputs")


if __name__ == "__main__":
    run_main(globals(), "08")
