"""A checkpoint resumes only for the same job: settings, data and starting base.

Arrays are hashed in full (one label or one pixel is other data); streamed
data need a `run_key`; the weights of the layers before the head, as they are
when the call starts, are part of the identity, the head's are not.
"""

from pathlib import Path

import keras
import numpy as np
import pytest

from tests.helpers import assert_identical, tiny_base, tiny_data
from tlrecipes import add_head
from tlrecipes.checkpoint import arrays_of, base_weights_digest, data_identity
from tlrecipes.freezing import flat_layers
from tlrecipes.heads import find_head_start
from tlrecipes.training import two_phase_fit

RUN = {
    "head_epochs": 1,
    "fine_tune_epochs": 2,
    "batch_size": 16,
    "verbose": 0,
    "seed": 5,
}
#: More rows than the 64 an older identity sampled: row 13 (outside the
#: validation rows, x[:12]) was not among them.
N = 130


class Interrupt(Exception):
    """Stands in for a crash inside this process."""


class InterruptAtEpoch(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.at = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.at:
            raise Interrupt(epoch)


def _model(base_seed=0, head_seed=0):
    """The tiny base drawn from `base_seed` under a head drawn from `head_seed`."""
    keras.utils.set_random_seed(base_seed)
    base = tiny_base()
    keras.utils.set_random_seed(head_seed)
    return add_head(base, 3)


def _fit(directory, model=None, x=None, y=None, **kwargs):
    model = model if model is not None else _model()
    if x is None:
        x, y = tiny_data(N)
    hist = two_phase_fit(
        model, x, y, validation_data=(x[:12], y[:12]), checkpoint_dir=directory,
        **{**RUN, **kwargs},
    )  # fmt: skip
    return model, hist


def _weights(model):
    return arrays_of(model.variables)


def _files(directory):
    return {p.name: p.read_bytes() for p in Path(directory).iterdir()}


def _assert_refused_and_untouched(directory, match, model=None, **kwargs):
    """The call raises ValueError(match); no weight and no file changed."""
    model = model if model is not None else _model()
    before, files = _weights(model), _files(directory)
    with pytest.raises(ValueError, match=match) as info:
        _fit(directory, model, **kwargs)
    assert_identical(before, _weights(model))
    assert _files(directory) == files
    return str(info.value)


@pytest.fixture
def finished(tmp_path):
    """A checkpoint directory holding a finished run on tiny_data()."""
    _fit(tmp_path)
    return tmp_path


@pytest.mark.multibackend
def test_one_changed_label_is_other_data(finished):
    x, y = tiny_data(N)
    y = y.copy()
    y[13] = (y[13] + 1) % 3
    message = _assert_refused_and_untouched(finished, r"data\.y\.sha256", x=x, y=y)
    assert "data.x." not in message and "validation" not in message
    assert "base weights (" not in message


@pytest.mark.multibackend
def test_one_changed_pixel_is_other_data(finished):
    x, y = tiny_data(N)
    x = x.copy()
    x[13, 4, 5, 0] += 0.5
    message = _assert_refused_and_untouched(finished, r"data\.x\.sha256", x=x, y=y)
    assert "data.y." not in message and "validation" not in message


@pytest.mark.multibackend
def test_changed_validation_labels_are_other_data(finished):
    x, y = tiny_data(N)
    model = _model()
    before, files = _weights(model), _files(finished)
    y_val = y[:12].copy()
    y_val[3] = (y_val[3] + 1) % 3
    with pytest.raises(ValueError, match=r"data\.validation_data"):
        two_phase_fit(
            model, x, y, validation_data=(x[:12], y_val), checkpoint_dir=finished,
            **RUN,
        )  # fmt: skip
    assert_identical(before, _weights(model))
    assert _files(finished) == files


@pytest.mark.multibackend
def test_another_starting_base_is_refused_in_words(finished):
    message = _assert_refused_and_untouched(
        finished, "base weights", model=_model(base_seed=1, head_seed=0)
    )
    assert "differ from those the checkpointed run started from" in message
    assert "same seed" in message and "another checkpoint_dir" in message
    assert "Differences" not in message  # nothing else differs
    assert "base_weights:" not in message  # said in words, not as two hashes


@pytest.mark.multibackend
def test_a_redrawn_head_on_the_same_base_resumes_the_same_run(tmp_path):
    reference, ref_hist = _fit(tmp_path / "reference")
    with pytest.raises(Interrupt):
        _fit(tmp_path / "run", callbacks=[InterruptAtEpoch(2)])  # in phase 2
    rebuilt = _model(base_seed=0, head_seed=9)  # as after a crash: a new head
    head = rebuilt.get_layer("head_logits").get_weights()[0]
    assert not np.array_equal(head, reference.get_layer("head_logits").get_weights()[0])
    model, hist = _fit(tmp_path / "run", model=rebuilt)
    assert hist.resumed_at_epoch == 2
    assert hist.epoch == ref_hist.epoch == [0, 1, 2]
    for a, b in zip(_weights(model), _weights(reference), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_the_base_digest_leaves_the_head_out():
    a, b = _model(head_seed=1), _model(head_seed=2)
    start = find_head_start(a)
    assert flat_layers(a)[start].name.startswith("head_")
    assert base_weights_digest(a, start) == base_weights_digest(b, start)
    assert base_weights_digest(a, start) != base_weights_digest(_model(1), start)
    layer = a.get_layer("head_logits")
    layer.set_weights([w + 1 for w in layer.get_weights()])
    assert base_weights_digest(a, start) == base_weights_digest(b, start)


class Batches(keras.utils.PyDataset):
    def __init__(self, x, y, batch_size=16):
        super().__init__()
        self.x, self.y, self.batch_size = x, y, batch_size

    def __len__(self):
        return len(self.x) // self.batch_size

    def __getitem__(self, i):
        s = slice(i * self.batch_size, (i + 1) * self.batch_size)
        return self.x[s], self.y[s]


def _fit_stream(directory, data, model=None, **kwargs):
    model = model if model is not None else _model()
    run = {k: v for k, v in RUN.items() if k != "batch_size"}
    hist = two_phase_fit(model, data, checkpoint_dir=directory, **{**run, **kwargs})
    return model, hist


def _assert_streamed_refused(tmp_path, data, name):
    existing = tmp_path / "existing"
    existing.mkdir()
    for directory in (tmp_path / "new", existing):
        model = _model()
        before = _weights(model)
        with pytest.raises(ValueError, match=r"no `run_key` \(x: " + name) as info:
            _fit_stream(directory, data, model)
        assert_identical(before, _weights(model))
        assert getattr(model, "optimizer", None) is None  # never compiled
    assert not (tmp_path / "new").exists() and not any(existing.iterdir())
    message = str(info.value)
    assert "Received: run_key=None" in message and "Fix: pass run_key=" in message


def _assert_run_key_resumes(tmp_path, data):
    directory = tmp_path / "keyed"
    with pytest.raises(Interrupt):
        _fit_stream(directory, data, run_key="tiny-v1", callbacks=[InterruptAtEpoch(1)])
    _, hist = _fit_stream(directory, data, run_key="tiny-v1")
    assert hist.resumed_at_epoch == 1 and hist.epoch == [0, 1, 2]
    model = _model()
    before, files = _weights(model), _files(directory)
    with pytest.raises(ValueError, match=r"data\.run_key: checkpoint 'tiny-v1'"):
        _fit_stream(directory, data, model, run_key="tiny-v2")
    assert_identical(before, _weights(model))
    assert _files(directory) == files


@pytest.mark.multibackend
def test_a_pydataset_needs_a_run_key(tmp_path):
    data = Batches(*tiny_data())
    _assert_streamed_refused(tmp_path, data, "Batches")
    _assert_run_key_resumes(tmp_path, data)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="tf.data")
def test_a_tf_dataset_needs_a_run_key(tmp_path):
    import tensorflow as tf

    data = tf.data.Dataset.from_tensor_slices(tiny_data()).batch(16)
    _assert_streamed_refused(tmp_path, data, r"\w*BatchDataset")
    _assert_run_key_resumes(tmp_path, data)


def test_streamed_validation_data_needs_a_run_key_too():
    x, y = tiny_data()
    with pytest.raises(ValueError, match=r"validation_data: Batches"):
        data_identity({"x": x, "y": y, "validation_data": Batches(x, y)}, None)


@pytest.mark.parametrize("bad", ["", 3, b"key"])
def test_a_run_key_must_be_a_non_empty_string(bad):
    with pytest.raises(ValueError, match=r"`run_key`.*Received: run_key="):
        data_identity({"x": np.zeros(3)}, bad)


@pytest.mark.multibackend
def test_arrays_with_a_run_key_resume_only_with_that_key(finished):
    message = _assert_refused_and_untouched(finished, "data.run_key", run_key="k")
    assert "checkpoint None, now 'k'" in message
