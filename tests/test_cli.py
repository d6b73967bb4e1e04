"""The `tlrecipes` command line: advise, argument errors, backend handling."""

import os
import subprocess
import sys

import keras
import pytest

from tests.subprocess_helpers import NO_BACKEND, WITHOUT_KIT_INIT, run_python
from tlrecipes.lab.cli import main


def test_advise_prints_recipe_reason_command_and_basis(capsys):
    assert main(["advise", "--images-per-class", "10", "--similar", "yes"]) == 0
    out = capsys.readouterr().out
    assert "Recommended recipe: feature_extractor" in out
    assert "Why:" in out and "source tutorial's 2x2 table" in out
    assert "python recipes/feature_extractor.py --data-dir DIR" in out
    assert "tl.add_head(base, num_classes)" in out


@pytest.mark.parametrize(
    "n, similar, strategy",
    [
        (10, "yes", "feature_extractor"),
        (10, "no", "earlier_block"),
        (400, "yes", "two_phase"),
        (400, "no", "fine_tune_all"),
    ],
)
def test_advise_four_cases(capsys, n, similar, strategy):
    main(["advise", "--images-per-class", str(n), "--similar", similar])
    assert f"Recommended recipe: {strategy}\n" in capsys.readouterr().out


def test_advise_counts_the_smallest_class_of_a_folder(tmp_path, capsys):
    for name, count in (("cats", 7), ("dogs", 300)):
        (tmp_path / name).mkdir()
        for i in range(count):
            (tmp_path / name / f"{i}.png").write_bytes(b"")
    (tmp_path / "dogs" / "notes.txt").write_text("not an image")
    code = main(
        [
            "advise",
            "--data-dir",
            str(tmp_path),
            "--similar",
            "no",
            "--backbone",
            "small_convnet",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert f"Counted 7 images in the smallest class of {tmp_path}" in out
    assert (
        f"--cut-after-block 2 --pooling flatten --data-dir {tmp_path} "
        "--backbone small_convnet"
    ) in out


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--images-per-class", "10"], "--similar yes or --similar no"),
        (["--similar", "yes"], "fix: e.g. --images-per-class 10"),
        (["--data-dir", "/no/such/dir", "--similar", "yes"], "is not a folder"),
    ],
)
def test_advise_missing_information_exits_2(capsys, args, expected):
    assert main(["advise", *args]) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1


@pytest.mark.parametrize(
    "args",
    [
        ["--images-per-class", "-3", "--similar", "yes"],
        ["--images-per-class", "3", "--similar", "maybe"],
    ],
)
def test_advise_bad_values_exit_2(capsys, args):
    with pytest.raises(SystemExit) as exit_info:
        main(["advise", *args])
    assert exit_info.value.code == 2
    assert "fix" in capsys.readouterr().err


def test_other_backend_in_process_is_an_error(capsys):
    other = "jax" if keras.backend.backend() != "jax" else "torch"
    before = os.environ.get("KERAS_BACKEND")
    assert main(["study", "--backend", other, "--quick"]) == 2
    assert f"KERAS_BACKEND={other}" in capsys.readouterr().err
    # Refused, it leaves the environment alone: subprocesses started later
    # (a recipe run by a test, a user's own) keep the backend they had.
    assert os.environ.get("KERAS_BACKEND") == before


def test_module_entry_point_runs():
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tlrecipes",
            "advise",
            "--images-per-class",
            "500",
            "--similar",
            "no",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Recommended recipe: fine_tune_all" in result.stdout


# `tlrecipes --help` and `tlrecipes advise` must work without Keras or any
# backend installed; `study` and `demo` must say what to install. How fast they
# answer is measured by benchmarks/bench_cli_startup.py, not asserted here.
CLI_WITHOUT_BACKEND = """
from tlrecipes.lab.cli import main
try:
    main(["--help"])
except SystemExit as exit:
    assert exit.code == 0, exit.code
assert main(["advise", "--images-per-class", "10", "--similar", "yes"]) == 0
assert main(["study", "--quick"]) == 1
assert main(["demo"]) == 1
heavy = ("keras", "tensorflow", "jax", "torch", "numpy")
loaded = [m for m in heavy if m in sys.modules]
print("loaded:", loaded)
"""


def check_cli_without_backend(prelude):
    result, _ = run_python(prelude + NO_BACKEND + CLI_WITHOUT_BACKEND)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "usage: tlrecipes" in result.stdout
    assert "Recommended recipe: feature_extractor" in result.stdout
    assert "loaded: []" in result.stdout
    errors = result.stderr.splitlines()
    assert len(errors) == 2, result.stderr  # one line each for study and demo
    assert errors[0].startswith("tlrecipes study: error: study trains models")
    assert errors[1].startswith("tlrecipes demo: error: demo trains models")
    for line in errors:
        assert "keras and tensorflow are not installed" in line
        assert 'pip install "tlrecipes[tensorflow]"' in line
        assert '"tlrecipes[jax]"' in line and '"tlrecipes[torch]"' in line


def test_cli_help_and_advise_need_no_backend():
    """The lab's CLI on its own: `tlrecipes/__init__.py` skipped."""
    check_cli_without_backend(WITHOUT_KIT_INIT)


def test_cli_help_and_advise_need_no_backend_through_the_package():
    """The same through `tlrecipes/__init__.py`: the kit's lazy exports load nothing."""
    check_cli_without_backend("")
