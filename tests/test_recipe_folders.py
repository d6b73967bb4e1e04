"""Recipes on careless image folders: a class of 2 images is trained on and tested."""

import importlib.util
from pathlib import Path

import keras
import numpy as np

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


def load_recipe(name: str):
    """Imports recipes/<name>.py as a module (recipes are scripts)."""
    spec = importlib.util.spec_from_file_location(
        f"recipe_{name}_folders", RECIPES / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_class_of_two_images_is_in_the_recipes_training_labels(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    counts = {"cat": 4, "dog": 4, "fox": 2}  # no test/ folder
    for label, (name, n) in enumerate(counts.items()):
        (tmp_path / "data" / name).mkdir(parents=True)
        for i in range(n):
            image = rng.integers(0, 60, (32, 32, 3)) + 80 * label
            keras.utils.save_img(
                tmp_path / "data" / name / f"{i}.png", image.astype("uint8")
            )
    recipe = load_recipe("two_phase_finetune")
    real_fit, seen = recipe.two_phase_fit, {}

    def recording_fit(model, train, *args, **kwargs):
        # The batches the recipe trains on, read once here (a real fit follows).
        seen["train"] = [int(y) for _, labels in train for y in labels.numpy()]
        return real_fit(model, train, *args, **kwargs)

    monkeypatch.setattr(recipe, "two_phase_fit", recording_fit)
    monkeypatch.chdir(tmp_path)
    metrics = recipe.main(
        [
            *("--data-dir", str(tmp_path / "data"), "--backbone", "small_convnet"),
            *("--weights", "none", "--quick", "--batch-size", "4"),
            *("--out", str(tmp_path / "out")),
        ]
    )
    assert metrics["class_names"] == ["cat", "dog", "fox"]
    # Each class: 1 test image (4 * 0.2 rounds to 1; fox's 2 * 0.2 is raised to
    # 1), no validation image (4 * 0.1 rounds to 0), the rest trains.
    assert metrics["num_examples"] == {"train": 7, "test": 3}
    assert sorted(seen["train"]) == [0, 0, 0, 1, 1, 1, 2]  # fox (2) trains
    assert (tmp_path / "out" / "model.keras").is_file()
