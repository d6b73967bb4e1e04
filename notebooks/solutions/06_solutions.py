"""Solutions to notebook 06 (how much data: Soekhoe et al. 2016's size sweep).

Run: `python notebooks/solutions/06_solutions.py [--quick] [--exercise K]`.
Every run is `lab.size_sweep` on `fashion_to_mnist` (the notebook's offline
task) unless the exercise names another; arms are compared with
`lab.compare` (paired by seed, 95% interval).
"""

from __future__ import annotations

import os
import tempfile

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

TASK = "fashion_to_mnist"
STRATEGIES = ["scratch", "fine_tune_all", "freeze_1", "freeze_2", "feature_extractor",
              "two_phase"]


def _sizes(quick: bool) -> list[int]:
    return [5] if quick else [5, 20, 100, 400]


def _sweep(quick: bool, strategies, sizes=None, task: str = TASK, seeds=None,
           **config) -> list[dict]:
    b = budget(quick)
    return lab.size_sweep(get_source(task, quick), target_arrays(task, b.test_per_class),
                          sizes=sizes or _sizes(quick), strategies=strategies,
                          seeds=seeds or b.seeds, config=b.config(**config),
                          progress=False, store=STORE)


def exercise_1(quick: bool) -> None:
    """How much of the feature extractor's result is its head's learning rate?

    A run whose base is entirely frozen is a linear probe and gets `head_lr`
    whatever its name (`train_run`), so `freeze_3` and `feature_extractor`
    are the same run: their difference is printed as a check. The question is
    answered by the feature extractor at `head_lr=1e-3` against the default
    1e-2, paired by seed.
    """
    rows = _sweep(quick, ["freeze_3", "feature_extractor"])
    slow = _sweep(quick, ["feature_extractor"], head_lr=1e-3)
    for n in _sizes(quick):
        fe = scores(rows, strategy="feature_extractor", n_per_class=n)
        same = scores(rows, strategy="freeze_3", n_per_class=n)
        print(f"  n={n}: freeze_3 - feature_extractor per seed: "
              + ", ".join(f"{k}: {same[k] - fe[k]:+.4f}" for k in fe))
        report(scores(slow, n_per_class=n), fe, f"head at 1e-3 (n={n})", "head at 1e-2")


def _gains(rows: list[dict], sizes, strategies) -> None:
    for n in sizes:
        base = scores(rows, strategy="scratch", n_per_class=n)
        for s in strategies:
            if s != "scratch":
                report(scores(rows, strategy=s, n_per_class=n), base,
                       f"{s} (n={n})", "scratch", comparisons=len(strategies) - 1)


def exercise_2(quick: bool) -> None:
    """The similar pair (`fashion_a_to_b`, up to 2,000 per class).

    Method: scratch, `fine_tune_all` and `two_phase` at 5 to 2,000 per class
    on `fashion_a_to_b`; each transfer arm against scratch per size
    (Bonferroni over the two arms). Soekhoe et al. (2016) saw the benefit of
    transfer fade around 500 images per class; a similar source is predicted
    to help to larger sizes.
    """
    sizes = [5] if quick else [5, 50, 500, 2000]
    strategies = ["scratch", "fine_tune_all", "two_phase"]
    rows = _sweep(quick, strategies, sizes=sizes, task="fashion_a_to_b")
    _gains(rows, sizes, strategies)
    note("the largest size still 'ahead' is how far transfer keeps helping.")


def exercise_3(quick: bool) -> None:
    """Twice `MIN_STEPS`: which strategies gain, and does the crossover move?

    Method: the sweep at `min_steps` and `2 * min_steps`; each strategy's
    accuracy compared between budgets per size, and each transfer arm against
    scratch at both budgets. Soekhoe et al. trained to convergence; a longer
    budget helps most the arms furthest from convergence (scratch, with the
    most weights to learn).
    """
    b = budget(quick)
    strategies = ["scratch", "fine_tune_all", "feature_extractor"]
    short = _sweep(quick, strategies)
    long = _sweep(quick, strategies, min_steps=2 * b.min_steps)
    for n in _sizes(quick):
        for s in strategies:
            report(scores(long, strategy=s, n_per_class=n),
                   scores(short, strategy=s, n_per_class=n),
                   f"{s} 2x steps (n={n})", "1x steps")
    print("  transfer arms against scratch, 2x steps:")
    _gains(long, _sizes(quick), strategies)


def exercise_4(quick: bool) -> None:
    """Training against test accuracy of `scratch` at 5 per class.

    Method: the sweep's scratch runs; `lab.plot_size_sweep(rows,
    value="train_accuracy")` saved beside the test-accuracy plot (to
    `$TLRECIPES_SOLUTIONS_OUT` or a temporary folder), and the gap printed. A
    training accuracy far above the test accuracy means the network
    memorised the few images (overfitting), which a pretrained base is meant
    to prevent.
    """
    rows = _sweep(quick, ["scratch", "feature_extractor"])
    for s in ("scratch", "feature_extractor"):
        train = scores(rows, "train_accuracy", strategy=s, n_per_class=5)
        test = scores(rows, strategy=s, n_per_class=5)
        print(f"  {s} at 5/class: train {mean_std(train)}, test {mean_std(test)}, "
              f"gap {mean_std({k: train[k] - test[k] for k in test})}")
    folder = os.environ.get("TLRECIPES_SOLUTIONS_OUT") or tempfile.mkdtemp()
    for value in ("train_accuracy", "accuracy"):
        fig = lab.plot_size_sweep(rows, value=value)
        path = os.path.join(folder, f"06_exercise_4_{value}.png")
        fig.savefig(path)
        print(f"  figure: {path}")


def exercise_5(quick: bool) -> None:
    """Ten seeds instead of five: which of the "best k" ties separate?

    Method: the sweep with ten seeds (two in quick mode); the best strategy
    per size by `lab.pick_best` on the first five seeds and on all ten. The
    comparison module's rule: at least 5 seeds on a CPU, 10 on a GPU; picks
    on fewer seeds often flip.
    """
    seeds = [0, 1] if quick else list(range(10))
    strategies = STRATEGIES[:3] if quick else STRATEGIES
    first = seeds[:1] if quick else seeds[:5]
    rows = _sweep(quick, strategies, seeds=seeds)
    for n in _sizes(quick):
        arms = {s: scores(rows, strategy=s, n_per_class=n) for s in strategies}
        few = {s: {k: v for k, v in a.items() if k in first} for s, a in arms.items()}
        print(f"  n={n}: best on {len(first)} seed(s): {lab.pick_best(few)}; "
              f"on {len(seeds)} seeds: {lab.pick_best(arms)}")


if __name__ == "__main__":
    run_main(globals(), "06")
