"""`tlrecipes demo`: both phases run and print their test accuracy."""

from tlrecipes.lab.demo import run_demo


def test_demo_reports_both_phases(capsys):
    metrics = run_demo(
        images_per_class=2,
        source_per_class=10,
        source_epochs=1,
        head_epochs=1,
        fine_tune_epochs=1,
    )
    out = capsys.readouterr().out
    assert set(metrics) == {
        "source_accuracy",
        "head_accuracy",
        "fine_tuned_accuracy",
        "seconds",
    }
    assert all(
        0.0 <= metrics[k] <= 1.0 for k in ("head_accuracy", "fine_tuned_accuracy")
    )
    assert "frozen-base" in out and "fine-tuned test accuracy" in out
