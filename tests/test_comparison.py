"""tlrecipes.lab.comparison on synthetic results whose answers are known."""

import json
import math
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

import tlrecipes.lab.comparison as compare_module
from tlrecipes.lab.comparison import (
    MIN_SEEDS_CPU,
    MIN_SEEDS_GPU,
    Comparison,
    SeedWarning,
    check_seeds,
    compare,
    compare_to_baseline,
    min_seeds,
    pick_best,
    summary_table,
)

SEEDS = range(10)


def arm(values, seeds=SEEDS):
    return dict(zip(seeds, (float(v) for v in values)))


@pytest.fixture
def shifted():
    """Arm b, and arm a = b + 0.05 + small noise, over 10 seeds."""
    gen = np.random.default_rng(42)
    b = 0.7 + 0.05 * gen.standard_normal(10)
    a = b + 0.05 + 0.005 * gen.standard_normal(10)
    return arm(a), arm(b)


def test_constant_shift_is_ahead_and_the_interval_holds_it(shifted):
    a, b = shifted
    result = compare(a, b, name_a="two_phase", name_b="scratch")
    assert result.verdict == "ahead"
    assert result.low > 0 and result.low < 0.05 < result.high
    assert result.n == 10 and result.seeds == tuple(SEEDS)
    assert result.dropped_seeds == ()
    assert result.high - result.low < 0.02  # noise 0.005: a tight interval
    assert result.method == "paired t" and result.level == pytest.approx(0.95)


def test_zero_mean_symmetric_difference_is_a_tie():
    b = arm(np.linspace(0.6, 0.8, 10))
    a = {s: v + (0.02 if s % 2 else -0.02) for s, v in b.items()}
    result = compare(a, b)
    assert result.mean == pytest.approx(0.0, abs=1e-15)
    assert result.low < 0 < result.high
    assert result.verdict == "tie"
    assert result.p_value == pytest.approx(1.0)


def test_clear_negative_shift_is_behind(shifted):
    a, b = shifted
    result = compare(b, a, name_a="scratch", name_b="two_phase")
    assert result.verdict == "behind"
    assert result.high < 0 and result.low < -0.05 < result.high


def test_interval_matches_a_hand_computation():
    gen = np.random.default_rng(7)
    a, b = gen.uniform(0.5, 0.9, 8), gen.uniform(0.5, 0.9, 8)
    result = compare(arm(a, range(8)), arm(b, range(8)))
    d = a - b
    mean = sum(d) / 8
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / 7)
    half = stats.t.ppf(0.975, 7) * sd / math.sqrt(8)
    assert result.mean == pytest.approx(mean, abs=1e-12)
    assert result.std == pytest.approx(sd, abs=1e-12)
    assert result.low == pytest.approx(mean - half, abs=1e-12)
    assert result.high == pytest.approx(mean + half, abs=1e-12)
    assert result.p_value == pytest.approx(stats.ttest_rel(a, b).pvalue, abs=1e-12)
    assert result.per_seed == pytest.approx(tuple(d), abs=1e-15)


def test_bonferroni_widens_to_the_family_level(shifted):
    a, b = shifted
    single = compare(a, b)
    family = compare(a, b, comparisons=3)
    d = np.array([a[s] - b[s] for s in SEEDS])
    se = d.std(ddof=1) / math.sqrt(10)
    level = 1 - 0.05 / 3
    assert family.level == pytest.approx(level, abs=1e-15)
    # scipy's interval at that level, computed independently of compare().
    low, high = stats.t.interval(level, 9, loc=d.mean(), scale=se)
    assert (family.low, family.high) == pytest.approx((low, high), abs=1e-12)
    assert family.high - family.low > single.high - single.low
    assert family.p_value == single.p_value  # raw p; the correction is separate
    assert family.p_adjusted == pytest.approx(min(1.0, 3 * single.p_value))
    assert "Bonferroni x3" in str(family)


def test_pairing_is_by_seed_not_by_order_and_reports_dropped_seeds():
    a = {0: 0.80, 1: 0.90, 2: 0.70, 3: 0.60, 7: 0.99}
    b = {3: 0.50, 2: 0.65, 1: 0.85, 0: 0.78, 5: 0.10}
    pairs = [(2, 0.70), (0, 0.80), (7, 0.99), (3, 0.60), (1, 0.90)]
    from_dict, from_pairs = compare(a, b), compare(pairs, b)
    assert from_dict == from_pairs
    assert from_dict.seeds == (0, 1, 2, 3)
    assert from_dict.per_seed == pytest.approx((0.02, 0.05, 0.05, 0.10))
    assert from_dict.dropped_seeds == (5, 7)
    assert "dropped seeds 5, 7" in str(from_dict)
    # JSON keys come back as strings; they pair with integer seeds.
    assert compare({str(s): v for s, v in a.items()}, b) == from_dict


def test_nan_score_names_the_seed():
    with pytest.raises(ValueError, match=r"`a` \('two_phase'\).*seed 3 scored nan"):
        compare(
            {0: 0.5, 1: 0.6, 3: math.nan}, {0: 0.4, 1: 0.5, 3: 0.4}, name_a="two_phase"
        )
    with pytest.raises(ValueError, match="seed 1 scored inf.*Fix: rerun seed 1"):
        compare({0: 0.5, 1: 0.6}, {0: 0.4, 1: math.inf})


def test_fewer_than_two_paired_seeds_is_an_error():
    with pytest.raises(
        ValueError, match=r"at least 2 seeds.*\(1 shared\).*Fix: run both"
    ):
        compare({0: 0.5, 1: 0.6}, {1: 0.4, 2: 0.5})
    with pytest.raises(ValueError, match="at least 2 seeds"):
        compare({}, {})


@pytest.mark.parametrize(
    "a, match",
    [
        ([(0, 0.5), (0, 0.6)], "seed 0 twice"),
        ({1.5: 0.5, 2: 0.6}, "seed 1.5"),
        ({True: 0.5, 2: 0.6}, "seed True"),
        ("0.5 0.6", "expected per-seed scores"),
        ([0.5, 0.6], "expected per-seed scores"),
        ({0: "high", 1: 0.6}, "seed 0 scored 'high'"),
    ],
)
def test_malformed_scores_are_refused(a, match):
    with pytest.raises(ValueError, match=match):
        compare(a, {0: 0.5, 1: 0.6, 2: 0.7})


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"confidence": 95}, "`confidence`.*Received: confidence=95"),
        ({"confidence": 1.0}, "`confidence`"),
        ({"comparisons": 0}, "`comparisons`.*positive integer"),
        ({"comparisons": 2.5}, "`comparisons`"),
    ],
)
def test_bad_settings_are_refused(kwargs, match, shifted):
    with pytest.raises(ValueError, match=match):
        compare(*shifted, **kwargs)


def test_identical_differences_give_a_point_interval():
    b = arm(np.linspace(0.6, 0.8, 5), range(5))
    ahead = compare({s: v + 0.25 for s, v in b.items()}, b)  # exact in binary
    assert (ahead.low, ahead.high, ahead.p_value) == (0.25, 0.25, 0.0)
    assert ahead.verdict == "ahead"
    same = compare(b, b)
    assert (same.low, same.high, same.p_value, same.verdict) == (0, 0, 1.0, "tie")


def test_verdict_follows_from_the_interval_alone():
    gen = np.random.default_rng(3)
    for _ in range(200):
        n, k = int(gen.integers(2, 12)), int(gen.integers(1, 5))
        a = arm(gen.normal(0.01, 0.02, n), range(n))
        result = compare(a, arm(np.zeros(n), range(n)), comparisons=k)
        expected = "ahead" if result.low > 0 else "behind" if result.high < 0 else "tie"
        assert result.verdict == expected
        # The p-value tells the same story as the interval.
        assert (result.p_adjusted < 0.05) == (result.verdict != "tie")


def test_coverage_by_simulation_is_95_percent():
    """A true difference of 0 gives "tie" in about 95% of 2,000 experiments.

    The differences are normal, so the t interval is exact: the tie rate is
    Binomial(2000, 0.95) / 2000, with standard deviation
    sqrt(0.95 * 0.05 / 2000) = 0.0049. The tolerance of 0.02 is four standard
    deviations; the numpy seed is fixed, so the test is deterministic.
    """
    gen = np.random.default_rng(2024)
    baseline = gen.uniform(0.6, 0.8, size=(2000, 10))  # shared per-seed luck
    other = baseline + gen.normal(0.0, 0.02, size=(2000, 10))
    ties = sum(
        compare(arm(o), arm(b)).verdict == "tie" for o, b in zip(other, baseline)
    )
    assert abs(ties / 2000 - 0.95) < 0.02


def test_bonferroni_family_holds_by_simulation():
    """Three arms equal to the baseline: all three "tie" in at least ~95%.

    Bonferroni guarantees P(any arm not a tie) <= 5%; with 500 experiments
    the rate's standard deviation is at most 0.0098, and 0.03 leaves three of
    them. Uncorrected, the family fails far more often (up to 14%).
    """
    gen = np.random.default_rng(11)
    all_tie = uncorrected = 0
    for _ in range(500):
        arms = {name: arm(gen.normal(0.7, 0.02, 5), range(5)) for name in "bxyz"}
        family = compare_to_baseline(arms, "b")
        all_tie += all(c.verdict == "tie" for c in family)
        singles = [compare(arms[n], arms["b"]) for n in "xyz"]
        uncorrected += all(c.verdict == "tie" for c in singles)
    assert all_tie / 500 > 0.95 - 0.03
    assert uncorrected < all_tie


def test_compare_to_baseline_corrects_for_the_arms_compared(shifted):
    a, b = shifted
    arms = {"scratch": b, "two_phase": a, "head_only": b, "fine_tune": a}
    results = compare_to_baseline(arms, "scratch")
    assert [c.name_a for c in results] == ["two_phase", "head_only", "fine_tune"]
    assert {c.name_b for c in results} == {"scratch"}
    assert all(c.comparisons == 3 for c in results)
    assert results[0] == compare(
        a, b, name_a="two_phase", name_b="scratch", comparisons=3
    )
    assert [c.verdict for c in results] == ["ahead", "tie", "ahead"]
    wider = compare_to_baseline(arms, "scratch", comparisons=6)
    assert wider[0].level == pytest.approx(1 - 0.05 / 6)
    with pytest.raises(ValueError, match="at least the number of arms compared"):
        compare_to_baseline(arms, "scratch", comparisons=2)
    with pytest.raises(ValueError, match="baseline='transfer'"):
        compare_to_baseline(arms, "transfer")
    with pytest.raises(ValueError, match="another arm"):
        compare_to_baseline({"scratch": b}, "scratch")


def test_pick_best_takes_the_highest_validation_mean():
    validation = {
        "block1": {0: 0.60, 1: 0.62, 2: 0.61},
        "block2": {0: 0.70, 1: 0.69, 2: 0.71},
        "block3": {0: 0.66, 1: 0.72, 2: 0.65},
    }
    assert pick_best(validation) == "block2"
    assert pick_best(validation, higher_is_better=False) == "block1"


def test_pick_best_breaks_ties_by_listing_order_and_uses_shared_seeds():
    tie = {"head_only": {0: 0.1 + 0.2, 1: 0.5}, "two_phase": {0: 0.3, 1: 0.5}}
    assert pick_best(tie) == "head_only"  # 0.1 + 0.2 != 0.3 in binary: still a tie
    assert pick_best(dict(reversed(tie.items()))) == "two_phase"
    # "deep" crashed on seed 2, the hard seed; the others' means there drop.
    crashed = {
        "shallow": {0: 0.70, 1: 0.70, 2: 0.40},
        "deep": {0: 0.69, 1: 0.69},
    }
    assert pick_best(crashed) == "shallow"
    with pytest.raises(ValueError, match="sharing at least one seed"):
        pick_best({"x": {0: 0.5}, "y": {1: 0.5}})
    with pytest.raises(ValueError, match="`validation`"):
        pick_best({})


def test_seed_minimums_by_device():
    assert (MIN_SEEDS_CPU, MIN_SEEDS_GPU) == (5, 10)
    assert min_seeds("cpu") == min_seeds("CPU: AMD EPYC, 2 cores (jax 0.10.2)") == 5
    assert min_seeds("gpu") == min_seeds("1 NVIDIA H200 (jax 0.10.2)") == 10
    assert min_seeds("tpu") == 10
    with pytest.raises(ValueError, match="`device`"):
        min_seeds("")


def test_check_seeds_warns_by_default_and_refuses_when_strict(shifted):
    five = compare(*[{s: v[s] for s in range(5)} for v in shifted])
    ten = compare(*shifted)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_seeds([five, ten], "cpu") == []
    with pytest.warns(SeedWarning, match=r"a - b \(5\) ran fewer seeds than the 10"):
        assert check_seeds([five, ten], "1 NVIDIA H200 (jax 0.10.2)") == [five]
    with pytest.raises(ValueError, match="strict=True.*Fix: rerun with at least 10"):
        check_seeds(five, "gpu", strict=True)


def test_str_and_points_formatting():
    a = {s: 0.8 + 0.001 * s for s in range(10)}
    b = {s: a[s] - 0.034 + (0.01 if s % 2 else -0.01) for s in range(10)}
    result = compare(a, b, name_a="two_phase", name_b="scratch")
    text = str(result)
    assert text.startswith("two_phase - scratch: +0.034 (95% CI +0.026 to +0.042")
    assert text.endswith("; 10 seeds) -> ahead")
    assert result.points == "+3.4 (95% CI +2.6 to +4.2)"


def test_to_dict_is_json_ready_and_complete(shifted):
    result = compare(*shifted, name_a="x", name_b="y", comparisons=2)
    data = json.loads(json.dumps(result.to_dict()))
    assert data["verdict"] == result.verdict and data["name"] == "x - y"
    assert data["seeds"] == list(SEEDS) and data["comparisons"] == 2
    assert data["low"] == result.low and data["p_adjusted"] == result.p_adjusted
    with pytest.raises(AttributeError):
        result.mean = 0.0  # frozen


def test_summary_table_rows_and_notes():
    base = {0: 0.70, 1: 0.72, 2: 0.71, 3: 0.69, 4: 0.70}
    arms = {
        "scratch": base,
        "two|phase": {s: v + 0.05 + 0.002 * s for s, v in base.items()},
        "head_only": {**{s: v + 0.001 * (-1) ** s for s, v in base.items()}, 9: 0.1},
    }
    table = summary_table(compare_to_baseline(arms, "scratch"))
    lines = table.splitlines()
    assert lines[0] == (
        "| arm | baseline | difference (points) | 95% interval | seeds | verdict |"
    )
    assert lines[2] == "| two\\|phase | scratch | +5.4 | +4.9 to +5.9 | 5 | ahead |"
    assert lines[3] == (
        "| head_only | scratch | +0.0 | -0.2 to +0.2 | 5 (1 dropped) | tie |"
    )
    assert "corrected for 2 comparisons (Bonferroni): each at the 97.5% level" in table
    assert "head_only - scratch: seed(s) 9 ran in one arm only" in table
    with pytest.raises(ValueError, match="non-empty list of Comparison"):
        summary_table([])


def test_compare_needs_neither_keras_nor_a_backend():
    """The module loads on numpy and scipy alone (the package's __init__ aside)."""
    path = Path(compare_module.__file__)
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('c', {str(path)!r})\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "sys.modules['c'] = module\n"
        "spec.loader.exec_module(module)\n"
        "print(module.compare({0: 1.0, 1: 2.0}, {0: 0.0, 1: 0.5}).verdict)\n"
        "heavy = {'keras', 'tensorflow', 'jax', 'torch'} & set(sys.modules)\n"
        "print(sorted(heavy))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["tie", "[]"]
    assert isinstance(Comparison, type)
