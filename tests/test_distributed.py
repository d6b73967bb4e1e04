"""two_phase_fit under the distribution engines Keras has, on two CPU devices.

Each test runs in a fresh Python process: the number of devices is fixed when
TensorFlow or JAX starts, and a distribution set in one test would leak into
the next. The child process prints one JSON line that the test reads back.

- TensorFlow: the CPU is split into two logical devices and the model is built
  under `tf.distribute.MirroredStrategy().scope()`, as the TensorFlow guide
  does for several GPUs.
- JAX: `XLA_FLAGS=--xla_force_host_platform_device_count=2` gives two host
  devices; `keras.distribution.DataParallel` shards every batch across them.

Both check that two replicas / devices were used, that phase 1 left the frozen
base bit-identical, that the head moved in phase 1 and that phase 2 moved the
base; with phase 1 on cached base features (`cache_features=True`) and without.
"""

import inspect
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tlrecipes import two_phase_fit

ROOT = Path(__file__).resolve().parents[1]
# Phase 1 on cached base features (tlrecipes.features), when this build has it.
CACHE = [
    pytest.param(False, id="uncached"),
    pytest.param(
        True,
        id="cached",
        marks=pytest.mark.skipif(
            "cache_features" not in inspect.signature(two_phase_fit).parameters,
            reason="two_phase_fit has no cache_features in this build",
        ),
    ),
]

# Shared by both children: a tiny add_head model, data, and the checks.
COMMON = """
import inspect
import json
import numpy as np
import keras
from tlrecipes import add_head, two_phase_fit
from tlrecipes.freezing import flat_layers

CACHING = "cache_features" in inspect.signature(two_phase_fit).parameters
CACHE_KW = {"cache_features": CACHE} if CACHING else {}


def build():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", name="block1_conv")(inputs)
    x = keras.layers.BatchNormalization(name="block1_bn")(x)
    x = keras.layers.ReLU(name="block1_relu")(x)
    base = keras.Model(inputs, x, name="base")
    return add_head(base, 3)


def data():
    rng = np.random.default_rng(0)
    y = (np.arange(64) % 3).astype("int64")
    x = rng.normal(size=(64, 8, 8, 1)).astype("float32") + y[:, None, None, None]
    return x, y


def arrays(layers):
    return [np.array(keras.ops.convert_to_numpy(w)) for l in layers for w in l.weights]


def run(model, report):
    x, y = data()
    base = flat_layers(model.get_layer("base"))
    head = [model.get_layer("head_logits")]
    base0, head0 = arrays(base), arrays(head)
    h1 = two_phase_fit(model, x, y, head_epochs=2, fine_tune_epochs=0,
                       batch_size=16, verbose=0, **CACHE_KW,
                       validation_data=(x[:16], y[:16]))
    base1, head1 = arrays(base), arrays(head)
    h2 = two_phase_fit(model, x, y, head_epochs=0, fine_tune_epochs=2,
                       batch_size=16, verbose=0)
    base2 = arrays(base)
    report.update(
        base_identical_after_phase1=all(
            np.array_equal(a, b) for a, b in zip(base0, base1)),
        head_moved=all(not np.array_equal(a, b) for a, b in zip(head0, head1)),
        # base1[0] is block1_conv's kernel (the first base weight)
        conv_moved_in_phase2=not np.array_equal(base1[0], base2[0]),
        phase1_keys=sorted(h1.history),
        phase_epochs=[h1.phase_epochs, h2.phase_epochs],
        losses=[float(v) for v in h1.history["loss"] + h2.history["loss"]],
        features_cached=bool(getattr(h1, "features_cached", False)),
    )
    print("RESULT " + json.dumps(report))
"""

TF_CHILD = """
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
strategy = tf.distribute.MirroredStrategy(
    [d.name for d in tf.config.list_logical_devices("CPU")])
with strategy.scope():
    model = build()
run(model, {"replicas": strategy.num_replicas_in_sync,
            "model_strategy": type(model.distribute_strategy).__name__})
"""

JAX_CHILD = """
import jax

devices = jax.devices()
keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
model = build()
kernel = model.get_layer("head_logits").kernel.value
run(model, {"replicas": len(devices),
            "distribution": type(keras.distribution.distribution()).__name__,
            "kernel_devices": len(kernel.sharding.device_set)})
"""


def _child(backend: str, body: str, extra_env: dict, cache: bool) -> dict:
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    env.update(extra_env)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    code = f"CACHE = {cache!r}\n" + textwrap.dedent(COMMON) + textwrap.dedent(body)
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, (
        f"child failed (rc={proc.returncode}):\n{proc.stdout[-3000:]}\n"
        f"{proc.stderr[-5000:]}"
    )
    return json.loads(lines[-1][len("RESULT ") :])


def _check_training(result: dict, cache: bool) -> None:
    assert result["features_cached"] is cache
    assert result["base_identical_after_phase1"]
    assert result["head_moved"]
    assert result["conv_moved_in_phase2"]
    assert result["phase_epochs"] == [
        {"head": 2, "fine_tune": 0},
        {"head": 0, "fine_tune": 2},
    ]
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(
        result["phase1_keys"]
    )
    assert all(v == v and v < 1e3 for v in result["losses"])  # finite


@pytest.mark.parametrize("cache", CACHE)
def test_two_phase_fit_under_tf_mirrored_strategy_on_two_logical_cpus(cache):
    pytest.importorskip("tensorflow")
    result = _child("tensorflow", TF_CHILD, {}, cache)
    assert result["replicas"] == 2
    assert result["model_strategy"] == "MirroredStrategy"
    _check_training(result, cache)


@pytest.mark.parametrize("cache", CACHE)
def test_two_phase_fit_under_jax_data_parallel_on_two_host_devices(cache):
    pytest.importorskip("jax")
    flags = os.environ.get("XLA_FLAGS", "")
    result = _child(
        "jax",
        JAX_CHILD,
        {"XLA_FLAGS": f"{flags} --xla_force_host_platform_device_count=2".strip()},
        cache,
    )
    assert result["replicas"] == 2
    assert result["distribution"] == "DataParallel"
    assert result["kernel_devices"] == 2  # weights replicated on both devices
    _check_training(result, cache)
