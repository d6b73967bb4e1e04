"""Solutions to notebook 07 (was it really transfer? the forum question's controls).

Run: `python notebooks/solutions/07_solutions.py [--quick] [--exercise K]`.
As in the notebook: a dense network trained on D1 (Fashion-MNIST classes
0-4, flattened), its three hidden layers reused under three new layers for
D2, against the scratch twin (`lab.scratch_twin`, all six layers trained)
and the random-frozen control (the twin's first three layers frozen). Arms
are compared with `lab.compare` (paired by seed, 95% interval).
"""

from __future__ import annotations

import os
import tempfile

import keras
import numpy as np
from _helpers import mean_std, note, report, run_main

from tlrecipes import lab

NEW_HIDDEN = (64, 32)


def _settings(quick: bool) -> dict:
    return {
        "seeds": [0] if quick else [0, 1, 2, 3, 4],
        "d1": 1000 if quick else 22_000,
        "d2": 500 if quick else 8_000,
        "epochs": 1 if quick else 20,
        "hidden": (256, 128, 64),
        "test": 50 if quick else None,  # test images per class
    }


def _flat(x):
    x = x.reshape(len(x), -1).astype("float32")
    return x / 255.0 if x.max() > 1.0 else x


def _draw(data, size, seed):
    x, y = lab.sample_per_class(data.x_train, data.y_train, size // data.num_classes, seed)
    return _flat(x), y


def _network(features, hidden, num_classes, seed):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((features,))
    x = inputs
    for i, units in enumerate(hidden, 1):
        x = keras.layers.Dense(units, activation="relu", name=f"d1_dense{i}")(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes, name="d1_output")(x))


def _with_new_layers(network, hidden, num_classes, seed):
    keras.utils.set_random_seed(seed + 1000)
    x = network.get_layer(f"d1_dense{len(hidden)}").output
    for i, units in enumerate(NEW_HIDDEN, 1):
        x = keras.layers.Dense(units, activation="relu", name=f"new_dense{i}")(x)
    return keras.Model(network.input, keras.layers.Dense(num_classes, name="new_output")(x))


def _freeze_d1(model, frozen: bool = True):
    for layer in model.layers:
        layer.trainable = not (frozen and layer.name.startswith("d1_"))
    return model


def _fit(model, x, y, epochs, test=None):
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    history = model.fit(x, y, epochs=epochs, batch_size=128, verbose=0,
                        validation_data=test)
    return history.history.get("val_accuracy")


def _accuracy(model, x, y) -> float:
    return float(np.mean(model.predict(x, batch_size=1000, verbose=0).argmax(-1) == y))


def _arm_model(arm: str, network, hidden, num_classes: int, seed: int):
    """One arm's model for D2, built on the trained D1 `network`."""
    model = _with_new_layers(network, hidden, num_classes, seed)
    if arm in ("scratch twin", "random frozen"):
        model = lab.scratch_twin(model, seed=seed + 2000)  # all six layers re-drawn
    return _freeze_d1(model, frozen=arm in ("transfer", "random frozen"))


def experiment(quick: bool, *, task: str = "fashion_a_to_b", d2: int | None = None,
               d1_epochs: int | None = None, hidden=None, arms=None,
               curves: bool = False) -> dict:
    """`{arm: {seed: D2 test accuracy}}` (and `{arm: [curve per seed]}` if `curves`).

    Arms: `transfer` (D1 layers frozen), `fine-tuned transfer` (D1 layers
    trained too), `scratch twin`, `random frozen`.
    """
    s = _settings(quick)
    hidden = hidden or s["hidden"]
    t = lab.get_task(task)
    source, target = t.source_data(), t.target_data()
    x_test, y_test = _flat(target.x_test), target.y_test
    if s["test"]:  # balanced: a test split may be sorted by class
        x_test, y_test = lab.sample_per_class(x_test, y_test, s["test"], seed=0)
    arms = arms or ["transfer", "scratch twin", "random frozen"]
    out: dict = {a: {} for a in arms}
    out["curves"] = {a: [] for a in arms}
    for seed in s["seeds"]:
        x1, y1 = _draw(source, s["d1"], seed)
        x2, y2 = _draw(target, d2 or s["d2"], seed)
        network = _network(x1.shape[1], hidden, source.num_classes, seed)
        _fit(network, x1, y1, d1_epochs or s["epochs"])
        for arm in arms:
            model = _arm_model(arm, network, hidden, target.num_classes, seed)
            curve = _fit(model, x2, y2, s["epochs"], (x_test, y_test) if curves else None)
            out[arm][seed] = _accuracy(model, x_test, y_test)
            out["curves"][arm].append(curve)
    return out


def exercise_1(quick: bool) -> None:
    """Fine-tune all six layers from the D1 weights, at 8,000 and 100 examples.

    Method: the fine-tuned transfer arm (every layer trainable, D1 weights as
    the start) against the frozen transfer model and the scratch twin, at
    D2 = 8,000 and 100 examples. The Keras guide and Yosinski et al. (2014)
    (AnB+) expect fine-tuning to help when there is enough target data.
    """
    arms = ["fine-tuned transfer", "transfer", "scratch twin"]
    for d2 in ([100] if quick else [8_000, 100]):
        out = experiment(quick, d2=d2, arms=arms)
        print(f"  D2 = {d2}: " + ", ".join(f"{a} {mean_std(out[a])}" for a in arms))
        report(out[arms[0]], out[arms[1]], f"{arms[0]} ({d2})", arms[1], comparisons=2)
        report(out[arms[0]], out[arms[2]], f"{arms[0]} ({d2})", arms[2], comparisons=2)


def exercise_2(quick: bool) -> None:
    """Less related D1 and D2: Fashion-MNIST -> MNIST digits.

    Method: the experiment on `fashion_to_mnist` (D1 = Fashion-MNIST, D2 = the
    offline digits) and on `fashion_a_to_b`; transfer - random frozen and
    transfer - scratch twin on each. Yosinski et al. (2014): features of a
    distant task transfer less, so both differences are predicted to shrink.
    """
    d2 = 500 if quick else 4_000  # the offline digits hold 400 per class
    for task in ("fashion_a_to_b", "fashion_to_mnist"):
        out = experiment(quick, task=task, d2=d2)
        print(f"  {task}:")
        report(out["transfer"], out["random frozen"], "transfer", "random frozen")
        report(out["transfer"], out["scratch twin"], "transfer", "scratch twin")


def exercise_3(quick: bool) -> None:
    """Is a D1 network trained for 1 epoch a worse feature extractor for D2?

    Method: the frozen transfer arm with the D1 network trained for 1 epoch
    and for `EPOCHS`; the two compared per seed.
    """
    epochs = _settings(quick)["epochs"]
    short = experiment(quick, d1_epochs=1, arms=["transfer"])["transfer"]
    full = experiment(quick, d1_epochs=max(2, epochs), arms=["transfer"])["transfer"]
    report(short, full, "transfer (D1 1 epoch)", f"transfer (D1 {max(2, epochs)} epochs)")


def exercise_4(quick: bool) -> None:
    """Why can three new layers learn on top of three random ones?

    Method: the random-frozen control against the transfer model and the
    scratch twin with `HIDDEN = (256, 128, 64)` and `(32, 16, 8)`. A random
    ReLU layer is a random projection, which roughly preserves distances
    between inputs when it is wide enough (Johnson-Lindenstrauss; Rahimi and
    Recht 2007's random features), so a trained layer on top can still
    separate the classes; an 8-unit random bottleneck is predicted to lose
    that.
    """
    for hidden in ((256, 128, 64), (32, 16, 8)):
        out = experiment(quick, hidden=hidden)
        print(f"  HIDDEN={hidden}: "
              + ", ".join(f"{a} {mean_std(out[a])}" for a in
                          ("transfer", "scratch twin", "random frozen")))
        report(out["random frozen"], out["scratch twin"], "random frozen", "scratch twin")
    note("compare 'random frozen - scratch twin' between the two widths.")


def exercise_5(quick: bool) -> None:
    """The experiment reported as one figure and one sentence.

    Method: the learning curves (D2 test accuracy after each epoch, mean and
    ±1 std over seeds) of the three arms in one figure, saved to
    `$TLRECIPES_SOLUTIONS_OUT` (or a temporary folder), and the sentence built
    from `lab.compare`'s numbers.
    """
    from matplotlib.figure import Figure

    out = experiment(quick, curves=True)
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    for arm in ("transfer", "scratch twin", "random frozen"):
        curves = np.array(out["curves"][arm], dtype=float)
        epochs = np.arange(1, curves.shape[1] + 1)
        ax.plot(epochs, curves.mean(0), marker="o", label=arm)
        ax.fill_between(epochs, curves.mean(0) - curves.std(0),
                        curves.mean(0) + curves.std(0), alpha=0.2)
    ax.set_xlabel("epoch on D2")
    ax.set_ylabel("D2 test accuracy")
    ax.legend()
    folder = os.environ.get("TLRECIPES_SOLUTIONS_OUT") or tempfile.mkdtemp()
    path = os.path.join(folder, "07_exercise_5_curves.png")
    fig.savefig(path)
    print(f"  figure: {path}")
    seeds = len(out["transfer"])
    result = report(out["transfer"], out["scratch twin"], "transfer", "scratch twin")
    if result is not None:
        print(f"  sentence: reusing the D1 layers changed D2 test accuracy by "
              f"{result.points} points against the same network trained from "
              f"scratch ({seeds} seeds; verdict: {result.verdict}).")
    else:
        diff = next(iter(out["transfer"].values())) - next(iter(out["scratch twin"].values()))
        print(f"  sentence: with {seeds} seed no spread exists; the difference was "
              f"{100 * diff:+.1f} points (run in full mode for the interval).")


if __name__ == "__main__":
    run_main(globals(), "07")
