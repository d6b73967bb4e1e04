"""Feature caching in phase 1 of two_phase_fit (tlrecipes/features.py).

The claim under test: training the head on features computed once gives the
same model as running the frozen base on every batch, and caching is refused
whenever it would not (augmentation, trainable BatchNorm, datasets that may
shuffle or augment).
"""

import keras
import numpy as np
import pytest
from helpers import assert_identical, tiny_base, tiny_data, tiny_model, weights_of

from tlrecipes import add_head, two_phase_fit
from tlrecipes.features import cache_problem, extract_features, split_at_head
from tlrecipes.heads import find_base, head_layers


def fit(cache, *, x=None, y=None, model_kwargs=None, **kwargs):
    keras.utils.set_random_seed(0)
    model = tiny_model(3, **(model_kwargs or {}))
    if x is None:
        x, y = tiny_data(48)
    kwargs = {
        "head_epochs": 3,
        "fine_tune_epochs": 0,
        "seed": 0,
        "verbose": 0,
        "batch_size": 16,
        **kwargs,
    }
    history = two_phase_fit(model, x, y, cache_features=cache, **kwargs)
    return model, history


def assert_same_run(a, b, atol=1e-6):
    (model_a, hist_a), (model_b, hist_b) = a, b
    for wa, wb in zip(model_a.get_weights(), model_b.get_weights(), strict=True):
        np.testing.assert_allclose(wa, wb, atol=atol)
    assert sorted(hist_a.history) == sorted(hist_b.history)
    for key in hist_a.history:
        np.testing.assert_allclose(hist_a.history[key], hist_b.history[key], atol=atol)


@pytest.mark.multibackend
def test_cached_phase_one_trains_the_same_model_as_the_uncached_one():
    x, y = tiny_data(48)
    kwargs = {"validation_data": (x[:12], y[:12]), "fine_tune_epochs": 1}
    uncached = fit(False, **kwargs)
    cached = fit("auto", **kwargs)
    assert cached[1].features_cached and not uncached[1].features_cached
    assert uncached[1].feature_cache_note == "cache_features=False"
    assert "val_loss" in cached[1].history  # validation ran on cached features
    assert cached[1].phase_epochs == {"head": 3, "fine_tune": 1}
    assert_same_run(uncached, cached)


@pytest.mark.multibackend
def test_a_short_head_run_eagerly_trains_the_same_model(monkeypatch):
    import tlrecipes.cached_head as cached_head

    x, y = tiny_data(48)
    backend = keras.backend.backend()
    monkeypatch.setattr(cached_head, "EAGER_HEAD_STEPS", {})
    compiled = fit(True)
    monkeypatch.setattr(cached_head, "EAGER_HEAD_STEPS", {backend: 9})
    phase = cached_head.CachedHeadPhase(compiled[0], None, x, y, None, {}, 0)
    assert phase._eager({"jit_compile": "auto"}, 9)  # 3 epochs x 3 steps
    assert not phase._eager({"jit_compile": "auto"}, 10)
    assert not phase._eager({"jit_compile": True}, 9)  # XLA was asked for
    eager = fit(True)
    assert_same_run(compiled, eager, atol=1e-5)


class BatchCounter(keras.callbacks.Callback):
    """Counts the batch-end calls it sees (a callback with a batch hook)."""

    def __init__(self):
        super().__init__()
        self.batches = 0

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="one epoch per train-function call is used on tensorflow only",
)
@pytest.mark.parametrize("seed", [0, None])
def test_a_whole_epoch_per_call_trains_the_same_model(monkeypatch, seed):
    import tlrecipes.cached_head as cached_head

    monkeypatch.setattr(cached_head, "EAGER_HEAD_STEPS", {})
    x, y = tiny_data(64)
    kwargs = {"x": x, "y": y, "batch_size": 4, "seed": seed}  # 16 steps/epoch
    seen = []
    fit_method = keras.Model.fit

    def recording_fit(self, *args, **fit_kwargs):
        seen.append(self.steps_per_execution)
        return fit_method(self, *args, **fit_kwargs)

    monkeypatch.setattr(keras.Model, "fit", recording_fit)
    counter = BatchCounter()  # a callback with a batch hook: one step per call
    per_step = fit(True, callbacks=[counter], **kwargs)
    per_epoch = fit(True, **kwargs)
    assert seen == [1, 16]
    assert counter.batches == 3 * 16
    assert per_epoch[1].features_cached
    assert int(per_epoch[0].optimizer.iterations) == 3 * 16  # every step ran
    assert_same_run(per_step, per_epoch, atol=0)


@pytest.mark.multibackend
def test_small_arrays_skip_predict_and_give_the_same_features(monkeypatch):
    import tlrecipes.features as features

    split = split_at_head(tiny_model(3))
    x, _ = tiny_data(40)
    direct = extract_features(split.features, x, batch_size=16)  # 3 batches
    monkeypatch.setattr(features, "EAGER_EXTRACT_BATCHES", 0)
    predicted = extract_features(split.features, x, batch_size=16)
    assert direct.shape == predicted.shape == (40, 6)
    np.testing.assert_allclose(direct, predicted, rtol=1e-5, atol=1e-6)


def test_the_returned_model_is_the_full_model_with_the_trained_head():
    keras.utils.set_random_seed(0)
    model = tiny_model(3)
    base_before = weights_of(find_base(model).layers)
    head_before = weights_of(head_layers(model))
    x, y = tiny_data(48)
    history = two_phase_fit(
        model, x, y, head_epochs=2, fine_tune_epochs=0, verbose=0
    )
    assert history.features_cached
    assert model.input_shape == (None, 8, 8, 1)  # still takes images
    assert_identical(base_before, weights_of(find_base(model).layers))
    head_after = weights_of(head_layers(model))
    assert any(not np.array_equal(b, a) for b, a in zip(head_before, head_after))
    split = split_at_head(model)
    np.testing.assert_allclose(
        model.predict(x, verbose=0),
        split.head.predict(extract_features(split.features, x), verbose=0),
        atol=1e-6,
    )


def test_features_use_batchnorm_in_inference_mode_and_fold_the_pooling():
    model = tiny_model(3)
    x, _ = tiny_data(16)
    split = split_at_head(model)
    assert split.boundary == "head_dropout"  # weight-free pooling folded in
    features = extract_features(split.features, x, batch_size=5)
    base = find_base(model)
    expected = keras.ops.convert_to_numpy(base(x, training=False)).mean(axis=(1, 2))
    np.testing.assert_allclose(features, expected, atol=1e-5)
    base.trainable = True  # what an unfrozen BatchNorm would give (batch stats)
    out, _ = base.stateless_call(
        [v.value for v in base.trainable_variables],
        [v.value for v in base.non_trainable_variables],
        x,
        training=True,
    )
    base.trainable = False
    in_training = keras.ops.convert_to_numpy(out).mean(axis=(1, 2))
    assert not np.allclose(in_training, expected, atol=1e-3)


def test_augmentation_before_the_base_turns_caching_off_and_true_is_refused():
    flip = {"preprocessing": keras.layers.RandomFlip("horizontal", seed=1)}
    model, history = fit("auto", model_kwargs=flip)
    assert not history.features_cached
    assert "random" in history.feature_cache_note
    with pytest.raises(ValueError, match="cache_features=True.*random"):
        fit(True, model_kwargs=flip)


def test_random_layer_inside_the_base_is_detected_by_running_it():
    """Keras 3 overrides `base(x, training=False)` with fit's training=True, so a
    random layer inside the base is active in phase 1: caching must be refused."""
    x = tiny_data(8)[0]
    inputs = keras.Input((8, 8, 1))
    conv = keras.layers.Conv2D(3, 3)(inputs)
    noisy = keras.layers.GaussianNoise(0.5, seed=1)(conv)
    model = add_head(keras.Model(inputs, noisy, name="noisy"), 3)
    active = keras.ops.convert_to_numpy(model(x, training=True))
    assert not np.allclose(active, keras.ops.convert_to_numpy(model(x)))
    problem = cache_problem(model, split_at_head(model), x)
    assert "training mode" in problem
    plain = add_head(keras.Model(inputs, conv, name="plain"), 3)
    assert cache_problem(plain, split_at_head(plain), x) is None


def test_trainable_batchnorm_turns_caching_off():
    _, history = fit("auto", model_kwargs={"bn_training": True})
    assert not history.features_cached
    assert "BatchNormalization" in history.feature_cache_note
    with pytest.raises(ValueError, match="BatchNormalization"):
        fit(True, model_kwargs={"bn_training": True})


def test_bad_cache_features_value_names_the_argument():
    with pytest.raises(
        ValueError, match="cache_features.*Received: cache_features='yes'"
    ):
        fit("yes")


def test_features_on_disk_give_the_same_run(tmp_path, monkeypatch):
    import tempfile

    import tlrecipes.cached_head as cached_head

    x, y = tiny_data(48)
    val = (x[:12], y[:12])
    in_memory = fit(True, validation_data=val)
    monkeypatch.setattr(cached_head, "MEMMAP_THRESHOLD_BYTES", 0)  # everything
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    seen = []
    original = cached_head.extract_features

    def recording(features, x, **kwargs):
        out = original(features, x, **kwargs)
        seen.append((type(out).__name__, kwargs.get("path")))
        return out

    monkeypatch.setattr(cached_head, "extract_features", recording)
    on_disk = fit(True, validation_data=val)
    assert_same_run(in_memory, on_disk)
    assert [kind for kind, _ in seen] == ["memmap", "memmap"]
    assert all(str(path).startswith(str(tmp_path)) for _, path in seen)
    assert list(tmp_path.iterdir()) == []  # the temporary files are gone


def test_callbacks_see_the_full_model_and_early_stopping_ends_phase_one():
    seen = []

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append((self.model.input_shape, sorted(logs)))

    def run(cache):
        stop = keras.callbacks.EarlyStopping(monitor="loss", min_delta=10.0, patience=0)
        return fit(cache, head_epochs=5, fine_tune_epochs=1, callbacks=[Record(), stop])

    uncached, cached = run(False), run(True)
    assert cached[1].features_cached
    assert (
        cached[1].phase_epochs
        == uncached[1].phase_epochs
        == {
            "head": 2,
            "fine_tune": 1,
        }
    )
    assert all(shape == (None, 8, 8, 1) for shape, _ in seen)  # never the head
    assert seen[:3] == seen[3:]
    assert_same_run(uncached, cached)


def test_resume_from_a_checkpoint_with_cached_features(tmp_path):
    class Interrupt(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise KeyboardInterrupt

    kwargs = {"head_epochs": 4, "fine_tune_epochs": 1}
    whole = fit(True, **kwargs)
    with pytest.raises(KeyboardInterrupt):
        fit(True, checkpoint_dir=tmp_path, callbacks=[Interrupt()], **kwargs)
    keras.utils.set_random_seed(0)
    model = tiny_model(3)
    x, y = tiny_data(48)
    history = two_phase_fit(
        model, x, y, cache_features=True, checkpoint_dir=tmp_path,
        seed=0, verbose=0, batch_size=16, **kwargs,
    )  # fmt: skip
    assert history.resumed_at_epoch == 2 and history.features_cached
    assert_same_run(whole, (model, history), atol=1e-5)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="tf.data")
def test_a_dataset_is_cached_only_when_asked():
    import tensorflow as tf

    x, y = tiny_data(48)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    _, auto = fit("auto", x=dataset)
    assert not auto.features_cached and "dataset" in auto.feature_cache_note
    validation = tf.data.Dataset.from_tensor_slices((x[:16], y[:16])).batch(8)
    cached_model, cached = fit(True, x=dataset, seed=None, validation_data=validation)
    assert cached.features_cached and cached.phase_epochs["head"] == 3
    assert len(cached.history["val_loss"]) == 3
    # The validation loss is the full model's on that dataset.
    np.testing.assert_allclose(
        cached.history["val_loss"][-1],
        cached_model.evaluate(validation, verbose=0, return_dict=True)["loss"],
        rtol=1e-4,
    )
    assert np.isfinite(cached.history["loss"]).all()
    features, labels, weights = extract_features(
        split_at_head(cached_model).features, dataset
    )
    assert features.shape == (48, 6) and weights is None
    np.testing.assert_array_equal(labels, y)


def test_split_needs_the_head_at_the_top_level():
    model = add_head(tiny_base(), 3)
    with pytest.raises(ValueError, match="nested model"):
        split_at_head(model, head_start="block2_conv")
    assert split_at_head(model, head_start="head_pool").boundary == "head_dropout"


@pytest.mark.multibackend
def test_preprocessing_layers_inside_the_model_are_cached_with_the_base():
    """Rescaling inside the model is part of the features: caching stays exact."""

    def run(cache):
        keras.utils.set_random_seed(0)
        model = add_head(
            tiny_base(),
            3,
            preprocessing=[keras.layers.Rescaling(1 / 4.0, offset=-0.5)],
        )
        x, y = tiny_data(48)
        hist = two_phase_fit(
            model, x * 4.0, y, head_epochs=3, fine_tune_epochs=1, seed=0,
            cache_features=cache, batch_size=16, verbose=0,
        )  # fmt: skip
        return model, hist

    uncached, cached = run(False), run("auto")
    assert cached[1].features_cached, cached[1].feature_cache_note
    assert_same_run(uncached, cached)


class Preprocessed(keras.Model):
    """A functional model whose `fit` scales the data first (as KerasHub tasks do)."""

    preprocessor = staticmethod(lambda x: x / 4.0)

    def fit(self, x=None, y=None, **kwargs):
        return super().fit(self.preprocessor(x), y, **kwargs)


@pytest.mark.multibackend
def test_preprocessing_outside_the_layers_turns_caching_off():
    base = tiny_base()
    inputs = keras.Input((8, 8, 1))
    h = keras.layers.GlobalAveragePooling2D(name="head_pool")(base(inputs))
    model = Preprocessed(inputs, keras.layers.Dense(3, name="head_logits")(h))
    x, y = tiny_data(48)
    hist = two_phase_fit(
        model, x * 4.0, y, head_epochs=1, fine_tune_epochs=0, verbose=0
    )
    assert not hist.features_cached
    assert "preprocessor" in hist.feature_cache_note
    with pytest.raises(ValueError, match="preprocessor"):
        two_phase_fit(
            model, x, y, head_epochs=1, fine_tune_epochs=0, cache_features=True
        )


@pytest.mark.multibackend
def test_an_overridden_train_step_turns_caching_off():
    class Custom(keras.Model):
        def train_step(self, *args):  # jax passes (state, data)
            return super().train_step(*args)

    inputs = keras.Input((8, 8, 1))
    h = keras.layers.GlobalAveragePooling2D(name="head_pool")(tiny_base()(inputs))
    model = Custom(inputs, keras.layers.Dense(3, name="head_logits")(h))
    x, y = tiny_data(48)
    hist = two_phase_fit(model, x, y, head_epochs=1, fine_tune_epochs=0, verbose=0)
    assert not hist.features_cached
    assert "overrides `train_step`" in hist.feature_cache_note


def test_a_keras_hub_classifier_with_a_preprocessor_is_not_cached():
    """The reported case: a KerasHub ImageClassifier (tiny random ResNet)."""
    keras_hub = pytest.importorskip("keras_hub")
    if keras.backend.backend() != "tensorflow":
        pytest.skip("KerasHub preprocessors run in tf.data")
    backbone = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[7],
        stackwise_num_filters=[64, 16], stackwise_num_blocks=[1, 1],
        stackwise_num_strides=[1, 2], block_type="basic_block",
        use_pre_activation=False, image_shape=(32, 32, 3),
    )  # fmt: skip
    converter = keras_hub.layers.ResNetImageConverter(
        image_size=(32, 32), scale=1 / 255.0, offset=0.0
    )
    preprocessor = keras_hub.models.ResNetImageClassifierPreprocessor(
        image_converter=converter
    )
    model = keras_hub.models.ResNetImageClassifier(
        backbone=backbone, num_classes=3, preprocessor=preprocessor,
        pooling="avg", activation=None,
    )  # fmt: skip
    rng = np.random.default_rng(0)
    x = (rng.random((24, 32, 32, 3)) * 255).astype("float32")
    y = np.arange(24) % 3
    before = [np.array(w) for w in backbone.get_weights()]
    hist = two_phase_fit(
        model, x, y, head_epochs=2, fine_tune_epochs=0, head_start="pooler",
        batch_size=8, verbose=0,
    )  # fmt: skip
    assert not hist.features_cached
    assert "preprocessor" in hist.feature_cache_note
    for b, a in zip(before, backbone.get_weights()):
        np.testing.assert_array_equal(b, a)  # phase 1 trained the head only
