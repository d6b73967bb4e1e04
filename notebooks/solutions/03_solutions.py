"""Solutions to notebook 03 (large target, similar source: fine-tuning rates, BatchNorm).

Run: `python notebooks/solutions/03_solutions.py [--quick] [--exercise K]`.
As in the notebook: phase 1 trains a new head on the frozen source base
(`tl.add_head`), phase 2 fine-tunes from exactly those weights at each rate.
Arms are compared with `lab.compare` (paired by seed, 95% interval).
"""

from __future__ import annotations

import math

import keras
import numpy as np
from _helpers import budget, get_source, mean_std, note, report, run_main

import tlrecipes as tl
from tlrecipes import lab
from tlrecipes.freezing import is_batchnorm
from tlrecipes.optimizers import make_optimizer

TASK = "fashion_a_to_b"
HEAD_LR = 1e-2


def _settings(quick: bool) -> dict:
    return {
        "n": 20 if quick else 500,
        "head_epochs": 1 if quick else 3,
        "fine_tune_epochs": 1 if quick else 5,
        "lrs": [1e-4, 1e-2] if quick else [1e-5, 1e-4, 1e-3, 1e-2, 1e-1],
        "test_per_class": 20 if quick else None,
        "batch_size": 32,
    }


def _data(task: str, n: int, seed: int, test_per_class: int | None):
    data = lab.get_task(task).target_data()
    x, y = lab.sample_per_class(data.x_train, data.y_train, n, seed=seed)
    x_test, y_test = data.x_test, data.y_test
    if test_per_class is not None:
        x_test, y_test = lab.sample_per_class(x_test, y_test, test_per_class, seed=0)
    scale = np.float32(255.0)
    return (x.astype("float32") / scale, y, x_test.astype("float32") / scale, y_test,
            len(data.class_names))


def _compile(model, optimizer, lr: float) -> None:
    model.compile(optimizer=make_optimizer(optimizer, lr),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])


def _accuracy(model, x, y) -> float:
    return float(np.mean(model.predict(x, batch_size=512, verbose=0).argmax(-1) == y))


def _lr_sweep(quick: bool, *, fine_tune_epochs: int | None = None, optimizer="adam",
              lrs=None, freeze_at: int | str = 0) -> dict:
    """`{lr: {seed: test accuracy}}` after phase 2, plus `"head"` after phase 1."""
    s = _settings(quick)
    source = get_source(TASK, quick)
    out: dict = {"head": {}}
    for seed in budget(quick).seeds:
        x, y, x_test, y_test, classes = _data(TASK, s["n"], seed, s["test_per_class"])
        keras.utils.set_random_seed(seed)
        model = tl.add_head(source.copy_base(), classes)
        _compile(model, "adam", HEAD_LR)
        model.fit(x, y, epochs=s["head_epochs"], batch_size=s["batch_size"], verbose=0)
        head_weights = model.get_weights()
        out["head"][seed] = _accuracy(model, x_test, y_test)
        for lr in lrs or s["lrs"]:
            model.set_weights(head_weights)
            tl.freeze_until(model, freeze_at)  # BatchNorm stays frozen
            _compile(model, optimizer, lr)
            keras.utils.set_random_seed(seed)
            model.fit(x, y, epochs=fine_tune_epochs or s["fine_tune_epochs"],
                      batch_size=s["batch_size"], verbose=0)
            out.setdefault(lr, {})[seed] = _accuracy(model, x_test, y_test)
    return out


def _print_sweep(label: str, sweep: dict) -> str:
    rates = {f"{k:g}": v for k, v in sweep.items() if k != "head"}
    print(f"  {label}: head only {mean_std(sweep['head'])}; "
          + ", ".join(f"lr={k} {mean_std(v)}" for k, v in rates.items()))
    best = lab.pick_best(rates)
    print(f"  {label}: best rate {best}")
    return best


def exercise_1(quick: bool) -> None:
    """Does the best fine-tuning rate move down when phase 2 is twice as long?

    Method: the rate sweep with `FINE_TUNE_EPOCHS` and with twice as many;
    the best mean rate of each (`lab.pick_best`, exploratory). The
    prediction in the exercise: a longer schedule needs a smaller rate to
    move the weights the same distance.
    """
    epochs = _settings(quick)["fine_tune_epochs"]
    for e in (epochs, 2 * epochs):
        _print_sweep(f"{e} fine-tuning epochs", _lr_sweep(quick, fine_tune_epochs=e))


def exercise_2(quick: bool) -> None:
    """SGD with momentum instead of Adam: is the useful range of rates the same?

    Method: the same sweep with `keras.optimizers.SGD(momentum=0.9)` (passed
    to `make_optimizer`, which copies its configuration) and with Adam.
    Adam normalises each step by the gradient's running scale, so its step
    size is roughly the rate; SGD's step is the rate times the gradient, so
    its useful rates are expected to sit higher.
    """
    for name, optimizer in (("adam", "adam"), ("sgd+momentum",
                                               keras.optimizers.SGD(momentum=0.9))):
        _print_sweep(name, _lr_sweep(quick, optimizer=optimizer))


def exercise_3(quick: bool) -> None:
    """Fine-tune only the last block at 1e-2: does freezing blocks 1-2 protect?

    Method: phase 2 at 1e-2 with `tl.freeze_until(model, "block3_conv")`
    against the whole base at 1e-2, same head, same batches; paired by seed.
    """
    last = _lr_sweep(quick, lrs=[1e-2], freeze_at="block3_conv")
    whole = _lr_sweep(quick, lrs=[1e-2], freeze_at=0)
    print(f"  head only {mean_std(whole['head'])}; last block {mean_std(last[1e-2])}; "
          f"whole base {mean_std(whole[1e-2])}")
    report(last[1e-2], whole[1e-2], "last block only @1e-2", "whole base @1e-2")
    report(last[1e-2], last["head"], "last block only @1e-2", "head only")


def _pitfall(task: str, epochs: int, quick: bool, n: int | None = None) -> dict:
    """`{seed: evaluate - train-mode accuracy}` with BatchNorm training (batch 8)."""
    s = _settings(quick)
    source = get_source(task, quick)
    gaps = {}
    for seed in budget(quick).seeds:
        x, y, _, _, classes = _data(task, n or s["n"], seed, s["test_per_class"])
        keras.utils.set_random_seed(seed)
        base = source.copy_base()
        for layer in tl.flat_layers(base):
            if is_batchnorm(layer):
                layer.momentum = 0.99
        model = tl.add_head(base, classes, dropout=0.0, bn_training=True)
        _compile(model, "adam", HEAD_LR)
        history = model.fit(x, y, epochs=epochs, batch_size=8, verbose=0)
        fit = float(history.history["accuracy"][-1])
        evaluate = float(model.evaluate(x, y, batch_size=256, verbose=0)[1])
        gaps[seed] = evaluate - fit
        print(f"  {task}, {epochs} epoch(s), seed {seed}: fit log {fit:.3f}, "
              f"evaluate {evaluate:.3f}, gap {evaluate - fit:+.3f} "
              f"({epochs * math.ceil(len(x) / 8)} steps)")
    return gaps


def exercise_4(quick: bool) -> None:
    """Does the fit/evaluate gap close with `PITFALL_EPOCHS = 10`?

    Method: the pitfall arm (BatchNorm training, momentum 0.99, batch 8) for
    the notebook's epochs and for 10 (3 in quick mode); the gap `evaluate -
    fit log` per seed. The moving averages move by `1 - momentum` per step,
    so more steps are expected to bring them to the target's statistics.
    """
    short = _pitfall(TASK, 1 if quick else 2, quick)
    long = _pitfall(TASK, 3 if quick else 10, quick)
    report(long, short, "gap (long)", "gap (short)")
    note("a gap near 0 after the long run means the averages caught up.")


def exercise_5(quick: bool) -> None:
    """The pitfall on `fashion_to_mnist`: is the gap larger?

    Method: the pitfall arm on `fashion_to_mnist` (400 per class, 20 in quick
    mode) and on `fashion_a_to_b`; the per-seed gaps compared. Digits'
    activation statistics differ more from Fashion-MNIST's, so moving
    averages calibrated on the source are further off.
    """
    epochs = 1 if quick else 2
    n = 20 if quick else 400
    digits = _pitfall("fashion_to_mnist", epochs, quick, n=n)
    clothes = _pitfall(TASK, epochs, quick, n=n)
    report({s: abs(v) for s, v in digits.items()}, {s: abs(v) for s, v in clothes.items()},
           "|gap| fashion_to_mnist", "|gap| fashion_a_to_b")


if __name__ == "__main__":
    run_main(globals(), "03")
