"""Solutions to notebook 09 (fine-tuning controls: discriminative, gradual, surgical).

Run: `python notebooks/solutions/09_solutions.py [--quick] [--exercise K]`.
On the notebook's protocol: per task and seed, `VAL_PER_CLASS` validation
images per class are held out of the training pool; phase 1 trains a new head
on the frozen source base and keeps its best-validation weights; every
phase-2 method starts from exactly those weights, sees the same batches, and
ends on its own best-validation epoch (`lab.BestOnValidation`). Every choice
(best spacing, best method, a ranking) is made on validation; test is read
once per final model. Methods are compared on test with `lab.compare`
(paired by seed, 95% interval).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import keras
import numpy as np
from _helpers import get_source, mean_std, note, report, run_main

import tlrecipes as tl
from tlrecipes import lab
from tlrecipes.lab.array_splits import target_splits
from tlrecipes.lab.evaluation import accuracy_of
from tlrecipes.lab.finetune_controls import fine_tune

TASKS = ["fashion_a_to_b", "fashion_to_mnist"]
FINE_TUNE_LR = 1e-4


def _settings(quick: bool) -> dict:
    return {
        "seeds": [0] if quick else [0, 1, 2, 3, 4],
        "n": 10 if quick else 350,  # offline MNIST holds 400 per class
        "val": 5 if quick else 50,  # validation images per class
        "head_epochs": 1 if quick else 5,
        "fine_tune_epochs": 1 if quick else 6,
        "test": 20 if quick else None,  # test images per class
        "batch_size": 32,
    }


@dataclass
class Scores:
    """`{(task, method): {seed: accuracy}}` on validation (best epoch) and test."""

    val: dict = field(default_factory=dict)
    test: dict = field(default_factory=dict)

    def add(self, task: str, method: str, seed: int, best, model, x_test, y_test):
        model.set_weights(best.weights)  # the final model: best on validation
        self.val.setdefault((task, method), {})[seed] = best.best
        self.test.setdefault((task, method), {})[seed] = accuracy_of(
            model, x_test, y_test)  # the one test read of this model


def _phase2(model, method: str, x, y, *, epochs: int, lr: float,
            multipliers: Callable | None, best) -> None:
    """One method's phase 2; a custom `multipliers(model)` for `discriminative:*`."""
    if multipliers is None:
        fine_tune(model, method.split(":")[0], x, y, lr=lr, epochs=epochs,
                  callbacks=[best])
    else:
        tl.two_phase_fit(model, x, y, head_epochs=0, fine_tune_epochs=epochs,
                         fine_tune_lr=lr, lr_multipliers=multipliers(model),
                         callbacks=[best], verbose=0)


def _noisy(x, rng, noise: float):
    return np.clip(x + rng.normal(0, noise, x.shape), 0, 1).astype("float32")


def run_methods(quick: bool, methods, *, tasks=TASKS, n: int | None = None,
                epochs: int | None = None, lr: float | Callable = FINE_TUNE_LR,
                multipliers: dict[str, Callable] | None = None,
                noise: float = 0.0) -> Scores:
    """Validation and test scores of every method, `head_only` included.

    `lr` may be a function of (model, x, y) returning the rate (an LR finder);
    `multipliers` maps a `discriminative:*` method name to its multipliers
    function; `noise` adds Gaussian noise of that std (pixels in [0, 1]) to
    the target's training, validation and test images.
    """
    s = _settings(quick)
    out = Scores()
    for task in tasks:
        source = get_source(task, quick)
        for seed in s["seeds"]:
            data = target_splits(lab.get_task(task), n or s["n"], seed, s["val"])
            x, y, x_val, y_val = data.x_train, data.y_train, data.x_val, data.y_val
            x_test, y_test = data.x_test, data.y_test
            if s["test"]:  # balanced: the official test splits are sorted by class
                x_test, y_test = lab.sample_per_class(x_test, y_test, s["test"], seed=0)
            if noise:
                rng = np.random.default_rng(seed)
                x, x_val, x_test = (_noisy(a, rng, noise) for a in (x, x_val, x_test))
            keras.utils.set_random_seed(seed)
            model = tl.add_head(source.copy_base(), data.num_classes)
            best = lab.BestOnValidation(x_val, y_val)
            tl.two_phase_fit(model, x, y, head_epochs=s["head_epochs"],
                             fine_tune_epochs=0, seed=seed, callbacks=[best],
                             batch_size=s["batch_size"], verbose=0)
            after_head = best.weights
            out.add(task, "head_only", seed, best, model, x_test, y_test)
            rate = lr(model, x, y) if callable(lr) else lr
            for method in methods:
                model.set_weights(after_head)
                keras.utils.set_random_seed(seed + 1000)  # the same batches for all
                best = lab.BestOnValidation(x_val, y_val)
                _phase2(model, method, x, y, epochs=epochs or s["fine_tune_epochs"],
                        lr=rate, multipliers=(multipliers or {}).get(method),
                        best=best)
                out.add(task, method, seed, best, model, x_test, y_test)
    return out


def _print(out: Scores) -> None:
    for (task, method), v in out.test.items():
        print(f"  {task} {method}: validation {mean_std(out.val[(task, method)])}, "
              f"test {mean_std(v)}")


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
        report(out.test[(task, "gradual")], out.test[(task, "plain")],
               f"gradual ({task})", "plain")


def exercise_2(quick: bool) -> None:
    """Discriminative rates spaced by 2.6, by 10, and with `lowest=0.5`.

    Method: `discriminative` fine-tuning with `tl.lr_multipliers(model, 2.6)`
    (ULMFiT's factor), `(model, 10.0)` and `(model, lowest=0.5)`; the best
    spacing per task picked on validation by `lab.pick_best`, and its test
    score against plain fine-tuning (Bonferroni x3: the best of three).
    """
    spacing = {
        "discriminative:2.6": lambda m: tl.lr_multipliers(m, 2.6),
        "discriminative:10": lambda m: tl.lr_multipliers(m, 10.0),
        "discriminative:lowest0.5": lambda m: tl.lr_multipliers(m, lowest=0.5),
    }
    out = run_methods(quick, ["plain", *spacing], multipliers=spacing)
    _print(out)
    for task in TASKS:
        best = lab.pick_best({m: out.val[(task, m)] for m in spacing})
        print(f"  {task}: best spacing on validation {best}")
        report(out.test[(task, best)], out.test[(task, "plain")], best, "plain",
               comparisons=len(spacing))


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
            report(out.test[(task, m)], out.test[(task, "plain")], f"{m} ({task})",
                   "plain", comparisons=len(methods) - 1)
        best = lab.pick_best({m: out.val[(task, m)] for m in methods})
        print(f"  {task}: best on validation {best}")


def exercise_4(quick: bool) -> None:
    """`tl.lr_find` after phase 1 as `FINE_TUNE_LR`: does the ranking change?

    Method: per seed, `tl.lr_find` on the model after its head phase
    (the whole base unfrozen, BatchNorm frozen, as in phase 2; the finder
    restores the weights); the suggested rate used by every method; the
    ranking of the methods by validation accuracy compared with the ranking
    at 1e-4.
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
            means = {m: float(np.mean(list(out.val[(task, m)].values())))
                     for m in methods}
            ranking = sorted(methods, key=lambda m: -means[m])
            print(f"  {task}, rate {label}, validation: "
                  + " > ".join(f"{m} ({means[m]:.3f})" for m in ranking))
    note("a different order between the two rates means the ranking depends on "
         "the rate; differences within the intervals of exercise 3 are noise.")


def exercise_5(quick: bool) -> None:
    """Input-level shift: Gaussian noise on `fashion_a_to_b`, block 1 vs block 3.

    Method: the target's training, validation and test images with Gaussian noise
    (std 0.3 in [0, 1] pixels, a corruption as in Lee et al. 2023);
    `surgical_block1` against `surgical_block3`. Lee et al. found that
    input-level corruptions are best handled by tuning the first block.
    """
    out = run_methods(quick, ["surgical_block1", "surgical_block3"],
                      tasks=TASKS[:1], noise=0.3)
    _print(out)
    report(out.test[(TASKS[0], "surgical_block1")],
           out.test[(TASKS[0], "surgical_block3")],
           "surgical_block1 (noisy)", "surgical_block3 (noisy)")


if __name__ == "__main__":
    run_main(globals(), "09")
