"""Solutions to notebook 04 (large target, different source: speed-up, BatchNorm shift).

Run: `python notebooks/solutions/04_solutions.py [--quick] [--exercise K]`.
Part 1 is `lab.transfer_vs_scratch(strategy="fine_tune_all")` on
`fashion_to_mnist`; part 2 measures each BatchNorm layer's input statistics
against its stored moving statistics, as the notebook does. Arms are
compared with `lab.compare` (paired by seed, 95% interval).
"""

from __future__ import annotations

import tempfile

import keras
import numpy as np
from _helpers import STORE, budget, get_source, mean_std, note, report, run_main

import tlrecipes as tl
from tlrecipes import lab
from tlrecipes.freezing import is_batchnorm

TASK = "fashion_to_mnist"


def _part1(quick: bool, n: int, epochs: int, **config) -> dict:
    """Per-seed transfer and scratch accuracy, final gap and speed-up."""
    b = budget(quick)
    data = lab.get_task(TASK).target_data()
    x_test, y_test = data.x_test, data.y_test
    if b.test_per_class:
        x_test, y_test = lab.sample_per_class(x_test, y_test, b.test_per_class, seed=0)
    result = lab.transfer_vs_scratch(
        get_source(TASK, quick), (data.x_train, data.y_train, x_test, y_test),
        strategy="fine_tune_all", n_per_class=n, seeds=b.seeds,
        config=lab.TrainConfig(epochs=epochs, min_steps=0,
                               curve_points=2 if quick else 15, **config),
        progress=False, store=STORE)
    out = {k: {r["seed"]: float(r[k]) for r in result.benefits}
           for k in ("transfer_accuracy", "scratch_accuracy", "final_difference",
                     "threshold_speedup")}
    print(f"  n={n}, epochs={epochs}, {config or 'defaults'}: final gap "
          f"{mean_std(out['final_difference'])}, speed-up "
          f"{mean_std(out['threshold_speedup'])}x")
    return out


def exercise_1(quick: bool) -> None:
    """With 50 per class instead of 400, do the final gap and the speed-up grow?

    Method: part 1 at both sizes; final gap and threshold speed-up per seed,
    compared between sizes. Soekhoe et al. (2016): the smaller the target,
    the more transfer helps.
    """
    small = _part1(quick, 10 if quick else 50, 1 if quick else 15)
    large = _part1(quick, 20 if quick else 400, 1 if quick else 15)
    report(small["final_difference"], large["final_difference"],
           "final gap (small)", "final gap (large)")


def exercise_2(quick: bool) -> None:
    """Does scratch close the final gap when `EPOCHS` doubles (He et al. 2019)?

    Method: part 1 with `EPOCHS` and `2 * EPOCHS`; the transfer and scratch
    accuracies of each. He, Girshick and Dollar (2019, "Rethinking ImageNet
    pre-training") found scratch catches up given a long enough schedule.
    """
    n = 20 if quick else 400
    for epochs in ((1, 2) if quick else (15, 30)):
        out = _part1(quick, n, epochs)
        report(out["transfer_accuracy"], out["scratch_accuracy"],
               f"pretrained ({epochs} ep)", f"scratch ({epochs} ep)")
    note("a 'tie' at twice the epochs where the shorter run said 'ahead' is "
         "scratch catching up.")


def bn_input_stats(base: keras.Model, images: np.ndarray) -> dict[str, tuple]:
    """Per-channel mean and variance of each BatchNorm layer's input (notebook 04)."""
    names = [layer.name for layer in base.layers if is_batchnorm(layer)]
    outputs = keras.Model(
        base.input, [base.get_layer(n.replace("_bn", "_conv")).output for n in names]
    ).predict(images, batch_size=500, verbose=0)
    return {n: (o.mean(axis=(0, 1, 2)), o.var(axis=(0, 1, 2)))
            for n, o in zip(names, outputs, strict=True)}


def mean_shift(base: keras.Model, images: np.ndarray) -> dict[str, float]:
    """Mean |input mean - moving mean| / moving std, per BatchNorm layer."""
    out = {}
    for name, (mean, _) in bn_input_stats(base, images).items():
        bn = base.get_layer(name)
        mm, mv = np.asarray(bn.moving_mean), np.asarray(bn.moving_variance)
        out[name] = float(np.mean(np.abs(mean - mm) / np.sqrt(mv + bn.epsilon)))
    return out


def _images(splits, count: int) -> np.ndarray:
    x = splits.x_train[:count]
    return x.astype("float32") / 255.0


def exercise_3(quick: bool) -> None:
    """The BatchNorm shift on a similar domain: digits 0-4 -> digits 5-9.

    Method: a source trained on `mnist_a_to_b`'s digits 0-4
    (`lab.train_source_model`, cached; in quick mode one epoch on 100 digits
    per class); the mean shift of each BatchNorm
    layer's input on its own digits (control) and on digits 5-9, beside the
    same numbers for `fashion_to_mnist`'s source on digits.
    """
    count = 200 if quick else 2000
    with tempfile.TemporaryDirectory() as folder:
        for task_name in ("mnist_a_to_b", TASK):
            task = lab.get_task(task_name)
            if task_name == TASK:
                source = get_source(TASK, quick)  # shipped
            elif quick:  # a one-epoch source on 100 digits per class
                data = task.source_data()
                x, y = lab.sample_per_class(data.x_train, data.y_train, 100, seed=0)
                xt, yt = lab.sample_per_class(data.x_test, data.y_test, 20, seed=0)
                source = lab.train_source_model(
                    (x, y, xt, yt),
                    lab.SourceConfig(epochs=1), cache_dir=folder)
            else:
                source = lab.train_source_model(task_name)  # cached after once
            for which, images in (
                ("source images", _images(task.source_data(), count)),
                ("target images", _images(task.target_data(), count)),
            ):
                shift = mean_shift(source.base, images)
                print(f"  {task_name}, {which}: "
                      + ", ".join(f"{k} {v:.2f} σ" for k, v in shift.items()))
    note("the target-minus-source difference per layer is the domain shift; "
         "compare its size between the two tasks.")


def _head_only(quick: bool, mode: str) -> dict[int, float]:
    """Frozen base + trained head; BatchNorm `frozen`, `set` to the digits', or `trains`."""
    b = budget(quick)
    source = get_source(TASK, quick)
    data = lab.get_task(TASK).target_data()
    x_test = data.x_test.astype("float32") / 255.0
    out = {}
    for seed in b.seeds:
        x, y = lab.sample_per_class(data.x_train, data.y_train,
                                    20 if quick else 400, seed=seed)
        x = x.astype("float32") / 255.0
        keras.utils.set_random_seed(seed)
        base = source.copy_base()
        if mode == "set":
            for name, (mean, var) in bn_input_stats(base, x).items():
                bn = base.get_layer(name)
                bn.moving_mean.assign(mean)
                bn.moving_variance.assign(var)
        model = tl.add_head(base, len(data.class_names), bn_training=mode == "trains")
        tl.two_phase_fit(model, x, y, head_epochs=1 if quick else 8, fine_tune_epochs=0,
                         train_bn=mode == "trains", seed=seed, batch_size=32, verbose=0)
        logits = model.predict(x_test, batch_size=500, verbose=0)
        out[seed] = float(np.mean(logits.argmax(-1) == data.y_test))
    print(f"  BatchNorm {mode}: {mean_std(out)}")
    return out


def exercise_4(quick: bool) -> None:
    """Moving statistics set to the digits' directly, then only the head trains.

    Method: each BatchNorm layer's `moving_mean` / `moving_variance` assigned
    the digits' per-channel input statistics (`bn_input_stats`, all read in
    one pass through the source network, so a layer's statistics do not yet
    reflect the re-set layers below it), everything frozen, the head trained; against `train_bn=True` (fastai's `train_bn`)
    and against BatchNorm left frozen. AdaBN (Li et al. 2016) re-estimates
    the statistics this way.
    """
    set_stats = _head_only(quick, "set")
    trains = _head_only(quick, "trains")
    frozen = _head_only(quick, "frozen")
    report(set_stats, trains, "stats set", "train_bn=True")
    report(set_stats, frozen, "stats set", "BN frozen")


def exercise_5(quick: bool) -> None:
    """Fine-tune everything at 1e-4 instead of 1e-3: speed-up and final gap.

    Method: part 1 with `TrainConfig(learning_rate=1e-4)` and the default; the
    per-seed final gaps compared. A smaller rate keeps the pretrained weights
    closer to where they started (and slows scratch down as much).
    """
    n, epochs = (20, 1) if quick else (400, 15)
    low = _part1(quick, n, epochs, learning_rate=1e-4)
    default = _part1(quick, n, epochs)
    report(low["final_difference"], default["final_difference"],
           "final gap @1e-4", "final gap @1e-3")


if __name__ == "__main__":
    run_main(globals(), "04")
