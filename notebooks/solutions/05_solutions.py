"""Solutions to notebook 05 (transferability by layer, Yosinski et al. 2014).

Run: `python notebooks/solutions/05_solutions.py [--quick] [--exercise K]`.
Every run is `lab.transferability_by_layer` (AnB, AnB+, BnB, BnB+ at each
cut, and base B) on `fashion_a_to_b`; arms are compared with `lab.compare`
(paired by seed, 95% interval).
"""

from __future__ import annotations

import tempfile

from _helpers import (
    STORE,
    budget,
    get_source,
    is_offline,
    mean_std,
    note,
    report,
    run_main,
    scores,
    target_arrays,
)

from tlrecipes import lab

TASK = "fashion_a_to_b"
VARIANTS = ("AnB", "AnB+", "BnB", "BnB+")


def _settings(quick: bool) -> dict:
    return {
        "n": 10 if quick else 200,
        "cuts": [1, 3] if quick else [1, 2, 3],
        "epochs": 1 if quick else 10,
        "min_steps": 6 if quick else 300,
        "test_per_class": 10 if quick else None,
    }


def _layers(quick: bool, source=None, task: str = TASK, n: int | None = None,
            base_b_steps: int | None = None, cuts=None, variants=VARIANTS) -> list[dict]:
    s = _settings(quick)
    config = lab.TrainConfig(epochs=s["epochs"], min_steps=s["min_steps"])
    base_b = lab.TrainConfig(epochs=s["epochs"],
                             min_steps=base_b_steps or 2 * s["min_steps"])
    return lab.transferability_by_layer(
        source or get_source(task, quick), target_arrays(task, s["test_per_class"]),
        cuts=cuts or s["cuts"], variants=variants, n_per_class=n or s["n"],
        seeds=budget(quick).seeds, config=config, base_b_config=base_b,
        progress=False, store=STORE)


def _curves(rows: list[dict], variants=VARIANTS) -> dict[str, dict[int, float]]:
    """`{variant: {cut: mean accuracy}}`, base B under key `"baseB"`."""
    out: dict = {"baseB": {0: _mean(scores(rows, variant="baseB"))}}
    for v in variants:
        cuts = sorted({r["n"] for r in rows if r["variant"] == v})
        out[v] = {n: _mean(scores(rows, variant=v, n=n)) for n in cuts}
    return out


def _mean(values: dict) -> float:
    return sum(values.values()) / len(values)


def _print_curves(label: str, curves: dict) -> None:
    for v, points in curves.items():
        if v == "baseB":
            print(f"  {label} baseB: {points[0]:.3f}")
        else:
            print(f"  {label} {v}: " + ", ".join(f"n={n} {a:.3f}" for n, a in points.items()))


def exercise_1(quick: bool) -> None:
    """Which of the four curves moves most when task B has 20 images per class?

    Method: the whole experiment at 20 and at 200 per class (10 and 20 in
    quick mode); for each variant, the mean over cuts of the change in
    accuracy. Yosinski et al. trained on about 1,300 images per class; with
    little data the fine-tuned variants have more to overfit, the frozen ones
    less to learn.
    """
    small_n, large_n = (5, 10) if quick else (20, 200)
    cuts = [1] if quick else None
    curves = {n: _curves(_layers(quick, n=n, cuts=cuts)) for n in (small_n, large_n)}
    for n, c in curves.items():
        _print_curves(f"{n}/class", c)
    change = {v: _mean({k: curves[large_n][v][k] - curves[small_n][v][k]
                        for k in curves[large_n][v]}) for v in curves[large_n]}
    print("  change (large - small), mean over cuts: "
          + ", ".join(f"{v} {d:+.3f}" for v, d in change.items()))
    print(f"  moves most: {max(change, key=lambda v: abs(change[v]))}")


def exercise_2(quick: bool) -> None:
    """BnB - base B when base B gets the variants' budget instead of twice it.

    Method: BnB at every cut and base B, with `base_b_config.min_steps` at 2x
    and at 1x the variants' `min_steps`; BnB - base B per seed for each. The
    notebook's reason for 2x: BnB's copied blocks were trained once as base B
    and again as BnB, so with an equal short budget BnB is expected to look
    better than base B for reasons unrelated to co-adaptation.
    """
    s = _settings(quick)
    for factor in (2, 1):
        rows = _layers(quick, base_b_steps=factor * s["min_steps"], variants=["BnB"])
        base = scores(rows, variant="baseB")
        print(f"  base B at {factor}x the steps: {mean_std(base)}")
        for n in s["cuts"]:
            report(scores(rows, variant="BnB", n=n), base, f"BnB n={n}", "base B")


def exercise_3(quick: bool) -> None:
    """CIFAR-100 halves (colour): is the first block still general?

    Method: AnB and AnB+ at cut 1 against base B on `cifar100_a_to_b`
    (needs tensorflow-datasets and a download; skipped offline). Yosinski et
    al. (2014) found first-layer features general (Gabor-like, colour blobs)
    on ImageNet colour images.
    """
    if is_offline():
        print("  skipped: TLRECIPES_OFFLINE=1, and cifar100_a_to_b downloads CIFAR-100. "
              "Run without it (and with tensorflow-datasets) to answer.")
        return
    rows = _layers(quick, task="cifar100_a_to_b", cuts=[1], variants=["AnB", "AnB+"])
    base = scores(rows, variant="baseB")
    for v in ("AnB", "AnB+"):
        report(scores(rows, variant=v, n=1), base, f"{v} n=1", "base B")
    note("'tie' or 'ahead' for AnB at n=1 means block 1 transfers as is.")


def exercise_4(quick: bool) -> None:
    """AnB at the last cut against notebook 01's feature extractor.

    Method: AnB with every block copied and frozen (cut 3) and `size_sweep`'s
    `feature_extractor`, the same source, target sample, seeds and
    `TrainConfig`. Both are a new head on the frozen base trained at
    `head_lr` (a linear probe): the difference per seed is printed to check
    it.
    """
    s = _settings(quick)
    b = budget(quick)
    rows = _layers(quick, cuts=[3], variants=["AnB"])
    sweep = lab.size_sweep(get_source(TASK, quick), target_arrays(TASK, s["test_per_class"]),
                           sizes=[s["n"]], strategies=["feature_extractor"], seeds=b.seeds,
                           config=lab.TrainConfig(epochs=s["epochs"],
                                                  min_steps=s["min_steps"]),
                           progress=False, store=STORE)
    anb, fe = scores(rows, variant="AnB", n=3), scores(sweep)
    print(f"  AnB n=3 {mean_std(anb)}, feature_extractor {mean_std(fe)}")
    print("  per-seed difference: "
          + ", ".join(f"seed {k}: {anb[k] - fe[k]:+.4f}" for k in anb))
    note("differences of 0 (or within float noise) show it is one experiment; "
         "anything else comes from a difference in the head (e.g. dropout).")


def exercise_5(quick: bool) -> None:
    """A five-block source network: a co-adaptation dip in the middle blocks?

    Method: `lab.train_source_model(TASK, SourceConfig(blocks=5))`, then the
    experiment at every cut 1..5 (1, 3, 5 in quick mode, where the source is
    narrow and trained on 50 images per class). Yosinski et al. saw BnB dip
    at the middle layers, where frozen layers had co-adapted with the ones
    re-initialised above them.
    """
    with tempfile.TemporaryDirectory() as folder:
        if quick:
            data = lab.get_task(TASK).source_data()
            x, y = lab.sample_per_class(data.x_train, data.y_train, 50, seed=0)
            xt, yt = lab.sample_per_class(data.x_test, data.y_test, 20, seed=0)
            source = lab.train_source_model(
                (x, y, xt, yt),
                lab.SourceConfig(blocks=5, width=8, epochs=1), cache_dir=folder)
        else:
            source = lab.train_source_model(TASK, lab.SourceConfig(blocks=5))
        variants = ["BnB"] if quick else ["BnB", "AnB"]
        rows = _layers(quick, source=source, cuts=[1, 3, 5] if quick else [1, 2, 3, 4, 5],
                       variants=variants)
    curves = _curves(rows, variants=variants)
    _print_curves("5 blocks", curves)
    note("a BnB value at a middle n below both its neighbours and base B is the dip.")


if __name__ == "__main__":
    run_main(globals(), "05")
