"""two_phase_fit on careless input: a clear error or warning before any weight moves.

Each test feeds one mistake found by a careless-user audit and asserts both
the message (argument, what was received, the fix) and that every weight of
the model is exactly as before.
"""

import warnings

import keras
import numpy as np
import pytest

from tests.helpers import assert_identical, tiny_data, tiny_model
from tlrecipes import two_phase_fit
from tlrecipes.batch_checks import InputScaleWarning, check_fit_inputs
from tlrecipes.callbacks import logged_metric_names, monitor_mode
from tlrecipes.image_preprocessing import ImagePreprocessing

pytestmark = pytest.mark.multibackend

FIT = {"head_epochs": 1, "fine_tune_epochs": 1, "verbose": 0}


def _weights(model):
    return [np.array(keras.ops.convert_to_numpy(v)) for v in model.weights]


def _refused(model, match, *args, **kwargs):
    """Calls two_phase_fit, expects a ValueError matching `match`, no weight moved."""
    before = _weights(model)
    with pytest.raises(ValueError, match=match) as info:
        two_phase_fit(model, *args, **{**FIT, **kwargs})
    assert_identical(before, _weights(model))
    return str(info.value)


class Batches(keras.utils.PyDataset):
    """Batches of 8 of `(x, y)`; `bad_label` replaces one label of the last batch."""

    def __init__(self, x, y, bad_label=None):
        super().__init__()
        self.x, self.y, self.bad_label = x, y, bad_label

    def __len__(self):
        return len(self.x) // 8

    def __getitem__(self, i):
        y = self.y[i * 8 : (i + 1) * 8].copy()
        if self.bad_label is not None and i == len(self) - 1:
            y[3] = self.bad_label
        return self.x[i * 8 : (i + 1) * 8], y


def test_pydataset_bad_label_in_last_batch_is_refused():
    x, y = tiny_data(24)
    message = _refused(
        tiny_model(), r"Batch 2 of `x` \(Batches\[2\]\)", Batches(x, y, 3)
    )
    assert "holds label 3" in message and "[0, 2]" in message and "Fix:" in message


def test_first_batch_mode_skips_the_full_pass():
    x, y = tiny_data(24)
    data, loss = Batches(x, y, bad_label=3), "sparse_categorical_crossentropy"
    with pytest.raises(ValueError, match="Batch 2 of"):
        check_fit_inputs(tiny_model(), data, None, None, loss, {}, both_phases=True)
    check_fit_inputs(
        tiny_model(), data, None, None, loss, {}, both_phases=True,
        check_data="first_batch",
    )  # fmt: skip
    _refused(tiny_model(), "check_data='every'", x, y, check_data="every")


def test_tf_data_nan_in_a_later_batch_is_refused():
    tf = pytest.importorskip("tensorflow")
    x, y = tiny_data(24)
    x[20, 1, 1, 0] = np.nan
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    message = _refused(tiny_model(), "Batch 2 of `x`", data)
    assert "NaN or Inf" in message


def test_tf_data_bad_label_in_validation_data_is_refused():
    tf = pytest.importorskip("tensorflow")
    x, y = tiny_data(24)
    yv = y.copy()
    yv[-1] = 7
    validation = tf.data.Dataset.from_tensor_slices((x, yv)).batch(8)
    message = _refused(tiny_model(), "Batch 2 of `validation_data`", x, y,
                       validation_data=validation)  # fmt: skip
    assert "holds label 7" in message


def test_generator_is_refused_when_both_phases_run():
    x, y = tiny_data(16)
    batches = ((x[i : i + 8], y[i : i + 8]) for i in (0, 8))
    message = _refused(tiny_model(), "`x` is a Python generator", batches)
    assert "keras.utils.PyDataset" in message
    assert "tf.data.Dataset.from_generator" in message


def test_tf_data_without_labels_is_refused():
    tf = pytest.importorskip("tensorflow")
    x, _ = tiny_data(16)
    data = tf.data.Dataset.from_tensor_slices(x).batch(8)
    message = _refused(tiny_model(), "holds inputs without labels", data)
    assert "(inputs, labels) pairs" in message and "Fix:" in message


def test_validation_data_without_labels_is_refused():
    x, y = tiny_data(16)
    message = _refused(tiny_model(), "`validation_data`", x, y, validation_data=(x,))
    assert "expected (x_val, y_val)" in message and "1 element" in message


def test_arrays_without_labels_are_refused():
    x, _ = tiny_data(16)
    _refused(tiny_model(), "Received y=None", x)


def test_mse_on_class_ids_is_refused():
    x, y = tiny_data(16)
    model = tiny_model()
    model.compile(loss="mse")
    message = _refused(model, "loss='mse'", x, y)
    assert "(n,)" in message and "(n, 3)" in message
    assert "SparseCategoricalCrossentropy" in message


def test_mse_with_labels_of_the_output_shape_trains():
    x, y = tiny_data(16)
    model = tiny_model()
    model.compile(loss="mse")
    before = _weights(model)
    two_phase_fit(model, x, keras.utils.to_categorical(y, 3), **FIT)
    assert any(not np.array_equal(a, b) for a, b in zip(before, _weights(model)))


def test_sample_weight_of_the_wrong_length_is_refused():
    x, y = tiny_data(16)
    message = _refused(tiny_model(), "`sample_weight`", x, y, seed=0,
                       sample_weight=np.ones(5))  # fmt: skip
    assert "length 16" in message and "len(sample_weight)=5" in message


def test_float_images_in_0_255_warn_without_a_scaling_layer():
    x, y = tiny_data(16)
    pixels = np.clip((x + 2) * 50, 0, 255).astype("float32")
    before = _weights(model := tiny_model())
    with pytest.warns(InputScaleWarning, match="Rescaling") as record:
        two_phase_fit(model, pixels, y, **{**FIT, "head_epochs": 0})
    assert f"{pixels.max():g}" in str(record[0].message)
    assert any(not np.array_equal(a, b) for a, b in zip(before, _weights(model)))


@pytest.mark.parametrize(
    "scaling",
    [
        lambda: keras.layers.Rescaling(1 / 255),
        lambda: ImagePreprocessing("tf"),  # as tl.application's models hold
        lambda: keras.layers.Normalization(mean=127.0, variance=5000.0),
    ],
    ids=["Rescaling", "ImagePreprocessing", "Normalization"],
)
def test_float_images_in_0_255_do_not_warn_with_a_scaling_layer(scaling):
    x, y = tiny_data(16)
    pixels = np.clip((x + 2) * 50, 0, 255).astype("float32")
    model = tiny_model(preprocessing=scaling())
    with warnings.catch_warnings():
        warnings.simplefilter("error", InputScaleWarning)
        two_phase_fit(model, pixels, y, **{**FIT, "fine_tune_epochs": 0})


def test_standardised_images_do_not_warn():
    x, y = tiny_data(16)  # mean 0..2, unit variance: values above 1.5 and below 0
    with warnings.catch_warnings():
        warnings.simplefilter("error", InputScaleWarning)
        two_phase_fit(tiny_model(), x, y, **{**FIT, "fine_tune_epochs": 0})


def _two_output_model():
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(4, name="hidden")(inputs)
    a = keras.layers.Dense(3, name="out_a")(hidden)
    b = keras.layers.Dense(2, name="out_b")(hidden)
    model = keras.Model(inputs, [a, b])
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(loss=[loss, loss], metrics=[["accuracy"], ["accuracy"]])
    return model


def test_keep_best_typo_on_a_two_output_model_is_refused(tmp_path):
    model = _two_output_model()
    x = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")
    ys = [np.arange(16) % 3, np.arange(16) % 2]
    message = _refused(model, "val_out_a_acc", x, ys, validation_data=(x, ys),
                       head_start="out_a", checkpoint_dir=tmp_path / "run",
                       keep_best="val_out_a_acc")  # fmt: skip
    assert "val_out_a_accuracy" in message and "val_out_b_loss" in message
    hist = two_phase_fit(model, x, ys, validation_data=(x, ys), head_start="out_a",
                         checkpoint_dir=tmp_path / "ok",
                         keep_best="val_out_a_accuracy", **FIT)  # fmt: skip
    assert hist.best["monitor"] == "val_out_a_accuracy" and hist.best["mode"] == "max"


def test_logged_names_of_outputs_in_a_dict():
    compiled = {"loss": {"x1": "mse", "x2": "mse"}, "metrics": {"x2": "accuracy"}}
    names = logged_metric_names(compiled, True, ["x1", "x2"])
    assert names == {
        f"{prefix}{name}"
        for prefix in ("", "val_")
        for name in ("loss", "x1_loss", "x2_loss", "x2_accuracy")
    }
    assert monitor_mode("val_x1_loss", compiled, ["x1", "x2"]) == "min"
    assert monitor_mode("x2_accuracy", compiled, ["x1", "x2"]) == "max"
