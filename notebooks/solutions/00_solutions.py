"""Solutions to notebook 00 (what transfers): pretrained vs scratch, three benefits.

Run: `python notebooks/solutions/00_solutions.py [--quick] [--exercise K]`.
Every exercise trains with `lab.transfer_vs_scratch` on the offline task
`fashion_a_to_b` (the notebook's), prints the measured benefits and compares
arms with `lab.compare` (paired by seed, 95% interval).
"""

from __future__ import annotations

import tempfile

from _helpers import (
    STORE,
    budget,
    get_source,
    mean_std,
    note,
    report,
    run_main,
    target_arrays,
)

from tlrecipes import lab

TASK = "fashion_a_to_b"
BENEFITS = ("jumpstart", "auc_difference", "final_difference")


def _benefits(result) -> dict[str, dict[int, float]]:
    """`{benefit: {seed: value}}` of a `ScratchComparison`."""
    return {
        key: {b["seed"]: float(b[key]) for b in result.benefits}
        for key in (*BENEFITS, "transfer_accuracy", "scratch_accuracy")
    }


def _print_benefits(label: str, values: dict[str, dict[int, float]]) -> None:
    parts = ", ".join(f"{k} {mean_std(values[k])}" for k in BENEFITS)
    print(f"  {label}: {parts}")


def exercise_1(quick: bool) -> None:
    """Final gap at 5 and 500 images per class, against its standard deviation.

    Method: `transfer_vs_scratch(strategy="fine_tune_all")` at each size; the
    final gap's mean and std over seeds, and the paired comparison of the two
    final accuracies. Soekhoe et al. (2016) predict the benefit fades as the
    target grows (roughly beyond 500 images per class).
    """
    b = budget(quick)
    source, target = get_source(TASK, quick), target_arrays(TASK, b.test_per_class)
    for n in [5] if quick else [5, 10, 200, 500]:
        result = lab.transfer_vs_scratch(source, target, strategy="fine_tune_all",
                                         n_per_class=n, seeds=b.seeds,
                                         config=b.config(), progress=False, store=STORE)
        v = _benefits(result)
        gap = v["final_difference"]
        mean = sum(gap.values()) / len(gap)
        std = (sum((g - mean) ** 2 for g in gap.values()) / max(1, len(gap) - 1)) ** 0.5
        print(f"  {n} per class: final gap {mean:+.3f}, std {std:.3f}, "
              f"gap larger than std: {abs(mean) > std}")
        report(v["transfer_accuracy"], v["scratch_accuracy"], "pretrained", "scratch")
    note("the first size where 'gap larger than std' turns False, and the "
         "interval starts to include 0, is where the gap stops being measurable.")


def exercise_2(quick: bool) -> None:
    """Which of the three benefits changes most with the strategy?

    Method: the same comparison with `feature_extractor`, `two_phase` and
    `fine_tune_all` at 10 per class; for each benefit the spread (max - min
    of the means) across strategies. A frozen base (Keras guide) starts from
    good features, so the jumpstart is where the strategies are expected to
    differ; fine-tuning all layers is expected to matter for the final gap.
    """
    b = budget(quick)
    source, target = get_source(TASK, quick), target_arrays(TASK, b.test_per_class)
    means: dict[str, dict[str, float]] = {}
    strategies = ("feature_extractor", "fine_tune_all")
    for strategy in strategies if quick else (*strategies[:1], "two_phase", *strategies[1:]):
        result = lab.transfer_vs_scratch(source, target, strategy=strategy,
                                         n_per_class=10, seeds=b.seeds,
                                         config=b.config(), progress=False, store=STORE)
        v = _benefits(result)
        _print_benefits(strategy, v)
        means[strategy] = {k: sum(v[k].values()) / len(v[k]) for k in BENEFITS}
    spread = {k: max(m[k] for m in means.values()) - min(m[k] for m in means.values())
              for k in BENEFITS}
    print("  spread across strategies: "
          + ", ".join(f"{k} {s:.3f}" for k, s in spread.items()))
    print(f"  changes most: {max(spread, key=spread.get)}")


def exercise_3(quick: bool) -> None:
    """Are the benefits smaller for a less similar source (`fashion_to_mnist`)?

    Method: `fine_tune_all` vs scratch at 10 per class on both tasks; the
    per-seed benefits of the two tasks compared with `lab.compare`. Yosinski
    et al. (2014) found transferability falls as the tasks grow apart.
    """
    b = budget(quick)
    values = {}
    for task in (TASK, "fashion_to_mnist"):
        result = lab.transfer_vs_scratch(
            get_source(task, quick), target_arrays(task, b.test_per_class),
            strategy="fine_tune_all", n_per_class=10, seeds=b.seeds,
            config=b.config(), progress=False, store=STORE)
        values[task] = _benefits(result)
        _print_benefits(task, values[task])
    for key in BENEFITS:
        report(values["fashion_to_mnist"][key], values[TASK][key],
               f"{key} (to_mnist)", f"{key} (a_to_b)")
    note("a 'behind' verdict means the benefit is smaller for the less similar "
         "source; 'tie' means this many seeds cannot tell.")


def exercise_4(quick: bool) -> None:
    """Reusing a scratch model's weights between runs of a hyperparameter search.

    Method: train a network once on the target sample itself
    (`lab.train_source_model` on those images), then use its base as the
    "source" of `transfer_vs_scratch` on the same images; the jumpstart is
    the gap at the first curve point. A warm start from a model that already
    fits the data is expected to start high: it is not transfer from another
    task.
    """
    b = budget(quick)
    x, y, x_test, y_test = target_arrays(TASK, b.test_per_class)
    x10, y10 = lab.sample_per_class(x, y, 10, seed=0)
    epochs = 4 if quick else 300  # 50 images, batch 64: one step per epoch
    with tempfile.TemporaryDirectory() as folder:
        first = lab.train_source_model((x10, y10, x_test, y_test),
                                       lab.SourceConfig(epochs=epochs), cache_dir=folder)
    print(f"  first run (scratch): test accuracy {first.metrics['test_accuracy']:.3f}")
    result = lab.transfer_vs_scratch(first, (x10, y10, x_test, y_test),
                                     strategy="fine_tune_all", n_per_class=10,
                                     seeds=b.seeds, config=b.config(), progress=False, store=STORE)
    v = _benefits(result)
    _print_benefits("second run, started from the first", v)
    print(f"  jumpstart: {mean_std(v['jumpstart'])}")


def exercise_5(quick: bool) -> None:
    """Halving `MIN_STEPS`: which benefit grows and which shrinks?

    Method: `fine_tune_all` vs scratch at 10 per class with `min_steps` and
    `min_steps // 2`; each benefit compared between the two budgets, paired by
    seed. A shorter run leaves scratch further from convergence, so the gap
    measured at the end is expected to be closer to the early one.
    """
    b = budget(quick)
    source, target = get_source(TASK, quick), target_arrays(TASK, b.test_per_class)
    values = {}
    for steps in (b.min_steps, b.min_steps // 2):
        result = lab.transfer_vs_scratch(source, target, strategy="fine_tune_all",
                                         n_per_class=10, seeds=b.seeds,
                                         config=b.config(min_steps=steps),
                                         progress=False, store=STORE)
        values[steps] = _benefits(result)
        _print_benefits(f"min_steps={steps}", values[steps])
    half, full = b.min_steps // 2, b.min_steps
    for key in BENEFITS:
        report(values[half][key], values[full][key], f"{key} (half)", f"{key} (full)")
    note("'ahead' marks a benefit that grows when the budget is halved, "
         "'behind' one that shrinks.")


if __name__ == "__main__":
    run_main(globals(), "00")
