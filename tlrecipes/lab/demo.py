"""`tlrecipes demo`: a one-minute tour of transfer learning, end to end."""

from __future__ import annotations

import platform
import time

import numpy as np

__all__ = ["run_demo"]


def run_demo(
    *,
    images_per_class: int = 10,
    source_per_class: int = 1000,
    source_epochs: int = 2,
    head_epochs: int | str = "auto",
    fine_tune_epochs: int = 50,
    seed: int = 0,
) -> dict[str, float]:
    """Transfers a small CNN from Fashion-MNIST classes 0-4 to classes 5-9.

    A one-minute tour of the whole idea: train a `small_convnet` on T-shirt,
    Trouser, Pullover, Dress and Coat; keep its convolutional base; put a
    new head on it for Sandal, Shirt, Sneaker, Bag and Ankle boot with only a
    few images per class; train the head on the frozen base, then unfreeze
    the base (BatchNorm kept frozen) and fine-tune at a low learning rate.
    Prints the test accuracy after each phase and the runtime.

    Args:
        images_per_class: Target training images per class. Defaults to 10.
        source_per_class: Source training images per class. Defaults to 1000.
        source_epochs: Epochs of source training. Defaults to 2.
        head_epochs: Epochs of the head phase, or `"auto"` (the library's
            default): enough epochs for 200 optimisation steps (an epoch of
            50 images is 2 steps). Defaults to `"auto"`.
        fine_tune_epochs: Epochs of the fine-tuning phase. Defaults to 50.
        seed: Random seed. Defaults to 0.

    Returns:
        A dict: `source_accuracy`, `head_accuracy`, `fine_tuned_accuracy`,
        `seconds`.

    Example:

    >>> metrics = run_demo(images_per_class=2, source_per_class=20,
    ...     source_epochs=1, head_epochs=1, fine_tune_epochs=1)  # doctest: +SKIP
    """
    import keras

    from tlrecipes.freezing import unfreeze
    from tlrecipes.heads import add_head
    from tlrecipes.lab.backbones import small_convnet
    from tlrecipes.lab.offline_data import load_fashion_mnist
    from tlrecipes.lab.sampling import sample_per_class, select_classes
    from tlrecipes.optimizers import make_optimizer
    from tlrecipes.training import FINE_TUNE_LR, MIN_HEAD_STEPS, two_phase_fit

    start = time.perf_counter()
    keras.utils.set_random_seed(seed)
    data = load_fashion_mnist()
    source, target = (
        select_classes(data, [0, 1, 2, 3, 4]),
        select_classes(data, [5, 6, 7, 8, 9]),
    )
    x_src, y_src = sample_per_class(source.x_train, source.y_train, source_per_class)
    x_tgt, y_tgt = sample_per_class(
        target.x_train, target.y_train, images_per_class, seed=seed
    )

    def scale(x: np.ndarray) -> np.ndarray:
        x = x.astype("float32") / 255.0
        return x[..., None] if x.ndim == 3 else x

    def compile_at(model: keras.Model, lr: float) -> None:
        model.compile(
            optimizer=make_optimizer("adam", lr),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )

    def accuracy(model: keras.Model, x: np.ndarray, y: np.ndarray) -> float:
        return float(model.evaluate(scale(x), y, verbose=0, batch_size=512)[1])

    base = small_convnet((28, 28, 1), blocks=3, width=32)
    source_model = add_head(base, 5, bn_training=True, name="source")
    unfreeze(source_model, train_bn=True)
    compile_at(source_model, 1e-3)
    print(f"1. Source: train on {', '.join(source.class_names)} ({len(x_src)} images)")
    source_model.fit(
        scale(x_src), y_src, epochs=source_epochs, batch_size=64, verbose=0
    )
    source_acc = accuracy(source_model, source.x_test, source.y_test)
    print(f"   source test accuracy {source_acc:.3f}")

    # The three helpers: a new head on the frozen base (BatchNorm in inference
    # mode), then two_phase_fit's two phases, run one at a time so the
    # accuracy after each can be printed.
    model = add_head(base, 5, name="target")
    budget = f"{head_epochs} epochs"
    if head_epochs == "auto":
        budget = f"{MIN_HEAD_STEPS} steps"
    print(
        f"2. Target: {', '.join(target.class_names)}, {images_per_class} images "
        f"per class; new head on the frozen base (add_head + two_phase_fit "
        f"phase 1, {budget})"
    )
    history = two_phase_fit(
        model,
        scale(x_tgt),
        y_tgt,
        head_epochs=head_epochs,
        fine_tune_epochs=0,
        seed=seed,
        verbose=0,
    )
    head_acc = accuracy(model, target.x_test, target.y_test)
    print(f"   frozen-base (feature extractor) test accuracy {head_acc:.3f}")
    print(
        f"3. Fine-tune: two_phase_fit phase 2 unfreezes the base (BatchNorm kept "
        f"frozen) at {FINE_TUNE_LR:g} for {fine_tune_epochs} epochs"
    )
    history = two_phase_fit(
        model,
        scale(x_tgt),
        y_tgt,
        head_epochs=0,
        fine_tune_epochs=fine_tune_epochs,
        seed=seed,
        verbose=0,
    )
    assert history.phase_lrs["fine_tune"] == FINE_TUNE_LR
    tuned_acc = accuracy(model, target.x_test, target.y_test)
    seconds = time.perf_counter() - start
    print(f"   fine-tuned test accuracy {tuned_acc:.3f}")
    print(
        f"Runtime {seconds:.1f} s ({keras.backend.backend()} backend, "
        f"{platform.machine()}). Test sets: {len(source.y_test)} and "
        f"{len(target.y_test)} images. Measure it properly: tlrecipes study"
    )
    return {
        "source_accuracy": source_acc,
        "head_accuracy": head_acc,
        "fine_tuned_accuracy": tuned_acc,
        "seconds": round(seconds, 2),
    }
