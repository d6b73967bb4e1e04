"""Measures on hand-made curves, their summary over seeds, and the result store."""

import json
import math

import numpy as np
import pytest

from tlrecipes.lab.results import ResultStore, aggregate, load_rows, transfer_benefit


def test_transfer_benefit_known_answers():
    b = transfer_benefit([0.5, 0.7, 0.8, 0.8], [0.3, 0.5, 0.6, 0.7])
    assert b["jumpstart"] == pytest.approx(0.2)
    assert b["final_difference"] == pytest.approx(0.1)
    # Areas: (0.6 + 0.75 + 0.8) / 3 and (0.4 + 0.55 + 0.65) / 3.
    assert b["auc_difference"] == pytest.approx(2.15 / 3 - 1.6 / 3)
    assert b["threshold"] == pytest.approx(0.7)  # scratch's final accuracy
    assert (b["transfer_to_threshold"], b["scratch_to_threshold"]) == (2.0, 4.0)
    assert b["threshold_speedup"] == pytest.approx(2.0)


def test_transfer_benefit_identical_curves_is_zero():
    curve = [0.2, 0.4, 0.6]
    b = transfer_benefit(curve, curve)
    assert b["jumpstart"] == b["auc_difference"] == b["final_difference"] == 0.0
    assert b["threshold_speedup"] == 1.0


def test_transfer_benefit_uneven_steps_and_explicit_threshold():
    # Steps 0, 10, 40: the long last segment dominates the area.
    b = transfer_benefit(
        [0.5, 0.5, 0.5], [0.2, 0.2, 0.8], steps=[0, 10, 40], threshold=0.6
    )
    scratch_area = (0.2 * 10 + (0.2 + 0.8) / 2 * 30) / 40
    assert b["auc_difference"] == pytest.approx(0.5 - scratch_area)
    assert math.isnan(b["transfer_to_threshold"])  # transfer never reaches 0.6
    assert b["scratch_to_threshold"] == 40.0
    assert math.isnan(b["threshold_speedup"])


def test_transfer_benefit_single_point():
    b = transfer_benefit([0.9], [0.6])
    assert (
        b["jumpstart"]
        == b["final_difference"]
        == b["auc_difference"]
        == pytest.approx(0.3)
    )


@pytest.mark.parametrize(
    "kwargs, text",
    [
        ({"transfer_curve": [0.1, 0.2], "scratch_curve": [0.1]}, "same points"),
        ({"transfer_curve": [0.1, math.nan], "scratch_curve": [0.1, 0.2]}, "NaN"),
        ({"transfer_curve": [], "scratch_curve": []}, "non-empty"),
        (
            {
                "transfer_curve": [0.1, 0.2],
                "scratch_curve": [0.1, 0.2],
                "steps": [2, 1],
            },
            "strictly increasing",
        ),
    ],
)
def test_transfer_benefit_errors(kwargs, text):
    with pytest.raises(ValueError, match=text):
        transfer_benefit(**kwargs)


def test_aggregate_mean_std_n_by_group():
    rows = [
        {"strategy": "a", "n": 5, "accuracy": 0.2},
        {"strategy": "a", "n": 5, "accuracy": 0.4},
        {"strategy": "b", "n": 5, "accuracy": 0.9},
        {"strategy": "a", "n": 10, "accuracy": math.nan},
        {"strategy": "a", "n": 10, "accuracy": 0.7},
    ]
    out = aggregate(rows, by=("strategy", "n"))
    assert [(r["strategy"], r["n"]) for r in out] == [("a", 5), ("b", 5), ("a", 10)]
    assert out[0]["accuracy_mean"] == pytest.approx(0.3)
    assert out[0]["accuracy_std"] == pytest.approx(np.std([0.2, 0.4], ddof=1))
    assert out[0]["accuracy_n"] == 2
    assert (out[1]["accuracy_std"], out[1]["accuracy_n"]) == (0.0, 1)
    assert (out[2]["accuracy_mean"], out[2]["accuracy_n"]) == (0.7, 1)  # NaN left out


def test_aggregate_missing_column_names_what_rows_have():
    with pytest.raises(KeyError, match=r"\['seed'\].*accuracy"):
        aggregate([{"accuracy": 1.0}], by=["seed"])


def test_result_store_persists_and_reloads(tmp_path):
    path = tmp_path / "runs.jsonl"
    store = ResultStore(path)
    store.add({"run_id": "x|1", "accuracy": np.float32(0.5), "curve": np.array([1, 2])})
    store.add({"run_id": "x|2", "accuracy": math.nan, "curve": [3]})
    again = ResultStore(path)
    assert len(again) == 2 and "x|1" in again and "x|3" not in again
    assert again.get("x|1") == {"run_id": "x|1", "accuracy": 0.5, "curve": [1, 2]}
    assert math.isnan(again.get("x|2")["accuracy"])
    assert [r["run_id"] for r in again.rows(curve=[3])] == ["x|2"]


def test_result_store_skips_a_torn_last_line(tmp_path):
    path = tmp_path / "runs.jsonl"
    path.write_text(json.dumps({"run_id": "ok", "accuracy": 1.0}) + '\n{"run_id": "to')
    with pytest.warns(UserWarning, match="unreadable line"):
        store = ResultStore(path)
    assert list(r["run_id"] for r in store.rows()) == ["ok"]


def test_result_store_csv_and_json_round_trip(tmp_path):
    store = ResultStore()
    row = {
        "run_id": "a",
        "variant": "baseB",
        "n": None,
        "accuracy": 0.5,
        "curve": [0.1],
    }
    store.add(row)
    store.add(
        {"run_id": "b", "variant": "AnB", "n": 2, "accuracy": 0.25, "curve": [0.2]}
    )
    assert load_rows(store.to_csv(tmp_path / "out" / "runs.csv"))[0] == row
    assert load_rows(store.to_json(tmp_path / "runs.json")) == store.rows()
    with pytest.raises(ValueError, match="run_id"):
        store.add({"accuracy": 1.0})
