"""Solutions to notebook 01 (small target, similar source: the feature extractor).

Run: `python notebooks/solutions/01_solutions.py [--quick] [--exercise K]`.
Runs use `lab.size_sweep` on `fashion_a_to_b` (the notebook's task); arms are
compared with `lab.compare` (paired by seed, 95% interval).
"""

from __future__ import annotations

from _helpers import (
    STORE,
    budget,
    get_source,
    mean_std,
    note,
    report,
    run_main,
    scores,
    target_arrays,
)

from tlrecipes import lab
from tlrecipes.lab.array_splits import prepare_target, target_splits
from tlrecipes.lab.runs import train_run

TASK = "fashion_a_to_b"


def _sweep(task: str, sizes, strategies, quick: bool, **config) -> list[dict]:
    b = budget(quick)
    return lab.size_sweep(get_source(task, quick), target_arrays(task, b.test_per_class),
                          sizes=sizes, strategies=strategies, seeds=b.seeds,
                          config=b.config(**config), progress=False, store=STORE)


def exercise_1(quick: bool) -> None:
    """At which size does `scratch` catch up with `feature_extractor`?

    Method: both strategies at 5, 10 and 50 per class, the same budget;
    `feature_extractor - scratch` per size. The Keras guide and CS231n
    recommend the frozen base for small, similar targets; Soekhoe et al.
    (2016) saw the advantage of transfer shrink as the target grows.
    """
    sizes = [5] if quick else [5, 10, 50]
    rows = _sweep(TASK, sizes, ["feature_extractor", "scratch"], quick)
    for n in sizes:
        print(f"  {n} per class:")
        report(scores(rows, strategy="feature_extractor", n_per_class=n),
               scores(rows, strategy="scratch", n_per_class=n),
               "feature_extractor", "scratch")
    note("the first size whose verdict is 'tie' or 'behind' is where scratch "
         "has caught up, at this budget.")


def exercise_2(quick: bool) -> None:
    """The frozen base's head at `head_lr=1e-3` instead of 1e-2.

    Method: `feature_extractor` at 10 per class with `TrainConfig(head_lr=1e-3)`
    and with the default 1e-2; test and training accuracy of each. `TrainConfig`
    documents why the default is larger: a linear head on fixed features
    converges slowly within a short step budget, while a network trained from
    scratch moves all its layers and diverges more easily at large rates.
    """
    arms = {}
    for lr in (1e-3, 1e-2):
        rows = _sweep(TASK, [10], ["feature_extractor"], quick, head_lr=lr)
        arms[lr] = rows
        print(f"  head_lr={lr:g}: test {mean_std(scores(rows))}, "
              f"train {mean_std(scores(rows, 'train_accuracy'))}")
    report(scores(arms[1e-3]), scores(arms[1e-2]), "head_lr 1e-3", "head_lr 1e-2")
    note("a training accuracy still low at 1e-3 means the head had not "
         "converged in the budget (underfitting, not overfitting).")


def exercise_3(quick: bool) -> None:
    """Is there a freezing depth that beats both extremes?

    Method: `freeze_1`, `freeze_2`, `feature_extractor` (all frozen) and
    `fine_tune_all` at 10 per class; the best arm picked with `lab.pick_best`
    and every arm compared with it (Bonferroni over the family). Yosinski et
    al. (2014) found the first layers general, which argues for freezing
    them; Soekhoe et al. (2016) found freezing 2-3 layers best with little
    data.
    """
    strategies = ["feature_extractor", "freeze_2", "freeze_1", "fine_tune_all"]
    rows = _sweep(TASK, [10], strategies, quick)
    arms = {s: scores(rows, strategy=s) for s in strategies}
    for s, v in arms.items():
        print(f"  {s}: {mean_std(v)}")
    best = lab.pick_best(arms)
    print(f"  best mean: {best} (picked on test here: an exploratory choice)")
    for s in strategies:
        if s != best:
            report(arms[best], arms[s], best, s, comparisons=len(strategies) - 1)


def exercise_4(quick: bool) -> None:
    """The notebook's two claims on `fashion_to_mnist` (clothes to digits).

    Method: on both tasks, `feature_extractor - scratch` (does the frozen base
    beat training from scratch?) and `fine_tune_all - feature_extractor`
    (does fine-tuning everything help on a small target?). Yosinski et al.
    (2014) predict that features from a distant task transfer less well.
    """
    for task in (TASK, "fashion_to_mnist"):
        rows = _sweep(task, [10], ["feature_extractor", "fine_tune_all", "scratch"],
                      quick)
        print(f"  {task}:")
        report(scores(rows, strategy="feature_extractor"),
               scores(rows, strategy="scratch"), "feature_extractor", "scratch")
        report(scores(rows, strategy="fine_tune_all"),
               scores(rows, strategy="feature_extractor"),
               "fine_tune_all", "feature_extractor")


def exercise_5(quick: bool) -> None:
    """The generalisation gap of one scratch run, measured without dropout.

    Method: one `scratch` run at 10 per class (`train_run`, the function
    behind `size_sweep`); its training images re-evaluated with
    `model.evaluate` (inference mode: no dropout, BatchNorm on moving
    statistics) beside the accuracy `fit` logged (dropout on) and the test
    accuracy.
    """
    b = budget(quick)
    target = prepare_target(target_arrays(TASK, b.test_per_class))
    splits = target_splits(target, 10, b.seeds[0], 0)
    metrics, model = train_run(get_source(TASK, quick).base, splits, b.config(),
                               b.seeds[0], strategy="scratch")
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    train_eval = float(model.evaluate(splits.x_train, splits.y_train, verbose=0)[1])
    print(f"  fit log (dropout on): {metrics['train_accuracy']:.3f}; evaluate on "
          f"the training images: {train_eval:.3f}; test: {metrics['accuracy']:.3f}")
    print(f"  generalisation gap (evaluate - test): {train_eval - metrics['accuracy']:+.3f}")
    note("the fit log and evaluate differ by dropout and by BatchNorm's mode "
         "(batch statistics in fit, moving averages in evaluate: notebook 03's "
         "pitfall, since scratch trains BatchNorm); evaluate - test is the "
         "generalisation gap.")


if __name__ == "__main__":
    run_main(globals(), "01")
