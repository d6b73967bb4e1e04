"""two_phase_fit: what moves, what must not, learning rates, epochs, inputs, errors."""

import keras
import numpy as np
import pytest

from tests.helpers import (
    assert_all_changed,
    assert_identical,
    tiny_base,
    tiny_data,
    tiny_model,
    weights_of,
)
from tlrecipes import add_head, flat_layers, two_phase_fit
from tlrecipes.freezing import is_batchnorm

pytestmark = pytest.mark.multibackend

FIT = {"batch_size": 16, "verbose": 0, "min_head_steps": 0}


def _base_layers(model):
    return flat_layers(model.get_layer("base"))


class LrRecorder(keras.callbacks.Callback):
    """Reads the learning rate back from the optimizer at each epoch's end."""

    def __init__(self):
        super().__init__()
        self.lrs = []

    def on_epoch_end(self, epoch, logs=None):
        lr = self.model.optimizer.learning_rate
        self.lrs.append(float(keras.ops.convert_to_numpy(lr)))


@pytest.mark.parametrize("cache_features", [False, "auto"])
def test_phase1_base_bit_identical_head_changes(cache_features):
    # False: the frozen base runs inside fit on every batch; "auto": phase 1
    # trains the head on features computed once (the base runs outside fit).
    model = tiny_model()
    x, y = tiny_data()
    base_before = weights_of(_base_layers(model))
    head_before = weights_of([model.get_layer("head_output")])
    hist = two_phase_fit(
        model, x, y, head_epochs=2, fine_tune_epochs=0,
        cache_features=cache_features, **FIT,
    )  # fmt: skip
    assert hist.features_cached is (cache_features == "auto")
    assert_identical(base_before, weights_of(_base_layers(model)))  # BN stats too
    assert_all_changed(head_before, weights_of([model.get_layer("head_output")]))


def test_phase2_batchnorm_statistics_frozen_convolutions_move():
    model = tiny_model()
    x, y = tiny_data()
    two_phase_fit(model, x, y, head_epochs=1, fine_tune_epochs=0, **FIT)
    base = model.get_layer("base")
    bns = [layer for layer in flat_layers(base) if is_batchnorm(layer)]
    convs = [base.get_layer("block1_conv"), base.get_layer("block2_conv")]
    bn_before, conv_before = weights_of(bns), weights_of(convs)
    hist = two_phase_fit(model, x, y, head_epochs=0, fine_tune_epochs=2, **FIT)
    # moving_mean / moving_variance and gamma / beta: bit-identical.
    assert_identical(bn_before, weights_of(bns))
    assert_all_changed(conv_before, weights_of(convs))
    assert hist.phase_epochs == {"head": 0, "fine_tune": 2}


def test_learning_rates_read_back_from_the_optimizer():
    model = tiny_model()
    x, y = tiny_data()
    recorder = LrRecorder()
    hist = two_phase_fit(
        model,
        x,
        y,
        head_epochs=2,
        fine_tune_epochs=3,
        head_lr=3e-3,
        fine_tune_lr=2e-5,
        callbacks=[recorder],
        **FIT,
    )
    np.testing.assert_allclose(recorder.lrs, [3e-3] * 2 + [2e-5] * 3, rtol=1e-6)
    assert float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) == (
        pytest.approx(2e-5, rel=1e-6)
    )
    assert hist.phase_lrs == {"head": 3e-3, "fine_tune": 2e-5}


def test_epoch_numbering_continues_and_history_merges():
    model = tiny_model()
    x, y = tiny_data()
    hist = two_phase_fit(
        model, x, y, validation_data=(x, y), head_epochs=2, fine_tune_epochs=3, **FIT
    )
    assert hist.epoch == [0, 1, 2, 3, 4]
    assert hist.fine_tune_start_epoch == 2
    assert set(hist.history) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 5 for v in hist.history.values())


def test_early_stopping_in_phase1_does_not_skip_phase2():
    model = tiny_model()
    x, y = tiny_data()
    stop = keras.callbacks.EarlyStopping(monitor="loss", patience=0, min_delta=1e9)
    hist = two_phase_fit(
        model, x, y, head_epochs=5, fine_tune_epochs=2, callbacks=[stop], **FIT
    )
    assert hist.phase_epochs["head"] < 5
    assert hist.phase_epochs["fine_tune"] >= 1
    assert hist.epoch[hist.fine_tune_start_epoch] == hist.fine_tune_start_epoch


def test_min_head_steps_budgets_phase1_in_steps():
    model = tiny_model()
    x, y = tiny_data(48)  # 3 steps per epoch at batch size 16
    hist = two_phase_fit(
        model,
        x,
        y,
        head_epochs=1,
        fine_tune_epochs=0,
        batch_size=16,
        verbose=0,
        min_head_steps=12,
    )
    assert hist.phase_epochs["head"] == 4


def test_unfreeze_from_keeps_earlier_layers_identical():
    model = tiny_model()
    x, y = tiny_data()
    base = model.get_layer("base")
    early = weights_of([base.get_layer("block1_conv")])
    late = weights_of([base.get_layer("block2_conv")])
    two_phase_fit(
        model,
        x,
        y,
        head_epochs=1,
        fine_tune_epochs=2,
        unfreeze_from="block2_conv",
        **FIT,
    )
    assert_identical(early, weights_of([base.get_layer("block1_conv")]))
    assert_all_changed(late, weights_of([base.get_layer("block2_conv")]))


def test_train_bn_true_updates_moving_statistics():
    model = tiny_model(bn_training=True)
    x, y = tiny_data()
    bn = model.get_layer("base").get_layer("block1_bn")
    before = weights_of([bn])
    two_phase_fit(model, x, y, head_epochs=1, fine_tune_epochs=0, **FIT)
    assert_all_changed(before, weights_of([bn]))  # gamma, beta, mean, variance


def test_reuses_the_models_own_compile():
    model = tiny_model()
    model.compile(
        optimizer="sgd",
        loss="sparse_categorical_crossentropy",
        metrics=[keras.metrics.SparseTopKCategoricalAccuracy(k=2, name="top2")],
    )
    x, y = tiny_data()
    hist = two_phase_fit(model, x, y, head_epochs=1, fine_tune_epochs=1, **FIT)
    assert "top2" in hist.history
    assert "accuracy" not in hist.history


def test_one_hot_labels_and_binary_head_infer_their_loss():
    x, y = tiny_data(num_classes=3)
    model = tiny_model()
    two_phase_fit(model, x, np.eye(3)[y], head_epochs=1, fine_tune_epochs=1, **FIT)
    assert model.loss == "categorical_crossentropy"
    binary = add_head(tiny_base(), 1)
    two_phase_fit(
        binary, x, (y > 0).astype("float32"), head_epochs=1, fine_tune_epochs=0, **FIT
    )
    assert binary.loss == "binary_crossentropy"


def test_flat_model_with_head_start():
    inputs = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    h = keras.layers.Flatten(name="flat")(h)
    outputs = keras.layers.Dense(3, activation="softmax", name="out")(h)
    model = keras.Model(inputs, outputs)
    x, y = tiny_data()
    conv_before = weights_of([model.get_layer("conv")])
    two_phase_fit(
        model, x, y, head_epochs=1, fine_tune_epochs=0, head_start="flat", **FIT
    )
    assert_identical(conv_before, weights_of([model.get_layer("conv")]))
    with pytest.raises(ValueError, match="Cannot tell where the head"):
        two_phase_fit(model, x, y, head_epochs=1, fine_tune_epochs=0, **FIT)


def test_cannot_infer_a_loss_says_how_to_fix():
    inputs = keras.Input((8, 8, 1))
    h = keras.layers.Flatten(name="head_flat")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1, name="head_out")(h))
    x, y = tiny_data()
    with pytest.raises(ValueError, match="Cannot infer a loss.*Fix: compile the model"):
        two_phase_fit(model, x, y, head_epochs=1, fine_tune_epochs=0, **FIT)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda x, y: (x, y + 1), r"Labels must be integers in \[0, 2\]"),
        (lambda x, y: (x, y[:-1]), "different lengths"),
        (lambda x, y: (x[:0], y[:0]), "is empty"),
        (lambda x, y: (np.where(x > 2.5, np.nan, x), y), "NaN or Inf"),
    ],
)
def test_bad_inputs_never_train(mutate, message):
    model = tiny_model()
    x, y = mutate(*tiny_data())
    before = weights_of(model.layers)
    with pytest.raises(ValueError, match=message):
        two_phase_fit(model, x, y, head_epochs=1, fine_tune_epochs=1, **FIT)
    assert_identical(before, weights_of(model.layers))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"head_epochs": -1, "fine_tune_epochs": 1}, "Received: head_epochs=-1"),
        ({"head_epochs": 0, "fine_tune_epochs": 0}, "Both phases are empty"),
        ({"head_epochs": 1, "fine_tune_epochs": 1, "epochs": 3}, "`epochs` is set by"),
        ({"head_epochs": 1, "fine_tune_epochs": 1, "head_lr": 0}, "positive number"),
        (
            {"head_epochs": 1, "fine_tune_epochs": 1, "optimizer": "adamm"},
            "Unknown opt",
        ),
    ],
)
def test_argument_errors(kwargs, message):
    x, y = tiny_data()
    with pytest.raises(ValueError, match=message):
        two_phase_fit(tiny_model(), x, y, verbose=0, **kwargs)


def test_optimizer_instance_config_is_kept():
    model = tiny_model()
    x, y = tiny_data()
    two_phase_fit(
        model,
        x,
        y,
        head_epochs=1,
        fine_tune_epochs=1,
        optimizer=keras.optimizers.SGD(momentum=0.9),
        **FIT,
    )
    assert isinstance(model.optimizer, keras.optimizers.SGD)
    assert model.optimizer.momentum == 0.9


def test_pydataset_input():
    x, y = tiny_data()

    class Batches(keras.utils.PyDataset):
        def __len__(self):
            return 3

        def __getitem__(self, i):
            return x[i * 16 : (i + 1) * 16], y[i * 16 : (i + 1) * 16]

    model = tiny_model()
    hist = two_phase_fit(
        model, Batches(), head_epochs=1, fine_tune_epochs=1, verbose=0, min_head_steps=6
    )
    assert hist.phase_epochs == {"head": 2, "fine_tune": 1}


def test_tf_data_input():
    if keras.backend.backend() != "tensorflow":
        pytest.skip("tf.data input is for the tensorflow backend")
    import tensorflow as tf

    x, y = tiny_data()
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    model = tiny_model()
    hist = two_phase_fit(
        model, ds, head_epochs=1, fine_tune_epochs=1, verbose=0, min_head_steps=6
    )
    assert hist.phase_epochs == {"head": 2, "fine_tune": 1}


def test_round_trip_after_two_phase_fit(tmp_path):
    model = tiny_model()
    x, y = tiny_data()
    two_phase_fit(model, x, y, head_epochs=1, fine_tune_epochs=1, **FIT)
    before = model.predict(x, verbose=0)
    model.save(tmp_path / "tuned.keras")
    loaded = keras.saving.load_model(tmp_path / "tuned.keras")
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), before, rtol=1e-5, atol=1e-6
    )
    # The loaded model can go on training with the same helper.
    two_phase_fit(loaded, x, y, head_epochs=0, fine_tune_epochs=1, **FIT)


def test_keras_training_false_alone_does_not_protect_unfrozen_batchnorm():
    """Documents the Keras 3 behaviour the helpers guard against (REFERENCES.md).

    A base called as base(x, training=False) and later set trainable=True
    still updates its BatchNorm moving statistics during fit in Keras 3.15.
    """
    model = tiny_model()
    x, y = tiny_data()
    model.get_layer("base").trainable = True  # the Keras guide's phase-2 step
    bn = model.get_layer("base").get_layer("block1_bn")
    before = weights_of([bn])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    moved = [not np.array_equal(b, a) for b, a in zip(before, weights_of([bn]))]
    assert moved[2] and moved[3], "moving mean/variance did not change"


def test_seeded_validation_split_holds_out_the_last_fraction_as_keras_does():
    model = tiny_model()
    x, y = tiny_data()
    hist = two_phase_fit(
        model,
        x,
        y,
        head_epochs=1,
        fine_tune_epochs=1,
        seed=0,
        validation_split=0.25,
        **FIT,
    )
    held_out = model.evaluate(
        x[36:], y[36:], batch_size=16, verbose=0, return_dict=True
    )
    assert hist.history["val_loss"][-1] == pytest.approx(held_out["loss"], rel=1e-5)


def test_seeded_run_honours_class_weight():
    def run(class_weight):
        keras.backend.clear_session()
        keras.utils.set_random_seed(0)
        model = tiny_model()
        x, y = tiny_data()
        return two_phase_fit(
            model,
            x,
            y,
            head_epochs=2,
            fine_tune_epochs=0,
            seed=0,
            class_weight=class_weight,
            **FIT,
        ).history["loss"]

    plain = run(None)
    assert run({0: 1.0, 1: 1.0, 2: 1.0}) == pytest.approx(plain, rel=1e-6)
    assert run({0: 5.0, 1: 1.0, 2: 1.0}) != pytest.approx(plain, rel=1e-3)
