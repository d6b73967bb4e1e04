"""Real-backbone transfer: ImageNet EfficientNet-Lite0 to Fashion-MNIST and MNIST.

The lab's other tasks transfer from a small CNN the lab trains itself; the
tasks `imagenet_to_fashion` and `imagenet_to_mnist` transfer from a real
ImageNet-1k network, `tl.application("efficientnet_lite0")`, read offline
from its pinned package. Their 28x28 grayscale targets are resized to
`RESOLUTION` (96) pixels and copied to three channels, in [0, 255], the
range the network takes.

What is measured, and how (the protocol of `tlrecipes.lab.comparison`):

- `cached_features`: the frozen base's global-average-pooled 1280-d features,
  computed once per image set and stored on disk under a key made of the
  images' fingerprint, the backbone, the fingerprint of its weights and the
  resolution; repeated runs and seeds cost only the head.
- `linear_probe`: a multinomial logistic regression on the (standardised)
  features. Its L2 strength is chosen on the validation split from `C_GRID`;
  the test split is read once, by the chosen model.
- `linear_probe_similarity`: how much ImageNet features help a target, as a
  number: the probe on the ImageNet weights against the same probe on a
  random-init twin of the backbone (`weights=None`, initialised by the seed),
  paired by seed through `compare`.
- `calibrate_batchnorm`: the random-init twin's BatchNormalization moving
  statistics, estimated on target training images before its features are
  read. Without it the twin runs on the initial statistics (mean 0,
  variance 1) and its pooled features vanish through the network (about
  1e-12 for EfficientNet-Lite0), so its probe sits at chance: a degenerate
  network, not "random convolutional features".
- `tlrecipes.lab.real_backbone_arms.run_arms`: the feature-extractor arm
  (the probe: a linear head on frozen cached features) against the
  from-scratch twin (the same network from random weights, all layers
  trained), per size. Every arm gets the same
  tuning budget: `len(C_GRID)` configurations, chosen on validation; the
  scratch twin's score is its best-validation epoch's.

>>> from tlrecipes.lab.real_backbone import REAL_BACKBONE_TASKS, RESOLUTION
>>> REAL_BACKBONE_TASKS, RESOLUTION
(('imagenet_to_fashion', 'imagenet_to_mnist'), 96)
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tlrecipes.lab.batchnorm_calibration import calibrate_batchnorm
from tlrecipes.lab.comparison import check_seeds, compare
from tlrecipes.lab.fingerprints import fingerprint, stable_hash, weights_fingerprint
from tlrecipes.lab.record import device_description
from tlrecipes.lab.sampling import sample_per_class
from tlrecipes.lab.tasks import Task, get_task

__all__ = [
    "C_GRID",
    "CALIBRATION_IMAGES",
    "LR_GRID",
    "REAL_BACKBONE_TASKS",
    "RESOLUTION",
    "ProbeResult",
    "cached_features",
    "calibrate_batchnorm",
    "feature_cache_dir",
    "linear_probe",
    "linear_probe_similarity",
    "check_seed_list",
    "probe_on_task",
    "protocol_settings",
    "task_splits",
    "to_backbone_input",
]

#: The tasks whose source is a real ImageNet backbone.
REAL_BACKBONE_TASKS = ("imagenet_to_fashion", "imagenet_to_mnist")
#: Side of the square images fed to the backbone (pixels).
RESOLUTION = 96
#: Inverse L2 strengths the probe chooses from on validation.
C_GRID = (0.01, 0.1, 1.0, 10.0)
#: Learning rates the from-scratch twin chooses from on validation (Adam).
LR_GRID = (3e-4, 1e-3, 3e-3, 1e-2)
#: At most this many target training images estimate the random-init twin's
#: BatchNormalization statistics (one batch, `calibrate_batchnorm`).
CALIBRATION_IMAGES = 256
#: Environment variable naming the feature cache folder.
CACHE_ENV = "TLRECIPES_FEATURE_CACHE"


def feature_cache_dir() -> Path:
    """The folder of cached backbone features.

    Returns:
        `$TLRECIPES_FEATURE_CACHE` when set, else
        `~/.cache/tlrecipes/features`.
    """
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "tlrecipes" / "features"


def _check_size(size: object) -> int:
    if isinstance(size, bool) or not isinstance(size, int) or size < 32:
        raise ValueError(
            "Received an invalid value for `size`, expected an integer of at "
            f"least 32 (pixels). Received: size={size!r}. Fix: size=96."
        )
    return size


def to_backbone_input(images: np.ndarray, size: int = RESOLUTION) -> np.ndarray:
    """Resizes images to `size` x `size` and copies grayscale to RGB, in [0, 255].

    Args:
        images: `(n, height, width, 1 or 3)` or `(n, height, width)` images
            with values in [0, 255] (uint8 or float).
        size: Output side in pixels, at least 32. Defaults to `RESOLUTION`.

    Returns:
        float32 `(n, size, size, 3)`, values in [0, 255].

    Raises:
        ValueError: For images of another rank or channel count, or values
            outside [0, 255] (e.g. images already standardised).

    Example:

    >>> import numpy as np
    >>> to_backbone_input(np.zeros((2, 28, 28, 1), "uint8"), 32).shape
    (2, 32, 32, 3)
    """
    size = _check_size(size)
    x = np.asarray(images)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise ValueError(
            "Received an invalid value for `images`, expected (n, height, width, "
            f"1 or 3). Received: shape {x.shape}. Fix: pass a batch of images."
        )
    if x.size and (float(x.min()) < 0 or float(x.max()) > 255):
        raise ValueError(
            "Received `images` outside [0, 255], expected raw pixel values. "
            f"Received: min {float(x.min())}, max {float(x.max())}. Fix: pass "
            "the images before any rescaling; the backbone rescales inside."
        )
    out = np.empty((len(x), size, size, 3), dtype=np.float32)
    import keras

    for start in range(0, len(x), 512):
        chunk = x[start : start + 512].astype(np.float32)
        if chunk.shape[1:3] != (size, size):
            chunk = np.asarray(
                keras.ops.image.resize(chunk, (size, size), interpolation="bilinear")
            )
        out[start : start + len(chunk)] = np.clip(chunk, 0.0, 255.0)
    return out


@functools.lru_cache(maxsize=16)
def _feature_model(backbone: str, weights: str | None, size: int, seed: int):
    """The model, and the fingerprint of its weights as built (before calibration)."""
    import keras

    from tlrecipes.applications import application

    if weights is None:
        keras.utils.set_random_seed(seed)
    model = application(
        backbone, input_shape=(size, size, 3), weights=weights, pooling="avg"
    )
    return model, weights_fingerprint(model), {"calibration": None}


def _calibration_subset(images: np.ndarray) -> np.ndarray:
    """At most `CALIBRATION_IMAGES` of `images`, drawn without replacement (seed 0)."""
    if len(images) <= CALIBRATION_IMAGES:
        return images
    rng = np.random.default_rng(0)
    return images[np.sort(rng.choice(len(images), CALIBRATION_IMAGES, replace=False))]


def _check_weights(weights: object) -> str | None:
    if weights not in ("imagenet", None):
        raise ValueError(
            "Received an invalid value for `weights`, expected 'imagenet' or None "
            f"(random initialisation). Received: weights={weights!r}."
        )
    return weights  # type: ignore[return-value]


def cached_features(
    images: np.ndarray,
    *,
    backbone: str = "efficientnet_lite0",
    weights: str | None = "imagenet",
    size: int = RESOLUTION,
    seed: int = 0,
    calibration_images: np.ndarray | None = None,
    cache_dir: str | os.PathLike | None = None,
    batch_size: int = 64,
) -> np.ndarray:
    """The frozen backbone's pooled features of `images`, computed once and cached.

    The file is keyed by the images' fingerprint (shape, dtype, bytes), the
    backbone's name, a fingerprint of its weights, the resolution and (for
    the random-init twin) the calibration images' fingerprint, so a second
    call on the same images reads the file instead of running the network,
    and any change of input or weights misses the cache. Features are
    computed in inference mode (BatchNormalization on its moving
    statistics), exactly as a frozen base runs inside a model.

    The random-init twin (`weights=None`) first gets its BatchNormalization
    statistics from `calibration_images` (`calibrate_batchnorm` on at most
    `CALIBRATION_IMAGES` of them): pass the target's training images, the
    same for the training, validation and test features of one run.

    Args:
        images: `(n, height, width, 1 or 3)` images in [0, 255]; resized and
            copied to RGB by `to_backbone_input`.
        backbone: A `tl.application` name. Defaults to `"efficientnet_lite0"`.
        weights: `"imagenet"`, or None for the random-init twin drawn from
            `seed`. Defaults to `"imagenet"`.
        size: Input side in pixels. Defaults to `RESOLUTION`.
        seed: Seed of the random initialisation (ignored for ImageNet
            weights). Defaults to 0.
        calibration_images: Target training images (same format as
            `images`) that estimate the random-init twin's BatchNormalization
            statistics. Required with `weights=None`, refused with ImageNet
            weights (their statistics are ImageNet's). Defaults to None.
        cache_dir: Folder of the cache. Defaults to `feature_cache_dir()`.
        batch_size: Images per inference batch. Defaults to 64.

    Returns:
        float32 `(n, features)`: 1280 per image for EfficientNet-Lite0.

    Raises:
        ValueError: For `weights` other than "imagenet" / None, a missing
            (or unexpected) `calibration_images`, or invalid images or size.

    Example:

    >>> import numpy as np, tempfile
    >>> x = np.random.default_rng(0).uniform(0, 255, (4, 28, 28, 1))
    >>> cached_features(x, weights=None, size=32, calibration_images=x,
    ...                 cache_dir=tempfile.mkdtemp()).shape
    (4, 1280)
    """
    weights = _check_weights(weights)
    size = _check_size(size)
    calibration = _check_calibration(weights, calibration_images)
    model, weights_fp, state = _feature_model(backbone, weights, size, int(seed))
    key = stable_hash(
        {
            "images": fingerprint(np.asarray(images)),
            "backbone": backbone,
            "weights": weights_fp,
            "size": size,
            "pooling": "avg",
            "batchnorm_calibration": calibration and calibration[0],
        },
        length=20,
    )
    folder = Path(cache_dir) if cache_dir is not None else feature_cache_dir()
    path = folder / f"{backbone}-{size}px-{key}.npy"
    if path.exists():
        return np.load(path)
    if calibration is not None and state["calibration"] != calibration[0]:
        calibrate_batchnorm(model, to_backbone_input(calibration[1], size))
        state["calibration"] = calibration[0]
    features = np.concatenate(
        [
            np.asarray(model(to_backbone_input(images[i : i + batch_size], size)))
            for i in range(0, len(images), batch_size)
        ]
        or [np.zeros((0, model.output_shape[-1]), np.float32)]
    ).astype(np.float32)
    folder.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp.npy")
    np.save(partial, features)
    os.replace(partial, path)
    return features


def _check_calibration(
    weights: str | None, images: np.ndarray | None
) -> tuple[str, np.ndarray] | None:
    """(fingerprint, subset) of the calibration images; None for ImageNet weights."""
    if weights is not None:
        if images is not None:
            raise ValueError(
                "Received `calibration_images` with weights='imagenet', expected "
                "None: the ImageNet weights keep their own BatchNormalization "
                "statistics. Fix: drop calibration_images."
            )
        return None
    if images is None or len(images) < 2:
        raise ValueError(
            "Received weights=None without `calibration_images` (or fewer than "
            "2), expected target training images: a random-init network's "
            "BatchNormalization statistics must be estimated before its features "
            "mean anything. Fix: calibration_images=x_train."
        )
    subset = _calibration_subset(np.asarray(images))
    return fingerprint(subset), subset


@dataclass(frozen=True)
class ProbeResult:
    """A probe's choice and its scores.

    Attributes:
        choice: The configuration chosen on validation (`{"C": ...}` for the
            probe, `{"learning_rate": ..., "epoch": ...}` for the scratch twin).
        val_accuracy: Its validation accuracy.
        test_accuracy: Its test accuracy, read once.
        seconds: Wall time of the choice and the final evaluation.
    """

    choice: dict
    val_accuracy: float
    test_accuracy: float
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "choice": dict(self.choice),
            "val_accuracy": self.val_accuracy,
            "test_accuracy": self.test_accuracy,
            "seconds": self.seconds,
        }


def linear_probe(
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    *,
    c_grid: Sequence[float] = C_GRID,
    seed: int = 0,
) -> ProbeResult:
    """A linear classifier on frozen features, its L2 strength chosen on validation.

    Multinomial logistic regression (scikit-learn, L-BFGS) on features
    standardised with the training split's mean and deviation, as linear
    probes are usually fitted. One model per `C` in `c_grid` is trained on
    `train`; the best on `val` (ties to the strongest regularisation) is
    scored once on `test`. The fits run on one BLAS/OpenMP thread
    (`threadpoolctl`): they are small, and extra threads only contend.

    Args:
        train: `(features, labels)` to fit on.
        val: `(features, labels)` to choose `C` on.
        test: `(features, labels)` to score the chosen model on.
        c_grid: Inverse L2 strengths to try. Defaults to `C_GRID`.
        seed: Seed of the solver. Defaults to 0.

    Returns:
        A `ProbeResult` with `choice={"C": ...}`.

    Raises:
        ValueError: For an empty `c_grid`, mismatched feature and label
            counts, or a training split with a single class.

    Example:

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = np.arange(40) % 2
    >>> x = rng.normal(size=(40, 3)) + 3 * y[:, None]
    >>> linear_probe((x, y), (x, y), (x, y)).test_accuracy
    1.0
    """
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    start = time.perf_counter()
    if not len(c_grid):
        raise ValueError(
            "Received an empty `c_grid`, expected at least one inverse L2 "
            "strength. Fix: c_grid=(0.01, 0.1, 1.0, 10.0)."
        )
    for name, (x, y) in (("train", train), ("val", val), ("test", test)):
        if len(x) != len(y):
            raise ValueError(
                f"Received `{name}` with {len(x)} feature rows and {len(y)} "
                "labels, expected as many of each. Fix: pass (features, labels) "
                "of the same images."
            )
    if len(np.unique(train[1])) < 2:
        raise ValueError(
            "Received `train` labels of a single class, expected at least 2. "
            "Fix: sample every class."
        )
    mean = train[0].mean(axis=0)
    scale = train[0].std(axis=0) + 1e-6

    def standard(x):
        return (np.asarray(x, np.float64) - mean) / scale

    best = None
    # One BLAS/OpenMP thread: these fits are tiny, and on a busy 2-core CPU
    # two spinning threads made each one about 60 times slower (7.6 s vs
    # 0.13 s for 100 x 1280 features, measured 2026-12-07).
    with threadpool_limits(limits=1):
        for c in sorted(c_grid):
            model = LogisticRegression(C=float(c), max_iter=2000, random_state=seed)
            model.fit(standard(train[0]), train[1])
            score = float(model.score(standard(val[0]), val[1]))
            if best is None or score > best[0]:
                best = (score, float(c), model)
        score, c, model = best
        test_accuracy = float(model.score(standard(test[0]), test[1]))
    return ProbeResult({"C": c}, score, test_accuracy, time.perf_counter() - start)


def task_splits(
    task: str | Task,
    n_per_class: int,
    seed: int,
    *,
    val_per_class: int = 20,
    test_per_class: int | None = None,
):
    """Train / validation / test images of a real-backbone task for one seed.

    Validation images come from the training split (the same for every
    size with this seed); the test split is the official one, or a fixed
    (seed 0) sample of `test_per_class` per class of it, the same for every
    seed and arm.

    Args:
        task: A task name from `REAL_BACKBONE_TASKS`, or a `Task`.
        n_per_class: Training images per class.
        seed: Seed of the validation and training draws.
        val_per_class: Validation images per class. Defaults to 20.
        test_per_class: Test images per class, or None for the full test
            split (also used when a class of the test split holds no more
            than `test_per_class`: offline MNIST has 100 per class).
            Defaults to None.

    Returns:
        `((x_train, y_train), (x_val, y_val), (x_test, y_test))`, images at
        their stored size (`to_backbone_input` resizes them).
    """
    task = get_task(task) if isinstance(task, str) else task
    data = task.target_subset(n_per_class, seed=seed, val_per_class=val_per_class)
    x_test, y_test = data.x_test, data.y_test
    if test_per_class is not None:
        smallest = int(np.bincount(y_test).min())
        if test_per_class < smallest:  # else the whole split: all there is
            x_test, y_test = sample_per_class(x_test, y_test, test_per_class, seed=0)
    return (data.x_train, data.y_train), (data.x_val, data.y_val), (x_test, y_test)


def probe_on_task(
    task: Task, n: int, seed: int, weights: str | None, settings: dict[str, Any]
) -> ProbeResult:
    """`linear_probe` on one seed's splits of `task` (`task_splits`), cached features.

    With `weights=None` (the random-init twin) the network's
    BatchNormalization statistics are first estimated on this seed's
    training images (`calibrate_batchnorm`).

    `settings` is `protocol_settings(...)`: size, val_per_class,
    test_per_class, cache_dir and c_grid.
    """
    train, val, test = task_splits(
        task,
        n,
        seed,
        val_per_class=settings["val_per_class"],
        test_per_class=settings["test_per_class"],
    )

    def feats(x):
        return cached_features(
            x,
            weights=weights,
            size=settings["size"],
            seed=seed,
            calibration_images=None if weights else train[0],
            cache_dir=settings["cache_dir"],
        )

    return linear_probe(
        (feats(train[0]), train[1]),
        (feats(val[0]), val[1]),
        (feats(test[0]), test[1]),
        c_grid=settings["c_grid"],
        seed=seed,
    )


def check_seed_list(seeds: Sequence[int]) -> list[int]:
    """The seeds as ints; refuses fewer than 2 distinct ones."""
    seeds = [int(s) for s in seeds]
    if len(set(seeds)) < 2:
        raise ValueError(
            "Received an invalid value for `seeds`, expected at least 2 distinct "
            f"seeds (5 on a CPU) for a paired comparison. Received: seeds={seeds}. "
            "Fix: seeds=range(5)."
        )
    return seeds


def protocol_settings(**kwargs: Any) -> dict[str, Any]:
    """The protocol's settings: defaults updated with the non-None `kwargs`."""
    settings = {
        "size": RESOLUTION,
        "val_per_class": 20,
        "test_per_class": None,
        "cache_dir": None,
        "c_grid": C_GRID,
        "lr_grid": LR_GRID,
        "epochs": 10,
        "batch_size": 32,
    }
    settings.update({k: v for k, v in kwargs.items() if v is not None})
    settings["size"] = _check_size(settings["size"])
    return settings


def linear_probe_similarity(
    task: str | Task,
    *,
    n_per_class: int = 100,
    seeds: Sequence[int] = range(5),
    size: int = RESOLUTION,
    val_per_class: int = 20,
    test_per_class: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    c_grid: Sequence[float] = C_GRID,
) -> dict[str, Any]:
    """How much ImageNet features help a target: linear probe, ImageNet vs random.

    The same `linear_probe` (same splits, same `c_grid`) runs on the frozen
    ImageNet features and on the features of a random-init twin of the
    backbone (`weights=None`, drawn from each seed, its BatchNormalization
    statistics estimated on the seed's training images by
    `calibrate_batchnorm`); the difference, paired
    by seed, is the measured similarity of the target to ImageNet as far as
    the backbone's features go.

    Args:
        task: A name from `REAL_BACKBONE_TASKS`, or a `Task` with a backbone.
        n_per_class: Training images per class. Defaults to 100.
        seeds: Seeds (at least 5 on a CPU; fewer warns). Defaults to 0-4.
        size: Input side in pixels. Defaults to `RESOLUTION`.
        val_per_class: Validation images per class. Defaults to 20.
        test_per_class: Test images per class, or None for the full test
            split (also used when a class of the test split holds no more
            than `test_per_class`: offline MNIST has 100 per class).
            Defaults to None.
        cache_dir: Feature cache folder. Defaults to `feature_cache_dir()`.
        c_grid: The probe's inverse L2 strengths. Defaults to `C_GRID`.

    Returns:
        `{"task", "n_per_class", "imagenet": {seed: ProbeResult dict},
        "random_init": {...}, "comparison": Comparison.to_dict()}`.

    Raises:
        ValueError: For fewer than 2 seeds (the comparison needs pairs), or
            an invalid size.
    """
    task = get_task(task) if isinstance(task, str) else task
    seeds = check_seed_list(seeds)
    settings = protocol_settings(
        size=size,
        val_per_class=val_per_class,
        test_per_class=test_per_class,
        cache_dir=cache_dir,
        c_grid=tuple(c_grid),
    )
    runs = {
        arm: {s: probe_on_task(task, n_per_class, s, weights, settings) for s in seeds}
        for arm, weights in (("imagenet", "imagenet"), ("random_init", None))
    }
    comparison = compare(
        {s: r.test_accuracy for s, r in runs["imagenet"].items()},
        {s: r.test_accuracy for s, r in runs["random_init"].items()},
        name_a="imagenet_probe",
        name_b="random_init_probe",
    )
    check_seeds(comparison, device_description())
    return {
        "task": task.name,
        "n_per_class": n_per_class,
        **{arm: {s: r.to_dict() for s, r in res.items()} for arm, res in runs.items()},
        "comparison": comparison.to_dict(),
    }
