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
from tlrecipes import add_head, flat_layers, training, two_phase_fit
from tlrecipes.freezing import is_batchnorm

pytestmark = pytest.mark.multibackend

FIT = {"batch_size": 16, "verbose": 0}


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
    head_before = weights_of([model.get_layer("head_logits")])
    hist = two_phase_fit(
        model, x, y, head_epochs=2, fine_tune_epochs=0,
        cache_features=cache_features, **FIT,
    )  # fmt: skip
    assert hist.features_cached is (cache_features == "auto")
    assert_identical(base_before, weights_of(_base_layers(model)))  # BN stats too
    assert_all_changed(head_before, weights_of([model.get_layer("head_logits")]))


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


def test_auto_head_epochs_budgets_phase1_in_steps(monkeypatch):
    monkeypatch.setattr(training, "MIN_HEAD_STEPS", 12)
    model = tiny_model()
    x, y = tiny_data(48)  # 3 steps per epoch at batch size 16
    hist = two_phase_fit(model, x, y, fine_tune_epochs=0, batch_size=16, verbose=0)
    assert hist.phase_epochs["head"] == 4  # head_epochs="auto": ceil(12 / 3)


def test_an_explicit_number_of_epochs_is_the_number_run():
    model = tiny_model()
    x, y = tiny_data(48)  # 48 images: the case, 2 steps per epoch
    hist = two_phase_fit(model, x, y, head_epochs=1, fine_tune_epochs=2, verbose=0)
    assert hist.phase_epochs == {"head": 1, "fine_tune": 2}
    assert len(hist.epoch) == 3


def test_auto_head_epochs_needs_a_known_epoch_length():
    def batches():
        x, y = tiny_data()
        while True:
            yield x[:16], y[:16]

    # one phase: with both, a generator is refused first (test_hostile_inputs)
    with pytest.raises(ValueError, match="head_epochs='auto' counts optimisation"):
        two_phase_fit(tiny_model(), batches(), fine_tune_epochs=0, verbose=0)


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
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
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
    assert isinstance(model.loss, keras.losses.CategoricalCrossentropy)
    assert model.loss.get_config()["from_logits"] is True
    binary = add_head(tiny_base(), 1)
    hist = two_phase_fit(
        binary, x, (y > 0).astype("float32"), head_epochs=1, fine_tune_epochs=0, **FIT
    )
    assert isinstance(binary.loss, keras.losses.BinaryCrossentropy)
    assert binary.loss.get_config()["from_logits"] is True
    assert "accuracy" in hist.history  # thresholded at logit 0


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
    model = keras.Model(
        inputs, keras.layers.Dense(3, activation="relu", name="head_out")(h)
    )
    x, y = tiny_data()
    with pytest.raises(ValueError, match="Cannot choose a loss.*Fix: compile"):
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
    hist = two_phase_fit(model, Batches(), head_epochs=2, fine_tune_epochs=1, verbose=0)
    assert hist.phase_epochs == {"head": 2, "fine_tune": 1}


def test_tf_data_input():
    if keras.backend.backend() != "tensorflow":
        pytest.skip("tf.data input is for the tensorflow backend")
    import tensorflow as tf

    x, y = tiny_data()
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    model = tiny_model()
    hist = two_phase_fit(model, ds, fine_tune_epochs=1, verbose=0)
    assert hist.phase_epochs == {"head": 67, "fine_tune": 1}  # auto: ceil(200 / 3)


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
    """Documents the Keras 3 behaviour the helpers guard against.

    A base called as base(x, training=False) and later set trainable=True
    still updates its BatchNorm moving statistics during fit in Keras 3.15.
    """
    model = tiny_model()
    x, y = tiny_data()
    model.get_layer("base").trainable = True  # the Keras guide's phase-2 step
    bn = model.get_layer("base").get_layer("block1_bn")
    before = weights_of([bn])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
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


def _saturating_head(output_logits: bool):
    """Notebook 02's case in small: a linear head on many flattened features."""
    keras.utils.set_random_seed(0)
    base = keras.Sequential(
        [keras.Input((12, 12, 1)), keras.layers.Conv2D(16, 3, padding="same",
                                                        activation="relu")],
        name="base",
    )  # fmt: skip
    if output_logits:
        return add_head(base, 10, pooling="flatten", dropout=0.0)
    base.trainable = False
    inputs = keras.Input((12, 12, 1))
    h = keras.layers.Flatten(name="head_flat")(base(inputs, training=False))
    outputs = keras.layers.Dense(10, activation="softmax", name="head_probs")(h)
    return keras.Model(inputs, outputs)


def test_a_saturating_head_fits_its_training_set_on_every_backend():
    rng = np.random.default_rng(0)
    x = (3 * rng.normal(size=(60, 12, 12, 1))).astype("float32")
    y = np.arange(60) % 10
    kwargs = {"head_epochs": 60, "fine_tune_epochs": 0, "head_lr": 1e-1}
    kwargs |= {"batch_size": 20, "verbose": 0, "seed": 0}
    model = _saturating_head(output_logits=True)
    two_phase_fit(model, x, y, **kwargs)
    assert model.evaluate(x, y, verbose=0, return_dict=True)["accuracy"] == 1.0
    if keras.backend.backend() in ("jax", "torch"):
        # The pitfall logits avoid: Keras's crossentropy on probabilities
        # clips them at 1e-7 here (Keras 3.15.1), and the same head stalls.
        probs = _saturating_head(output_logits=False)
        with pytest.warns(UserWarning, match="clips them at 1e-7"):
            two_phase_fit(probs, x, y, **kwargs)
        assert probs.evaluate(x, y, verbose=0, return_dict=True)["accuracy"] < 0.9


class _Batches(keras.utils.PyDataset):
    def __init__(self, x, y, batch_size=16, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y, self.batch_size = x, y, batch_size

    def __len__(self):
        return int(np.ceil(len(self.x) / self.batch_size))

    def __getitem__(self, i):
        part = slice(i * self.batch_size, (i + 1) * self.batch_size)
        return self.x[part], self.y[part]


@pytest.mark.parametrize("cache", ["auto", True])
@pytest.mark.parametrize("validation", ["arrays", "pydataset", None])
def test_seed_works_with_a_pydataset_and_repeats(cache, validation):
    x, y = tiny_data()
    val = {
        "arrays": (x[:12], y[:12]),
        "pydataset": _Batches(x[:12], y[:12]),
        None: None,
    }[validation]

    def run():
        keras.backend.clear_session()
        keras.utils.set_random_seed(0)
        model = tiny_model()
        return two_phase_fit(
            model, _Batches(x, y), validation_data=val, head_epochs=2,
            fine_tune_epochs=1, seed=0, cache_features=cache, verbose=0,
        )  # fmt: skip

    first, second = run(), run()
    assert first.phase_epochs == {"head": 2, "fine_tune": 1}
    assert first.features_cached == (cache is True)
    for key in first.history:
        np.testing.assert_allclose(first.history[key], second.history[key], rtol=1e-6)
