"""The notebooks' "What this run showed" helpers: tlrecipes.lab.run_summary."""

from __future__ import annotations

import pytest

from tlrecipes import lab
from tlrecipes.lab.comparison import Comparison, compare, compare_to_baseline
from tlrecipes.lab.run_summary import (
    compare_or_note,
    compare_to_baseline_or_note,
    scores_by_seed,
    what_this_run_showed,
)

AHEAD = {0: 0.81, 1: 0.84, 2: 0.80, 3: 0.83, 4: 0.82}
SCRATCH = {0: 0.78, 1: 0.80, 2: 0.79, 3: 0.79, 4: 0.80}


def test_exported_from_lab():
    assert lab.what_this_run_showed is what_this_run_showed
    assert lab.compare_or_note is compare_or_note
    assert lab.compare_to_baseline_or_note is compare_to_baseline_or_note
    assert lab.scores_by_seed is scores_by_seed


def test_compare_or_note_is_compare_from_two_seeds():
    line = compare_or_note(AHEAD, SCRATCH, name_a="ft", name_b="scratch")
    assert line == compare(AHEAD, SCRATCH, name_a="ft", name_b="scratch")
    assert line.verdict == "ahead"


def test_compare_or_note_one_seed_is_a_note_not_an_error():
    note = compare_or_note({3: 0.5}, {3: 0.75, 4: 0.1}, name_a="a", name_b="b")
    expected = "-0.250 on seed 3 only (quick mode: 1 seed, no interval, no verdict)"
    assert note == f"a - b: {expected}"
    assert "no seed in common" in compare_or_note({0: 0.5}, {1: 0.5})


def test_compare_or_note_still_refuses_bad_scores():
    with pytest.raises(ValueError, match="finite score"):
        compare_or_note({0: float("nan")}, {0: 0.5})


def test_compare_to_baseline_or_note_matches_compare_to_baseline():
    arms = {"scratch": SCRATCH, "ft": AHEAD, "same": dict(SCRATCH)}
    assert compare_to_baseline_or_note(arms, "scratch") == compare_to_baseline(
        arms, "scratch"
    )
    quick = compare_to_baseline_or_note(
        {"scratch": {0: 0.5}, "ft": {0: 0.6}}, "scratch"
    )
    assert len(quick) == 1 and "seed 0 only" in quick[0]


@pytest.mark.parametrize(
    "arms, baseline, comparisons",
    [({"a": AHEAD}, "a", None), ({"a": AHEAD, "b": SCRATCH}, "c", None),
     ({"a": AHEAD, "b": SCRATCH, "c": AHEAD}, "a", 1)],
)  # fmt: skip
def test_compare_to_baseline_or_note_refuses_what_compare_to_baseline_does(
    arms, baseline, comparisons
):
    with pytest.raises(ValueError, match="Received"):
        compare_to_baseline_or_note(arms, baseline, comparisons=comparisons)


def test_what_this_run_showed_one_line_each_and_the_seed_note():
    family = compare_to_baseline({"scratch": SCRATCH, "ft": AHEAD}, "scratch")
    three = compare({0: 0.9, 1: 0.8, 2: 0.7}, {0: 0.8, 1: 0.8, 2: 0.6})
    text = what_this_run_showed([family, three, "picked: ft"])
    lines = text.splitlines()
    assert lines[0] == str(family[0]) and lines[0].endswith("-> ahead")
    assert lines[1] == str(three) and lines[2] == "picked: ft"
    assert lines[3].startswith("(3 seeds: below the 5")
    assert what_this_run_showed(family) == str(family[0])  # 5 seeds: no note


@pytest.mark.parametrize("lines", [[], [0.5], [[None]]])
def test_what_this_run_showed_refuses_non_lines(lines):
    with pytest.raises(ValueError, match="Comparison or str"):
        what_this_run_showed(lines)


def test_scores_by_seed_filters_and_pairs():
    rows = [
        {"strategy": s, "seed": seed, "accuracy": acc, "n_per_class": n}
        for n in (5, 50)
        for s, scores in (("scratch", SCRATCH), ("ft", AHEAD))
        for seed, acc in scores.items()
    ]
    arms = scores_by_seed(rows, n_per_class=5)
    assert arms == {"scratch": SCRATCH, "ft": AHEAD}
    assert isinstance(compare_or_note(arms["ft"], arms["scratch"]), Comparison)
    with pytest.raises(ValueError, match="seed 0 twice"):
        scores_by_seed(rows)
    with pytest.raises(ValueError, match="without"):
        scores_by_seed(rows, arm="method")
