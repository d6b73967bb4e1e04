"""benchmarks/choose_defaults.py follows the validation protocol (quick mode).

One quick run (module-scoped, about a minute on 2 cores) is read by every
test: equal tuning budgets, choices made on validation and carrying their
validation score, test read exactly once per final model (counted here by
wrapping `accuracy_of`, independently of the script's own counter),
comparisons with intervals and verdicts, provenance, and the Markdown table.
The checkpoints tests (resume, reuse of another run's cells, carried test
scores) check that a run split over sessions trains and reads nothing twice.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest

from tests.script_helpers import load_script
from tlrecipes.lab import evaluation
from tlrecipes.lab.comparison import SeedWarning

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _load_script():
    return load_script("benchmarks/choose_defaults.py")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    script = _load_script()
    out = tmp_path_factory.mktemp("choose_defaults")
    evaluated = []
    original = evaluation.accuracy_of

    def counting(model, x, y, batch_size=256):
        evaluated.append(len(x))
        return original(model, x, y, batch_size)

    mp = pytest.MonkeyPatch()
    mp.setenv("TLRECIPES_OFFLINE", "1")
    mp.setattr(evaluation, "accuracy_of", counting)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SeedWarning)
            code = script.main(
                ["--quick", "--out", str(out / "r.json"),
                 "--markdown", str(out / "table.md"),
                 "--checkpoints", str(out / "ckpt")]
            )  # fmt: skip
    finally:
        mp.undo()
    assert code == 0
    result = json.loads((out / "r.json").read_text())
    return script, result, evaluated, out


def test_every_arm_has_the_same_tuning_budget(quick_run):
    _, result, _, _ = quick_run
    budgets = {a["tuned_configurations"] for a in result["arms"].values()}
    assert set(result["arms"]) == {"two_phase_fit", "keras_guide", "scratch"}
    assert budgets == {result["plan"]["tuning_budget"]} and budgets.pop() >= 2
    for cell in result["cells"]:
        for choice in cell["choices"].values():
            assert choice["tuned_configurations"] == result["plan"]["tuning_budget"]
            assert len(choice["candidates"]) == choice["tuned_configurations"]
    runs = result["runs"]
    seeds = result["plan"]["seeds"]
    for arm, info in result["arms"].items():
        for cid in info["configurations"]:
            ran = sorted(
                r["seed"] for r in runs if r["arm"] == arm and r["config"] == cid
            )
            assert ran == seeds, (arm, cid)


def test_choices_are_made_on_validation_and_carry_its_score(quick_run):
    _, result, _, _ = quick_run
    for cell in result["cells"]:
        for arm, choice in cell["choices"].items():
            assert choice["chosen_on"] == "validation"
            best = max(c["validation_mean"] for c in choice["candidates"])
            assert choice["validation_mean"] == pytest.approx(best)
            chosen = [r for r in result["runs"] if r["arm"] == arm
                      and r["config"] == choice["config"] and r["task"] == cell["task"]
                      and r["size"] == cell["size"]]  # fmt: skip
            assert {str(r["seed"]): r["val_accuracy"] for r in chosen} == choice[
                "validation"
            ]
    pooled = result["defaults_candidate"]
    assert pooled["chosen_on"].startswith("validation")
    assert pooled["config"] in result["arms"]["two_phase_fit"]["configurations"]
    for row in result["runs"]:
        assert 0 <= row["val_accuracy"] <= 1 and row["best_step"] <= row["steps"]


def test_test_is_read_once_per_final_model(quick_run):
    _, result, evaluated, _ = quick_run
    finals = set()
    for cell in result["cells"]:
        for name, final in cell["final_models"].items():
            for seed in result["plan"]["seeds"]:
                finals.add(
                    (cell["task"], cell["size"], seed, final["arm"], final["config"])
                )
            assert set(cell["test"][name]) == {str(s) for s in result["plan"]["seeds"]}
    read = {(r["task"], r["size"], r["seed"], r["arm"], r["config"])
            for r in result["runs"] if r["test_reads"]}  # fmt: skip
    assert read == finals
    assert all(r["test_reads"] in (0, 1) for r in result["runs"])
    assert all(
        r["test_accuracy"] is None for r in result["runs"] if not r["test_reads"]
    )
    assert result["test_reads"]["reads"] == len(finals)
    # Counted independently: every evaluation on the full test split.
    n_test = result["cells"][0]["n_test"]
    n_val = result["cells"][0]["n_val"]
    assert n_test != n_val
    assert evaluated.count(n_test) == len(finals)


def test_comparisons_have_intervals_and_verdicts(quick_run):
    _, result, _, _ = quick_run
    for cell in result["cells"]:
        names = {c["name_b"] for c in cell["comparisons"]}
        assert {"scratch_tuned", "keras_guide_as_written", "two_phase_fit_tuned",
                "keras_guide_tuned", "defaults_candidate"} == names  # fmt: skip
        for c in cell["comparisons"]:
            assert c["name_a"] == "readme"
            assert c["low"] <= c["mean"] <= c["high"]
            assert c["verdict"] in ("ahead", "behind", "tie")
            assert c["comparisons"] == len(cell["comparisons"])
            assert c["n"] == len(result["plan"]["seeds"])


def test_provenance_and_markdown(quick_run):
    script, result, _, out = quick_run
    record = result["provenance"]
    for key in ("commit", "dirty", "describe", "backend", "device", "versions"):
        assert key in record
    assert record["settings"]["quick"] is True
    text = (out / "table.md").read_text()
    assert "QUICK smoke run" in text and "README call (defaults)" in text
    assert text.count("| readme |") == len(result["cells"]) * 5
    table = script.readme_table(result)
    assert table in text and len(table.splitlines()) == 2 + len(result["cells"])
    # The candidate is compared with the tuned scratch twin on the stored scores.
    assert text.count("| defaults candidate | scratch twin, tuned |") == len(
        result["cells"]
    )
    for cell in result["cells"]:
        vs_scratch, _ = script.candidate_comparisons(cell)
        seeds = cell["test"]["scratch_tuned"]
        diffs = [
            cell["test"]["defaults_candidate"][s] - seeds[s] for s in sorted(seeds)
        ]
        assert vs_scratch.mean == pytest.approx(sum(diffs) / len(diffs))
    # The table renders again from the JSON alone.
    again = out / "again.md"
    assert (
        script.main(["--from-json", str(out / "r.json"), "--markdown", str(again)]) == 0
    )
    assert again.read_text() == text


def test_full_run_refuses_too_few_seeds(monkeypatch):
    monkeypatch.setenv("TLRECIPES_OFFLINE", "1")
    script = _load_script()
    with pytest.raises(SystemExit, match="fewer than the 5"):
        script.main(["--tasks", "mnist_a_to_b", "--sizes", "5", "--seeds", "2"])


def test_plan_clips_sizes_to_the_offline_data(monkeypatch):
    monkeypatch.setenv("TLRECIPES_OFFLINE", "1")
    script = _load_script()
    args = script._parser().parse_args(
        ["--tasks", "mnist_a_to_b", "--sizes", "10", "1000", "6000"]
    )
    plan = script.make_plan(args, "CPU: test")
    most = plan["available"]["mnist_a_to_b"]["per_class"] - plan["val_per_class"]
    assert plan["sizes"]["mnist_a_to_b"] == [10, most]
    assert [c["requested"] for c in plan["clipped"]] == [1000, 6000]
    assert len(plan["seeds"]) == 5


def test_estimate_scales_with_seeds_and_counts_every_cell(monkeypatch):
    monkeypatch.setenv("TLRECIPES_OFFLINE", "1")
    script = _load_script()
    args = script._parser().parse_args(["--tasks", "mnist_a_to_b", "--sizes", "5"])
    plan = script.make_plan(args, "CPU: test")
    timing = {
        "overhead_per_run": 1.0, "head_step": 0.01, "full_step": 0.02,
        "per_eval_image": 1e-4, "cached_head_step": 0.001, "cached_head_call": 0.5,
    }  # fmt: skip
    one = script.estimate(plan, timing)
    plan["seeds"] = plan["seeds"] * 2
    two = script.estimate(plan, timing)
    assert [c["size"] for c in one["cells"]] == [5]
    assert one["seconds"] > 27 * 5  # 27 runs a seed, at least 1 s each
    assert two["seconds"] == pytest.approx(2 * one["seconds"], abs=1)


def _quick(script, out, *extra):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SeedWarning)
        return script.main(["--quick", "--out", str(out), *extra])


def test_a_stopped_run_resumes_from_its_saved_cells(
    quick_run, monkeypatch, tmp_path, capsys
):
    script, first, _, out = quick_run
    monkeypatch.setenv("TLRECIPES_OFFLINE", "1")
    # The module run's folder as a run stopped after its first cell leaves it:
    # seed 0's rows and weights, nothing of seed 1, no test read yet.
    ckpt = tmp_path / "ckpt"
    shutil.copytree(out / "ckpt", ckpt)
    saved = (ckpt / "rows.jsonl").read_text().splitlines()
    assert len(saved) == len(first["runs"])
    seed0 = [line for line in saved if json.loads(line)["seed"] == 0]
    assert 0 < len(seed0) < len(saved)
    (ckpt / "rows.jsonl").write_text("\n".join(seed0) + "\n")
    (ckpt / "test_scores.jsonl").unlink()
    later = [p for p in ckpt.glob("*/*/*") if p.is_dir() and p.name != "0"]
    assert later
    for folder in later:
        shutil.rmtree(folder)
    capsys.readouterr()

    with pytest.raises(SystemExit, match="--resume"):
        _quick(script, tmp_path / "again.json", "--checkpoints", str(ckpt))
    assert _quick(
        script, tmp_path / "again.json", "--checkpoints", str(ckpt), "--resume"
    ) == 0  # fmt: skip
    assert "1 cells done already (saved here" in capsys.readouterr().out
    again = json.loads((tmp_path / "again.json").read_text())
    kept = {(r["arm"], r["config"]): r["val_accuracy"] for r in map(json.loads, seed0)}
    resumed = [r for r in again["runs"] if r["seed"] == 0]
    assert {(r["arm"], r["config"]): r["val_accuracy"] for r in resumed} == kept
    assert [r["seconds"] for r in resumed] == [json.loads(x)["seconds"] for x in seed0]
    assert len(again["runs"]) == len(first["runs"])
    assert again["cells_run_at"] == [first["provenance"]["describe"]]
    assert len((ckpt / "rows.jsonl").read_text().splitlines()) == len(saved)
    # Seed 1 was trained again, from the same seed: the same validation scores.
    retrained = {
        (r["arm"], r["config"]): r["val_accuracy"] for r in again["runs"] if r["seed"]
    }
    assert retrained == {
        (r["arm"], r["config"]): r["val_accuracy"] for r in first["runs"] if r["seed"]
    }


def test_checkpoints_of_another_plan_are_refused(monkeypatch, tmp_path):
    monkeypatch.setenv("TLRECIPES_OFFLINE", "1")
    script = _load_script()
    args = script._parser().parse_args(["--quick"])
    plan = script.make_plan(args, "CPU: test")
    assert script.open_checkpoints(str(tmp_path), plan, resume=False) == []
    other = dict(plan, val_per_class=plan["val_per_class"] + 1)
    with pytest.raises(SystemExit, match=r"another plan .*'val_per_class'"):
        script.open_checkpoints(str(tmp_path), other, resume=True)
    assert json.loads((tmp_path / "plan.json").read_text()) == json.loads(
        json.dumps(plan)
    )


def test_existing_results_are_not_overwritten_without_force(monkeypatch, tmp_path):
    monkeypatch.setenv("TLRECIPES_OFFLINE", "1")
    script = _load_script()
    out = tmp_path / "r.json"
    out.write_text("a user's result")
    with pytest.raises(SystemExit, match="--force"):
        script.main(["--quick", "--out", str(out)])
    with pytest.raises(SystemExit, match="--checkpoints"):
        script.main(["--quick", "--out", str(tmp_path / "new.json"), "--resume"])
    assert out.read_text() == "a user's result"
    assert not (tmp_path / "new.json").exists()


def test_a_grown_plan_reuses_finished_cells_and_their_test_reads(
    quick_run, monkeypatch, tmp_path, capsys
):
    script, first, _, out = quick_run
    monkeypatch.setenv("TLRECIPES_OFFLINE", "1")
    source = out / "ckpt"
    before = {p: p.read_bytes() for p in source.rglob("*") if p.is_file()}
    size = first["plan"]["sizes"]["fashion_a_to_b"][0]
    grown = tmp_path / "grown.json"
    args = ["--sizes", str(size), str(size + 5), "--checkpoints", str(tmp_path / "g")]
    assert _quick(script, grown, *args, "--reuse-cells", str(source)) == 0
    assert f"reused {len(first['runs'])} runs" in capsys.readouterr().out
    result = json.loads(grown.read_text())
    assert result["reused"]["runs"] == len(first["runs"])
    key = ("task", "size", "seed", "arm", "config")
    old = {tuple(r[k] for k in key): r for r in first["runs"]}
    new = {tuple(r[k] for k in key): r for r in result["runs"]}
    for k, run in old.items():  # the same runs, not trained again
        assert new[k]["val_accuracy"] == run["val_accuracy"]
        assert new[k]["seconds"] == run["seconds"]
    read_before = {k for k, r in old.items() if r["test_reads"]}
    read_now = {k for k, r in new.items() if r["test_reads"]}
    carried = read_now & read_before
    assert carried, "the reused cells' final models were read before"
    for k in carried:  # not read again: the earlier score, and where it was read
        assert new[k]["test_accuracy"] == old[k]["test_accuracy"]
        assert new[k]["test_read_in"] == first["provenance"]["describe"]
    assert result["test_reads"]["carried"] == len(carried)
    assert result["test_reads"]["reads"] == len(read_now - read_before)
    assert {k[1] for k in read_now - read_before} >= {size + 5}
    page = script.render_markdown(result)
    assert f"{len(first['runs'])} of the {len(result['runs'])} training runs" in page
    assert f"{len(carried)} carried from earlier ones" in page
    assert "Grown over several runs" not in script.render_markdown(first)
    # The source folder is read, never changed.
    assert {p: p.read_bytes() for p in source.rglob("*") if p.is_file()} == before


def _plan(script, *argv):
    return script.make_plan(script._parser().parse_args(["--quick", *argv]), "CPU")


def test_reuse_refuses_cells_measured_another_way(monkeypatch, tmp_path):
    monkeypatch.setenv("TLRECIPES_OFFLINE", "1")
    script = _load_script()
    plan = _plan(script)
    other = tmp_path / "other"
    script.open_checkpoints(str(other), _plan(script, "--val-per-class", "7"), False)
    with pytest.raises(SystemExit, match=r"another way .*'val_per_class'"):
        script.reuse_cells(str(other), str(tmp_path / "ckpt"), plan, [])
    with pytest.raises(SystemExit, match="not the --checkpoints folder"):
        script.reuse_cells(str(tmp_path), str(tmp_path / "ckpt"), plan, [])
    assert not (tmp_path / "ckpt").exists()


def test_test_scores_carried_from_a_result_belong_to_the_same_weights(
    quick_run, tmp_path
):
    script, first, _, out = quick_run
    plan = first["plan"]
    ckpt = str(tmp_path / "ckpt")
    script.open_checkpoints(ckpt, plan, resume=False)
    rows = script.reuse_cells(str(out / "ckpt"), ckpt, plan, [])
    (tmp_path / "ckpt" / "test_scores.jsonl").unlink()  # as if never read here
    read = [r for r in first["runs"] if r["test_reads"]]
    assert script.carry_test_scores(str(out / "r.json"), ckpt, plan, rows) == len(read)
    reader = script.TestReader(plan, ckpt, "now")
    row = next(r for r in rows if (r["arm"], r["config"], r["seed"]) == (
        read[0]["arm"], read[0]["config"], read[0]["seed"]))  # fmt: skip
    assert reader(dict(row)) == read[0]["test_accuracy"]
    assert (reader.reads, reader.carried) == (0, 1)
    # Trained again since (other weights): the old score no longer applies.
    weights = script.checkpoint_path(ckpt, *(row[k] for k in (
        "task", "size", "seed", "arm", "config")))  # fmt: skip
    weights.write_bytes(weights.read_bytes() + b"retrained")
    assert script.stored_test_score(ckpt, script.load_test_scores(ckpt), row) is None
    # A result whose run scored otherwise on validation is another model.
    changed = json.loads((out / "r.json").read_text())
    changed["runs"][0] |= {"val_accuracy": -1.0, "test_reads": 1}
    (tmp_path / "changed.json").write_text(json.dumps(changed))
    (tmp_path / "ckpt" / "test_scores.jsonl").unlink()
    with pytest.raises(SystemExit, match="not the same model"):
        script.carry_test_scores(str(tmp_path / "changed.json"), ckpt, plan, rows)


def test_a_phase_two_floor_is_a_separate_plan_with_equal_budgets(monkeypatch, tmp_path):
    monkeypatch.setenv("TLRECIPES_OFFLINE", "1")
    script = _load_script()
    plain = _plan(script)
    floor = _plan(script, "--min-fine-tune-steps", "200")
    assert "min_fine_tune_steps" not in plain  # plans saved before stay resumable
    assert floor["min_fine_tune_steps"] == 200
    n = 50  # 2 steps an epoch at batch size 32
    two_phase = script._epochs(floor, "two_phase_fit", n)
    assert two_phase["fine_tune"] == 100 and two_phase["fine_tune"] * 2 >= 200
    assert (
        script._epochs(plain, "two_phase_fit", n)["fine_tune"]
        == (plain["fine_tune_epochs"])
    )
    # The scratch twin trains as many steps as the README call; the guide is as written.
    assert script._epochs(floor, "scratch", n)["total"] == two_phase["total"]
    assert script._epochs(floor, "keras_guide", n) == script._epochs(
        plain, "keras_guide", n
    )
    # Enough data: the epochs are already 200 steps or more, nothing changes.
    assert script._epochs(floor, "two_phase_fit", 6400) == script._epochs(
        plain, "two_phase_fit", 6400
    )
    # Cells measured without the floor are not reused under it.
    script.open_checkpoints(str(tmp_path / "plain"), plain, resume=False)
    with pytest.raises(SystemExit, match="'min_fine_tune_steps'"):
        script.reuse_cells(str(tmp_path / "plain"), str(tmp_path / "f"), floor, [])


def test_a_rule_is_compared_with_the_readme_call_paired_by_seed(quick_run, tmp_path):
    script, plain, _, out = quick_run
    rule = json.loads(json.dumps(plain))
    rule["plan"]["min_fine_tune_steps"] = 200
    for cell in rule["cells"]:  # known answer: the rule adds 2 points on every seed
        cell["test"]["readme"] = {
            s: v + 0.02 for s, v in cell["test"]["readme"].items()
        }
    rows = script.rule_comparisons(rule, plain)
    assert [(r["task"], r["size"]) for r in rows] == [
        (c["task"], c["size"]) for c in plain["cells"]
    ]
    for row, cell in zip(rows, plain["cells"]):
        gain = row["vs_plain"]
        assert gain["mean"] == pytest.approx(0.02)
        assert gain["low"] == pytest.approx(0.02) and gain["verdict"] == "ahead"
        scratch = cell["test"]["scratch_tuned"]
        diffs = [cell["test"]["readme"][s] + 0.02 - scratch[s] for s in scratch]
        assert row["vs_scratch"]["mean"] == pytest.approx(sum(diffs) / len(diffs))
        assert row["vs_scratch"]["comparisons"] == 4
        cand, readme = cell["test"]["defaults_candidate"], cell["test"]["readme"]
        gap = [cand[s] - readme[s] for s in readme]
        assert row["candidate_vs_plain"]["mean"] == pytest.approx(sum(gap) / len(gap))
    (tmp_path / "rule.json").write_text(json.dumps(rule))
    md = tmp_path / "rule.md"
    argv = ["--from-json", str(tmp_path / "rule.json"), "--markdown", str(md),
            "--baseline", str(out / "r.json")]  # fmt: skip
    assert script.main(argv) == 0
    text = md.read_text()
    assert "A rule under test" in text and "+2.0 (+2.0 to +2.0), ahead" in text
    assert "candidate with the rule, test" in text
    with pytest.raises(SystemExit, match="--force"):  # nothing replaced silently
        script.main(argv)
    other = json.loads(json.dumps(rule))
    other["plan"]["seeds"] = other["plan"]["seeds"][:1]
    with pytest.raises(ValueError, match="seeds do not pair"):
        script.rule_comparisons(other, plain)


def test_cells_the_floor_leaves_alone_are_reused_under_it(quick_run, tmp_path):
    script, first, _, out = quick_run
    plain = first["plan"]
    n_cells = len(first["runs"])
    for floor, reused in ((1, n_cells), (200, 0)):  # 1 step: no epoch changes
        rule = dict(plain, min_fine_tune_steps=floor)
        ckpt = str(tmp_path / str(floor))
        script.open_checkpoints(ckpt, rule, resume=False)
        rows = script.reuse_cells(
            str(out / "ckpt"), ckpt, rule, [], epochs_of=script._epochs
        )
        assert len(rows) == reused
    # Without a way to tell, a plan with the floor is refused outright.
    with pytest.raises(SystemExit, match="'min_fine_tune_steps'"):
        script.reuse_cells(str(out / "ckpt"), str(tmp_path / "x"), rule, [])
