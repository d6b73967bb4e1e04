"""Solutions to notebook 09 (fine-tuning controls: discriminative, gradual, surgical).

Run: `python notebooks/solutions/09_solutions.py [--quick] [--exercise K]`.
As in the notebook: per task and seed, phase 1 trains a new head on the
frozen source base (`tl.two_phase_fit(..., fine_tune_epochs=0)`); every
phase-2 method starts from exactly those weights and sees the same batches.
Methods are compared with `lab.compare` (paired by seed, 95% interval).
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np
from _helpers import get_source, mean_std, note, report, run_main

import tlrecipes as tl
from tlrecipes import lab

TASKS = ["fashion_a_to_b", "fashion_to_mnist"]
FINE_TUNE_LR = 1e-4


def _settings(quick: bool) -> dict:
    return {
        "seeds": [0] if quick else [0, 1, 2, 3, 4],
        "n": 10 if quick else 400,
        "head_epochs": 1 if quick else 5,
        "fine_tune_epochs": 1 if quick else 6,
        "test": 20 if quick else None,  # test images per class
        "batch_size": 32,
    }


def _accuracy(model, x, y) -> float:
    out = keras.ops.convert_to_numpy(model(x, training=False))
    return float(np.mean(out.argmax(-1) == y))


def fine_tune(model, method: str, x, y, *, epochs: int, lr: float,
              multipliers: Callable | None = None, batch_size: int = 32) -> None:
    """Phase 2 of one method (notebook 09's `fine_tune`), `multipliers(model)` optional."""
    fit = {"batch_size": batch_size, "verbose": 0}
    rate = lr * (10 if method.endswith("_10x") else 1)
    if method.startswith(("plain", "discriminative")):
        mult = None
        if method.startswith("disc"):
            mult = multipliers(model) if multipliers else tl.lr_multipliers(model, 2.6)
        tl.two_phase_fit(model, x, y, head_epochs=0, fine_tune_epochs=epochs,
                         fine_tune_lr=rate, lr_multipliers=mult, **fit)
    elif method == "gradual":
        tl.gradual_unfreeze_fit(model, x, y, epochs_per_stage=max(1, epochs // 3),
                                learning_rate=rate, **fit)
    else:
        tl.surgical_fit(model, x, y, block=method.removeprefix("surgical_"),
                        epochs=epochs, learning_rate=rate, **fit)


def run_methods(quick: bool, methods, *, tasks=TASKS, n: int | None = None,
                epochs: int | None = None, lr: float | Callable = FINE_TUNE_LR,
                multipliers: dict[str, Callable] | None = None,
                noise: float = 0.0) -> dict:
    """`{(task, method): {seed: test accuracy}}`, `head_only` included.

    `lr` may be a function of (model, x, y) returning the rate (an LR finder);
    `multipliers` maps a `discriminative*` method name to its multipliers
    function; `noise` adds Gaussian noise of that std (pixels in [0, 1]) to
    the target's training and test images.
    """
    s = _settings(quick)
    out: dict = {}
    for task in tasks:
        source = get_source(task, quick)
        for seed in s["seeds"]:
            data = lab.get_task(task).target_subset(n or s["n"], seed=seed)
            x, y = data.x_train.astype("float32") / 255.0, data.y_train
            x_test, y_test = data.x_test.astype("float32") / 255.0, data.y_test
            if s["test"]:  # balanced: the official test splits are sorted by class
                x_test, y_test = lab.sample_per_class(x_test, y_test, s["test"], seed=0)
            if noise:
                rng = np.random.default_rng(seed)
                x = np.clip(x + rng.normal(0, noise, x.shape), 0, 1).astype("float32")
                x_test = np.clip(x_test + rng.normal(0, noise, x_test.shape), 0,
                                 1).astype("float32")
            keras.utils.set_random_seed(seed)
            model = tl.add_head(source.copy_base(), len(data.class_names))
            tl.two_phase_fit(model, x, y, head_epochs=s["head_epochs"],
                             fine_tune_epochs=0, seed=seed,
                             batch_size=s["batch_size"], verbose=0)
            after_head = [keras.ops.convert_to_numpy(v) for v in model.variables]
            out.setdefault((task, "head_only"), {})[seed] = _accuracy(model, x_test, y_test)
            rate = lr(model, x, y) if callable(lr) else lr
            for method in methods:
                for variable, value in zip(model.variables, after_head, strict=True):
                    variable.assign(value)
                keras.utils.set_random_seed(seed + 1000)
                fine_tune(model, method.split(":")[0], x, y,
                          epochs=epochs or s["fine_tune_epochs"], lr=rate,
                          multipliers=(multipliers or {}).get(method))
                out.setdefault((task, method), {})[seed] = _accuracy(model, x_test, y_test)
    return out


def _print(out: dict) -> None:
    for (task, method), v in out.items():
        print(f"  {task} {method}: {mean_std(v)}")


def exercise_1(quick: bool) -> None:
    """Twelve fine-tuning epochs: does gradual unfreezing still beat plain fine-tuning?

    Method: `gradual` (four epochs per stage) against `plain` with
    `FINE_TUNE_EPOCHS = 12` (3 in quick mode), on both tasks. ULMFiT (Howard
    and Ruder 2018) unfreezes gradually to avoid catastrophic forgetting
    early in fine-tuning; with a longer budget plain fine-tuning has time to
    recover from its first steps.
    """
    out = run_methods(quick, ["plain", "gradual"], epochs=3 if quick else 12)
    _print(out)
    for task in TASKS:
        report(out[(task, "gradual")], out[(task, "plain")], f"gradual ({task})", "plain")


def exercise_2(quick: bool) -> None:
    """Discriminative rates spaced by 2.6, by 10, and with `lowest=0.5`.

    Method: `discriminative` fine-tuning with `tl.lr_multipliers(model, 2.6)`
    (ULMFiT's factor), `(model, 10.0)` and `(model, lowest=0.5)`; the best
    spacing per task by `lab.pick_best` (exploratory, on test), each against
    plain fine-tuning.
    """
    spacing = {
        "discriminative:2.6": lambda m: tl.lr_multipliers(m, 2.6),
        "discriminative:10": lambda m: tl.lr_multipliers(m, 10.0),
        "discriminative:lowest0.5": lambda m: tl.lr_multipliers(m, lowest=0.5),
    }
    out = run_methods(quick, ["plain", *spacing], multipliers=spacing)
    _print(out)
    for task in TASKS:
        arms = {m: out[(task, m)] for m in spacing}
        best = lab.pick_best(arms)
        print(f"  {task}: best spacing {best}")
        report(out[(task, best)], out[(task, "plain")], best, "plain")


METHODS = ["plain", "discriminative", "gradual", "surgical_block1", "surgical_block2",
           "surgical_block3", "surgical_head"]


def exercise_3(quick: bool) -> None:
    """With 20 images per class: which control matters most, does surgical_head win?

    Method: every method at `N_PER_CLASS = 20`, each against plain
    fine-tuning (Bonferroni over the family), and `surgical_head` against the
    best of the others. Lee et al. (2023, "Surgical fine-tuning") found the
    best block to tune depends on where the shift is; with tiny targets,
    fewer trained weights overfit less.
    """
    methods = METHODS[:1] + METHODS[-2:] if quick else METHODS
    out = run_methods(quick, methods, n=20)
    _print(out)
    for task in TASKS:
        for m in methods[1:]:
            report(out[(task, m)], out[(task, "plain")], f"{m} ({task})", "plain",
                   comparisons=len(methods) - 1)
        best = lab.pick_best({m: out[(task, m)] for m in methods})
        print(f"  {task}: best mean {best}")


def exercise_4(quick: bool) -> None:
    """`tl.lr_find` after phase 1 as `FINE_TUNE_LR`: does the ranking change?

    Method: per seed, `tl.lr_find` on the model after its head phase
    (the whole base unfrozen, BatchNorm frozen, as in phase 2; the finder
    restores the weights); the suggested rate used by every method; the
    ranking of the methods compared with the ranking at 1e-4.
    """
    def finder(model, x, y) -> float:
        tl.freeze_until(model, 0)
        model.compile(optimizer="adam", metrics=["accuracy"],
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        result = tl.lr_find(model, x, y, num_steps=10 if len(x) < 100 else 100,
                            end_lr=1.0)
        print(f"    lr_find suggests {result.suggestion:.2e}")
        return float(result.suggestion)

    methods = ["plain", "gradual", "surgical_block1"] if quick else METHODS
    for label, lr in (("1e-4", FINE_TUNE_LR), ("lr_find", finder)):
        out = run_methods(quick, methods, lr=lr, tasks=TASKS[:1] if quick else TASKS)
        for task in TASKS[:1] if quick else TASKS:
            means = {m: float(np.mean(list(out[(task, m)].values()))) for m in methods}
            ranking = sorted(methods, key=lambda m: -means[m])
            print(f"  {task}, rate {label}: "
                  + " > ".join(f"{m} ({means[m]:.3f})" for m in ranking))
    note("a different order between the two rates means the ranking depends on "
         "the rate; differences within the intervals of exercise 3 are noise.")


def exercise_5(quick: bool) -> None:
    """Input-level shift: Gaussian noise on `fashion_a_to_b`, block 1 vs block 3.

    Method: the target's training and test images with Gaussian noise
    (std 0.3 in [0, 1] pixels, a corruption as in Lee et al. 2023);
    `surgical_block1` against `surgical_block3`. Lee et al. found that
    input-level corruptions are best handled by tuning the first block.
    """
    out = run_methods(quick, ["surgical_block1", "surgical_block3"],
                      tasks=TASKS[:1], noise=0.3)
    _print(out)
    report(out[(TASKS[0], "surgical_block1")], out[(TASKS[0], "surgical_block3")],
           "surgical_block1 (noisy)", "surgical_block3 (noisy)")


if __name__ == "__main__":
    run_main(globals(), "09")
