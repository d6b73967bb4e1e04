"""Bad inputs never train, NaN losses stop cleanly, unsafe files are refused,
and one seed gives the same numbers twice."""

import keras
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tests.helpers import assert_identical, tiny_base, tiny_data, tiny_model, weights_of
from tlrecipes import add_head
from tlrecipes.batches import SeededBatches
from tlrecipes.heads import RepeatChannels
from tlrecipes.safe_loading import (
    ChecksumError,
    safe_load_model,
    sha256_file,
    verify_checksum,
)
from tlrecipes.training import NaNLossError, two_phase_fit
from tlrecipes.validation import check_images, check_labels

pytestmark = pytest.mark.multibackend

FIT = {"batch_size": 16, "verbose": 0}
QUICK = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def _rgb_model(num_classes=3):
    return add_head(tiny_base(channels=3), num_classes)


# --- every bad input is refused before a weight moves --------------------------


def _one_hot_wrong_width(x, y):
    return x, np.eye(4)[y]


BAD_INPUTS = [
    # (model factory, mutate(x, y), expected message)
    (
        tiny_model,
        lambda x, y: (x, y + 1),
        r"Labels must be integers in \[0, 2\].*y - 1",
    ),
    (
        tiny_model,
        lambda x, y: (x, np.zeros_like(y)),
        r"only 1 class\(es\) \(label \[0\]\)",
    ),
    (tiny_model, lambda x, y: (x, y + 0.5), "not all integers"),
    (
        tiny_model,
        lambda x, y: (x, np.array(["cat", "dog", "owl"])[y]),
        "Labels must be numbers.*return_inverse",
    ),
    (tiny_model, lambda x, y: (x, np.where(y == 1, np.nan, y)), "NaN or Inf labels"),
    (tiny_model, lambda x, y: (np.where(x > 2.5, np.nan, x), y), "NaN or Inf values"),
    (tiny_model, lambda x, y: (np.where(x > 2.5, np.inf, x), y), "NaN or Inf values"),
    (tiny_model, lambda x, y: (x[:0], y[:0]), "is empty"),
    (tiny_model, lambda x, y: (x, y[:-1]), "different lengths: len.x.=48, len.y.=47"),
    (tiny_model, lambda x, y: (x[..., 0], y), r"no channel axis.*x\[\.\.\., None\]"),
    (tiny_model, lambda x, y: (x[:, :6, :6], y), r"expects \(8, 8, 1\).*Resizing"),
    (tiny_model, lambda x, y: (np.repeat(x, 3, -1), y), "3 channel.*mean.axis=-1"),
    (tiny_model, _one_hot_wrong_width, r"shape \(n, 3\).*Received: y.shape=\(48, 4\)"),
    (_rgb_model, lambda x, y: (x, y), r"1 channel.*input_shape=\(h, w, 1\)"),
    (
        _rgb_model,
        lambda x, y: (np.repeat(x, 4, -1), y),
        r"alpha channel: x\[\.\.\., :3\]",
    ),
    (
        _rgb_model,
        lambda x, y: (np.repeat(x, 3, -1).transpose(0, 3, 1, 2), y),
        r"channels-first.*np.moveaxis\(x, 1, -1\)",
    ),
    (
        lambda: tiny_model(1),
        lambda x, y: (x, y),
        r"labels 0 or 1.*\[0, 2\].*num_classes=3",
    ),
]


@pytest.mark.parametrize("make_model, mutate, message", BAD_INPUTS)
def test_bad_inputs_are_refused_and_nothing_trains(make_model, mutate, message):
    model = make_model()
    x, y = mutate(*tiny_data())
    before = weights_of(model.layers)
    with pytest.raises(ValueError, match=message):
        two_phase_fit(model, x, y, head_epochs=1, fine_tune_epochs=1, **FIT)
    assert_identical(before, weights_of(model.layers))


def _surgical(model, x, y):
    from tlrecipes.finetune import surgical_fit

    surgical_fit(model, x, y, block="head", epochs=1, batch_size=16, verbose=0)


def _gradual(model, x, y):
    from tlrecipes.finetune import gradual_unfreeze_fit

    gradual_unfreeze_fit(model, x, y, batch_size=16, verbose=0)


def _lr_find(model, x, y):
    from tlrecipes.lr_finder import lr_find

    lr_find(model, x, y, num_steps=5, batch_size=16)


# The other public entry points that train run the same checks first.
OTHER_TRAINERS = [_surgical, _gradual, _lr_find]
SOME_BAD_INPUTS = [BAD_INPUTS[i] for i in (0, 1, 5, 8, 11)]


@pytest.mark.parametrize("train", OTHER_TRAINERS, ids=lambda f: f.__name__[1:])
@pytest.mark.parametrize("make_model, mutate, message", SOME_BAD_INPUTS)
def test_other_trainers_refuse_bad_inputs_and_nothing_trains(
    train, make_model, mutate, message
):
    model = make_model()
    x, y = mutate(*tiny_data())
    before = weights_of(model.layers)
    with pytest.raises(ValueError, match=message):
        train(model, x, y)
    assert_identical(before, weights_of(model.layers))


def test_bad_validation_data_is_refused():
    model = tiny_model()
    x, y = tiny_data()
    with pytest.raises(ValueError, match=r"Labels must be.*\[1, 3\]"):
        two_phase_fit(
            model,
            x,
            y,
            validation_data=(x, y + 1),
            head_epochs=1,
            fine_tune_epochs=0,
            **FIT,
        )
    with pytest.raises(ValueError, match=r"`validation_data\[0\]` has 3 channel"):
        two_phase_fit(
            model,
            x,
            y,
            validation_data=(np.repeat(x, 3, -1), y),
            head_epochs=1,
            fine_tune_epochs=0,
            **FIT,
        )


def test_bad_pydataset_batches_are_refused():
    x, y = tiny_data()

    class Batches(keras.utils.PyDataset):
        def __init__(self, n, shift=0):
            super().__init__()
            self.n, self.shift = n, shift

        def __len__(self):
            return self.n

        def __getitem__(self, i):
            return x[i * 16 : (i + 1) * 16], y[i * 16 : (i + 1) * 16] + self.shift

    model = tiny_model()
    before = weights_of(model.layers)
    with pytest.raises(ValueError, match="empty PyDataset"):
        two_phase_fit(model, Batches(0), head_epochs=1, fine_tune_epochs=0, verbose=0)
    with pytest.raises(ValueError, match="Labels must be integers"):
        two_phase_fit(
            model, Batches(3, 1), head_epochs=1, fine_tune_epochs=0, verbose=0
        )
    assert_identical(before, weights_of(model.layers))


def test_empty_and_unbatched_tf_data_are_refused():
    if keras.backend.backend() != "tensorflow":
        pytest.skip("tf.data input is for the tensorflow backend")
    import tensorflow as tf

    x, y = tiny_data()
    model = tiny_model()
    with pytest.raises(ValueError, match="empty tf.data.Dataset"):
        two_phase_fit(
            model,
            tf.data.Dataset.from_tensor_slices((x, y)).take(0),
            head_epochs=1,
            fine_tune_epochs=0,
            verbose=0,
        )
    with pytest.raises(ValueError, match=r"single examples.*ds.batch\(32\)"):
        two_phase_fit(
            model,
            tf.data.Dataset.from_tensor_slices((x, y)),
            head_epochs=1,
            fine_tune_epochs=0,
            verbose=0,
        )


# --- grayscale into an RGB base: the documented correction ----------------------


def test_grayscale_input_on_rgb_base_repeats_channels_and_round_trips(tmp_path):
    model = add_head(tiny_base(channels=3), 3, input_shape=(8, 8, 1))
    assert isinstance(model.get_layer("gray_to_rgb"), RepeatChannels)
    x, y = tiny_data()
    two_phase_fit(model, x, y, head_epochs=1, fine_tune_epochs=1, **FIT)
    model.save(tmp_path / "gray.keras")
    loaded = safe_load_model(tmp_path / "gray.keras")  # no Lambda: loads safely
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6
    )
    images = x[:2].astype("float32")
    gray = keras.ops.convert_to_numpy(RepeatChannels()(images))
    np.testing.assert_array_equal(gray, np.repeat(images, 3, axis=-1))


@pytest.mark.parametrize(
    "input_shape, message",
    [
        ((8, 8, 4), r"have shape \(8, 8, 4\) but it expects \(8, 8, 3\)"),
        ((16, 16, 3), r"\(16, 16, 3\).*Resizing"),
    ],
)
def test_add_head_refuses_inputs_the_base_cannot_take(input_shape, message):
    with pytest.raises(ValueError, match=message):
        add_head(tiny_base(channels=3), 3, input_shape=input_shape)


# --- a NaN loss stops training and restores the last good weights ---------------


class PoisonAt(keras.callbacks.Callback):
    """Records the weights after `epoch - 1`, then makes the loss NaN."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch, self.good = epoch, None

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch - 1:
            self.good = weights_of(self.model.layers)

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            kernel = self.model.get_layer("head_logits").kernel
            kernel.assign(np.full(kernel.shape, np.nan, "float32"))


def test_nan_loss_stops_with_a_clear_message_and_last_good_weights(tmp_path):
    model = tiny_model()
    x, y = tiny_data()
    poison = PoisonAt(3)
    with pytest.raises(
        NaNLossError, match=r"fine_tune.*epoch 3.*end of epoch 2.*fine_tune_lr"
    ) as info:
        two_phase_fit(
            model,
            x,
            y,
            head_epochs=2,
            fine_tune_epochs=3,
            callbacks=[poison],
            checkpoint_dir=tmp_path,
            seed=0,
            **FIT,
        )
    assert_identical(poison.good, weights_of(model.layers))
    assert info.value.history.epoch == [0, 1, 2]
    assert all(np.isfinite(info.value.history.history["loss"]))
    # The checkpoint holds the last good epoch too, never the NaN one.
    import json

    assert json.loads((tmp_path / "state.json").read_text())["epoch"] == 3


def test_nan_in_the_first_epoch_restores_the_starting_weights():
    model = tiny_model()
    x, y = tiny_data()
    before = weights_of(model.layers)
    with pytest.raises(NaNLossError, match="weights from before phase 'head'"):
        two_phase_fit(
            model,
            x,
            y,
            head_epochs=2,
            fine_tune_epochs=1,
            callbacks=[PoisonAt(0)],
            **FIT,
        )
    assert_identical(before, weights_of(model.layers))


# --- safe loading ----------------------------------------------------------------


def test_model_with_a_lambda_layer_is_refused_naming_risk_and_fix(tmp_path):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda t: t * 2)(inputs))
    model.save(tmp_path / "lambda.keras")
    with pytest.raises(
        ValueError,
        match=r"contains code.*run that code.*"
        r"register_keras_serializable",
    ):
        safe_load_model(tmp_path / "lambda.keras")


def test_tampered_or_truncated_weights_are_refused(tmp_path):
    path = tmp_path / "source.weights.h5"
    tiny_model().save_weights(path)
    digest = sha256_file(path)
    verify_checksum(path, digest)
    verify_checksum(path, "sha256:" + digest.upper())  # prefix and case tolerated
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(
        ChecksumError, match=f"expected sha256={digest}.*download or reinstall"
    ):
        verify_checksum(path, digest)
    path.write_bytes(bytes(data[:100]))
    with pytest.raises(ChecksumError, match=r"\(100 bytes\).*truncated"):
        verify_checksum(path, digest)
    with pytest.raises(ValueError, match="expected a SHA-256 digest"):
        verify_checksum(path, "abc")


def test_safe_load_model_checks_the_digest_before_loading(tmp_path):
    path = tmp_path / "m.keras"
    tiny_model().save(path)
    assert safe_load_model(path, sha256_file(path)).output_shape == (None, 3)
    with pytest.raises(ChecksumError):
        safe_load_model(path, "0" * 64)


@given(data=st.binary(min_size=1, max_size=256), flip=st.integers(0, 255))
@QUICK
def test_any_changed_byte_is_detected(tmp_path, data, flip):
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    digest = sha256_file(path)
    changed = bytearray(data)
    changed[flip % len(data)] ^= 0x01
    path.write_bytes(bytes(changed))
    with pytest.raises(ChecksumError):
        verify_checksum(path, digest)


# --- property-based tests over the validation helpers ---------------------------


@given(k=st.integers(2, 12), n=st.integers(2, 60), seed=st.integers(0, 2**16))
@QUICK
def test_valid_sparse_labels_pass(k, n, seed):
    y = np.random.default_rng(seed).integers(0, k, size=n)
    y[:2] = [0, 1]  # at least two classes
    check_labels(y, k)


@given(k=st.integers(2, 12), offset=st.integers(1, 5), n=st.integers(2, 40))
@QUICK
def test_out_of_range_labels_always_fail_with_the_range(k, offset, n):
    y = np.arange(n) % k + offset  # e.g. labels 1..k
    if y.max() < k:
        y[-1] = k - 1 + offset
    with pytest.raises(ValueError, match=rf"integers in \[0, {k - 1}\]"):
        check_labels(y, k)
    with pytest.raises(ValueError, match=rf"integers in \[0, {k - 1}\]"):
        check_labels(-y, k)


@given(label=st.integers(0, 9), n=st.integers(1, 30))
@QUICK
def test_one_class_fails_unless_allowed(label, n):
    y = np.full(n, label)
    with pytest.raises(ValueError, match="only 1 class"):
        check_labels(y, 10)
    check_labels(y, 10, min_classes=1)


@given(k=st.integers(2, 8), n=st.integers(2, 30), width=st.integers(1, 10))
@QUICK
def test_one_hot_width_must_match(k, n, width):
    y = np.eye(width)[np.arange(n) % width]
    if width == k and n >= 2:
        check_labels(y, k, "one_hot")
    elif width != k:
        with pytest.raises(ValueError, match=rf"shape \(n, {k}\)"):
            check_labels(y, k, "one_hot")


image_shapes = st.tuples(st.integers(1, 6), st.integers(1, 6), st.sampled_from([1, 3]))


@given(shape=image_shapes, n=st.integers(1, 4), nan_at=st.integers(0, 10**6))
@QUICK
def test_images_matching_pass_and_any_nan_fails(shape, n, nan_at):
    x = np.zeros((n, *shape), "float32")
    check_images(x, shape)
    check_images(x, (None, None, shape[-1]))
    x.ravel()[nan_at % x.size] = np.nan
    with pytest.raises(ValueError, match="NaN or Inf"):
        check_images(x, shape)


@given(shape=image_shapes, other=st.sampled_from([1, 2, 3, 4]))
@QUICK
def test_images_with_other_channels_fail_naming_both(shape, other):
    x = np.zeros((2, shape[0], shape[1], other), "float32")
    if other == shape[-1]:
        check_images(x, shape)
    else:
        with pytest.raises(
            ValueError, match=rf"{other} channel\(s\).*expects {shape[-1]}"
        ):
            check_images(x, shape)


@given(
    x=hnp.arrays(
        np.float32,
        hnp.array_shapes(min_dims=2, max_dims=4, max_side=4),
        elements=st.floats(-1, 1, width=32),
    )
)
@QUICK
def test_images_of_another_rank_or_size_fail(x):
    want = (*x.shape[1:-1], x.shape[-1] + 1)
    with pytest.raises(ValueError, match="expects"):
        check_images(x, want)
    with pytest.raises(ValueError, match="expects|no channel axis"):
        check_images(x, (*x.shape[1:], 1))


# --- resumable shuffling and reproducibility ------------------------------------


@given(
    n=st.integers(1, 40),
    batch=st.integers(1, 16),
    seed=st.integers(0, 99),
    start=st.integers(0, 5),
)
@QUICK
def test_seeded_batches_depend_on_seed_and_epoch_only(n, batch, seed, start):
    x = np.arange(n)
    steps = -(-n // batch)
    fresh = SeededBatches([x], batch, steps, seed, 0, True)
    resumed = SeededBatches([x], batch, steps, seed, start, True)
    for epoch in range(start, start + 2):
        served = [fresh[epoch * steps + b][0] for b in range(steps)]
        assert sorted(np.concatenate(served).tolist()) == list(range(n))  # each once
        again = [resumed[(epoch - start) * steps + b][0] for b in range(steps)]
        for a, b in zip(served, again, strict=True):
            np.testing.assert_array_equal(a, b)


def _seeded_run(seed):
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    model = tiny_model()
    x, y = tiny_data()
    hist = two_phase_fit(
        model,
        x,
        y,
        validation_data=(x, y),
        head_epochs=2,
        fine_tune_epochs=2,
        seed=seed,
        **FIT,
    )
    return hist.history, weights_of(model.layers)


def test_same_seed_gives_identical_metrics_on_cpu():
    first, weights = _seeded_run(3)
    second, weights_again = _seeded_run(3)
    assert first == second  # exactly equal, not approximately
    assert_identical(weights, weights_again)
    other, _ = _seeded_run(4)
    assert other["loss"] != first["loss"]


def test_invalid_seed_is_refused():
    x, y = tiny_data()
    with pytest.raises(ValueError, match=r"Received: seed=-1"):
        two_phase_fit(
            tiny_model(), x, y, head_epochs=1, fine_tune_epochs=0, seed=-1, **FIT
        )
