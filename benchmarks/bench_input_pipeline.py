"""Is the input pipeline the bottleneck? Images/s delivered vs images/s consumed.

Each row pairs a way of feeding images with the model step that eats them, and
prints both rates side by side; a ratio (delivered / consumed) above 1 means the
loader keeps up and the model is what you wait for. Rows:

- `load_fashion_mnist`, cold (gunzip + IDX checks) and warm (per-process cache),
  against the small CNN's training step: a one-off cost per process.
- The in-memory Fashion-MNIST arrays through tf.data (shuffle, batch, cast,
  prefetch), against the same training step.
- `load_image_folder` on PNGs written from Fashion-MNIST: the first epoch
  (decode from disk) and a cached epoch.
- `to_backbone_input` (grayscale to RGB, 28 -> 96 px, MobileNetV2 scaling),
  against a frozen MobileNetV2's forward pass at 96 px (feature extraction).

Results are printed and saved as JSON (default benchmarks/results/
input_pipeline.json) with the machine they ran on. Timings only: nothing here
is asserted, and numbers from different machines do not compare.

Usage:
    python benchmarks/bench_input_pipeline.py [--quick] [--batch-size 128]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import sys
import tempfile
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run from a checkout without installing

from tlrecipes.lab import idx_files  # noqa: E402
from tlrecipes.lab.backbone_input import to_backbone_input  # noqa: E402
from tlrecipes.lab.folders import load_image_folder  # noqa: E402
from tlrecipes.lab.offline_data import load_fashion_mnist  # noqa: E402


def small_cnn(input_shape=(28, 28, 1), num_classes=10) -> keras.Model:
    """Three conv blocks with BatchNorm, the size of the project's study CNN."""
    inputs = keras.Input(input_shape)
    x = keras.layers.Rescaling(1 / 255)(inputs)
    for filters in (32, 64, 128):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = keras.layers.BatchNormalization(momentum=0.9)(x)
        x = keras.layers.ReLU()(x)
        x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(num_classes)(x)  # logits
    model = keras.Model(inputs, outputs)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def rate(n_images: int, seconds: float) -> float:
    return n_images / max(seconds, 1e-9)


def time_train_steps(model, x, y, steps: int) -> float:
    """Images/s of `train_on_batch` on one in-memory batch (no input cost)."""
    for _ in range(3):
        model.train_on_batch(x, y)
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return rate(steps * len(x), time.perf_counter() - start)


def time_forward(model, x, steps: int) -> float:
    for _ in range(2):
        model.predict_on_batch(x)
    start = time.perf_counter()
    for _ in range(steps):
        model.predict_on_batch(x)
    return rate(steps * len(x), time.perf_counter() - start)


def time_dataset(ds, max_batches: int | None = None) -> tuple[float, int]:
    """Images/s of iterating a tf.data pipeline, and how many images it gave."""
    n, start = 0, time.perf_counter()
    for i, (images, _) in enumerate(ds):
        n += int(images.shape[0])
        if max_batches is not None and i + 1 >= max_batches:
            break
    return rate(n, time.perf_counter() - start), n


def write_png_folder(root: pathlib.Path, x: np.ndarray, y: np.ndarray, names) -> None:
    for i, (image, label) in enumerate(zip(x, y, strict=True)):
        folder = root / names[label].replace("/", "-")
        folder.mkdir(parents=True, exist_ok=True)
        keras.utils.save_img(folder / f"{i}.png", image, scale=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps, ~20 s")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--out", default=str(HERE / "results" / "input_pipeline.json"))
    args = parser.parse_args()
    import tensorflow as tf

    load_at_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    batch = args.batch_size
    steps = 5 if args.quick else 20
    n_png = 500 if args.quick else 2000
    rows = []

    # --- the consumers ----------------------------------------------------
    keras.utils.set_random_seed(0)
    cnn = small_cnn()
    rng = np.random.default_rng(0)
    x_batch = rng.integers(0, 256, (batch, 28, 28, 1)).astype("float32")
    y_batch = rng.integers(0, 10, batch)
    cnn_rate = time_train_steps(cnn, x_batch, y_batch, steps)
    cnn_name = f"small CNN train step, 28x28x1, batch {batch}"

    backbone = keras.applications.MobileNetV2(
        input_shape=(96, 96, 3), include_top=False, weights=None, pooling="avg"
    )
    backbone.trainable = False
    x_rgb = rng.uniform(-1, 1, (batch, 96, 96, 3)).astype("float32")
    mobile_rate = time_forward(backbone, x_rgb, max(2, steps // 2))
    mobile_name = f"frozen MobileNetV2 forward, 96x96x3, batch {batch}"

    # --- the loaders --------------------------------------------------------
    idx_files._read_idx_cached.cache_clear()
    start = time.perf_counter()
    data = load_fashion_mnist()
    cold = time.perf_counter() - start
    start = time.perf_counter()
    load_fashion_mnist()
    warm = time.perf_counter() - start
    n_all = len(data.x_train) + len(data.x_test)
    rows.append(
        (
            "load_fashion_mnist, cold (gunzip, checks)",
            rate(n_all, cold),
            cnn_name,
            cnn_rate,
        )
    )
    rows.append(
        (
            "load_fashion_mnist, warm (process cache)",
            rate(n_all, warm),
            cnn_name,
            cnn_rate,
        )
    )

    ds = (
        tf.data.Dataset.from_tensor_slices((data.x_train, data.y_train))
        .shuffle(10_000, seed=0)
        .batch(batch)
        .map(
            lambda x, y: (tf.cast(x, tf.float32), y),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        .prefetch(tf.data.AUTOTUNE)
    )
    time_dataset(ds, 5)  # warm-up: fills the shuffle buffer
    mem_rate, _ = time_dataset(ds, 100 if args.quick else 400)
    rows.append((f"tf.data from memory, batch {batch}", mem_rate, cnn_name, cnn_rate))

    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp) / "pngs"
        write_png_folder(
            root, data.x_train[:n_png], data.y_train[:n_png], data.class_names
        )
        folder = load_image_folder(
            root,
            image_size=(28, 28),
            batch_size=batch,
            color_mode="grayscale",
            validation_split=0.0,
            test_split=0.1,
            cache=True,
        )
        first, n_seen = time_dataset(folder.train)
        cached, _ = time_dataset(folder.train)
    rows.append(
        (
            f"image folder, {n_seen} PNGs, first epoch (decode)",
            first,
            cnn_name,
            cnn_rate,
        )
    )
    rows.append(
        (f"image folder, {n_seen} PNGs, cached epoch", cached, cnn_name, cnn_rate)
    )

    n_convert = 1024 if args.quick else 4096
    start = time.perf_counter()
    to_backbone_input(data.x_train[:n_convert], (96, 96), "mobilenetv2")
    convert_rate = rate(n_convert, time.perf_counter() - start)
    rows.append(
        (
            "to_backbone_input 28->96 RGB, mobilenetv2",
            convert_rate,
            mobile_name,
            mobile_rate,
        )
    )

    # --- report ---------------------------------------------------------------
    width = max(len(r[0]) for r in rows)
    cwidth = max(len(r[2]) for r in rows)
    header = ("loader", "delivers img/s", "consumer", "consumes img/s")
    print(
        f"\n{header[0]:<{width}}  {header[1]:>14}  {header[2]:<{cwidth}}  "
        f"{header[3]:>14}  ratio"
    )
    for loader, delivered, consumer, consumed in rows:
        print(
            f"{loader:<{width}}  {delivered:>14,.0f}  {consumer:<{cwidth}}  "
            f"{consumed:>14,.0f}  {delivered / consumed:>5.1f}x"
        )
    result = {
        "benchmark": "input pipeline vs training step",
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "quick": args.quick,
        "batch_size": batch,
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "python": sys.version.split()[0],
            "keras": keras.__version__,
            "backend": keras.backend.backend(),
            "tensorflow": tf.__version__,
            "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
            "load_average_1min_at_start": load_at_start,
        },
        "fashion_mnist_source": data.source,
        "rows": [
            {
                "loader": loader,
                "delivers_images_per_s": round(delivered, 1),
                "consumer": consumer,
                "consumes_images_per_s": round(consumed, 1),
                "ratio": round(delivered / consumed, 2),
            }
            for loader, delivered, consumer, consumed in rows
        ],
    }
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nSaved {out}")


if __name__ == "__main__":
    main()
