"""Does Keras's crossentropy on softmax outputs stall a head on this backend?

A diagnostic, not a speed benchmark. Keras's `sparse_categorical_crossentropy`
on probabilities (a softmax output layer, `from_logits=False`) clips them to
[1e-7, 1 - 1e-7] before the log. On TensorFlow, Keras recovers the logits of a
softmax layer (`output._keras_logits`) and computes the loss from them, so the
clip never applies. On jax and torch it does: once a wrong prediction gives
its true class a probability below 1e-7, that example's gradient is exactly
zero and training cannot fix it. This is why `add_head` outputs logits and
everything in tlrecipes compiles `SparseCategoricalCrossentropy(from_logits=True)`.

This script trains the same head three times per seed, with the same seed,
data and optimizer (notebook 02's "block 3 + head (flatten)" arm: the shipped
fashion_to_mnist source base, frozen, flattened, a new Dense head at Adam
1e-2, 10 MNIST digits per class, 100 epochs of batch 32):

- `keras`: a softmax layer on the head's logits and Keras's built-in loss on
  the probabilities (`"sparse_categorical_crossentropy"`), as tlrecipes
  compiled before its heads output logits;
- `unclipped`: the same softmax output with the same crossentropy,
  -log p(true class), clipped only at the smallest normal float32 (1.2e-38)
  instead of 1e-7;
- `logits`: the head's logits with `SparseCategoricalCrossentropy(
  from_logits=True)`, as the library and the notebooks compile now.

It prints and saves train accuracy, final loss and test accuracy for each.

    KERAS_BACKEND=jax python benchmarks/check_softmax_loss_clipping.py
    KERAS_BACKEND=tensorflow python benchmarks/check_softmax_loss_clipping.py
    python benchmarks/check_softmax_loss_clipping.py --seeds 1 --epochs 2 \
        --out /tmp/clipping.json   # a smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

TINY = 1.1754944e-38  # the smallest normal float32


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--out", type=Path, default=None)
    parsed_argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(parsed_argv)

    import keras
    import numpy as np
    from keras import ops

    import tlrecipes as tl
    from tlrecipes import lab
    from tlrecipes.optimizers import make_optimizer

    def unclipped(y_true, y_pred):
        """-log p(true class), clipped at the smallest normal float32 only."""
        index = ops.cast(ops.reshape(y_true, (-1, 1)), "int32")
        p = ops.squeeze(ops.take_along_axis(y_pred, index, axis=-1), -1)
        return -ops.log(ops.clip(p, TINY, 1.0))

    from_logits = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    backend = keras.backend.backend()
    task = lab.get_task("fashion_to_mnist")
    source = lab.load_source_model("fashion_to_mnist")
    data = task.target_data()
    x_test = data.x_test.astype("float32") / 255.0
    rows = []
    for seed in range(args.seeds):
        for name, loss in [("keras", "sparse_categorical_crossentropy"),
                           ("unclipped", unclipped),
                           ("logits", from_logits)]:  # fmt: skip
            keras.utils.set_random_seed(seed)
            x, y = lab.sample_per_class(data.x_train, data.y_train, 10, seed)
            x = x.astype("float32") / 255.0
            base = lab.cut_after_block(source.copy_base(), 3)
            model = tl.add_head(
                base, 10, pooling="flatten", dropout=lab.TrainConfig().dropout
            )  # outputs logits
            if name != "logits":  # probabilities, as a softmax output layer gives
                model = keras.Sequential(
                    [
                        keras.Input(model.input_shape[1:]),
                        model,
                        keras.layers.Activation("softmax", name="softmax"),
                    ]
                )
            model.compile(
                optimizer=make_optimizer("adam", 1e-2),
                loss=loss,
                metrics=["accuracy"],
            )
            start = time.perf_counter()
            history = model.fit(x, y, epochs=args.epochs, batch_size=32, verbose=0)
            scores = model.predict(x_test, batch_size=512, verbose=0)
            row = {
                "seed": seed,
                "loss_fn": name,
                "train_accuracy": float(history.history["accuracy"][-1]),
                "final_loss": float(history.history["loss"][-1]),
                "test_accuracy": float(np.mean(scores.argmax(-1) == data.y_test)),
                "seconds": round(time.perf_counter() - start, 1),
            }
            rows.append(row)
            print(
                f"{backend:10s} seed {seed} {name:9s} train "
                f"{row['train_accuracy']:.3f} loss {row['final_loss']:.3g} "
                f"test {row['test_accuracy']:.3f}",
                flush=True,
            )
    result = {
        "backend": backend,
        "keras": keras.version(),
        "machine": f"{platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores",
        "date": time.strftime("%Y-%m-%d"),
        "command": " ".join([Path(sys.argv[0]).name, *parsed_argv]),
        "rows": rows,
    }
    out = args.out or (
        Path(__file__).parent / "results" / f"softmax_loss_clipping_{backend}.json"
    )
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
