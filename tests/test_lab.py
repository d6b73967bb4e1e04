"""`tlrecipes.lab`: its public names, exported lazily."""

import pytest

from tests.subprocess_helpers import NO_BACKEND, WITHOUT_KIT_INIT, run_python
from tlrecipes import lab


def test_every_public_name_comes_from_a_lab_module():
    assert lab.__all__ and len(set(lab.__all__)) == len(lab.__all__)
    for name in lab.__all__:
        value = getattr(lab, name)
        assert value.__module__.startswith("tlrecipes.lab."), name
        assert value.__name__ == name


def test_both_ways_of_importing_a_name_give_the_same_object():
    from tlrecipes.lab import get_task
    from tlrecipes.lab.tasks import get_task as defined

    assert get_task is defined is lab.get_task
    assert lab.get_task("fashion_a_to_b").relation == "similar"


def test_dir_lists_the_public_names_and_unknown_names_raise():
    assert set(lab.__all__) <= set(dir(lab))
    with pytest.raises(AttributeError, match="no_such_name"):
        lab.no_such_name  # noqa: B018
    with pytest.raises(ImportError):
        from tlrecipes.lab import no_such_name  # noqa: F401


IMPORT_THE_LAB = """
import tlrecipes.lab as lab
names = dir(lab)
assert "get_task" in names and "run_study" in names
assert lab.advise(10, similar=True).strategy == "feature_extractor"
heavy = ("keras", "tensorflow", "jax", "torch", "numpy")
print("loaded:", [m for m in heavy if m in sys.modules])
"""


def test_importing_the_lab_imports_no_keras_nor_numpy():
    """The lab on its own: `tlrecipes/__init__.py` skipped."""
    result, _ = run_python(WITHOUT_KIT_INIT + NO_BACKEND + IMPORT_THE_LAB)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "loaded: []" in result.stdout


def test_importing_the_lab_through_the_package_imports_no_keras():
    result, _ = run_python(NO_BACKEND + IMPORT_THE_LAB)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "loaded: []" in result.stdout
