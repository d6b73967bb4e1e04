"""Runs the PyTorch EfficientNet-Lite on fixed inputs and stores its logits.

`tests/test_applications.py` checks that tlrecipes' Keras port of
EfficientNet-Lite, built with `application("efficientnet_lite0",
weights="imagenet")`, gives the same logits as the PyTorch model the weights
were published for. This script makes that reference:

    pip install efficientnet-lite-pytorch==0.1.0   # the PyTorch model class
    python scripts/make_efficientnet_lite_reference.py
    python scripts/make_efficientnet_lite_reference.py --variant efficientnet_lite1 \
        --out /tmp/lite1.npz                        # other sizes, to compare

It needs torch and `efficientnet-lite-pytorch` (22 kB, Apache-2.0, holds the
`EfficientNet` class), which tlrecipes itself does not depend on, plus the
weights package (`pip install "tlrecipes[imagenet]"`). The `.pth` is checked
against its SHA-256 and read with `torch.load(..., weights_only=True)`, which
runs no code from the file.

The inputs are `count` RGB images of `size x size` pixels, uint8 values drawn
from `numpy.random.default_rng(seed)` (the same on every platform), scaled as
the TF Lite reference does, `(x - 127) / 128`, and fed to the PyTorch model
built for that image size (its "same" padding is computed per size). The
`.npz` holds `seed`, `shape`, `variant` and the float32 `logits`
(`count x 1000`), a few kilobytes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "tests" / "data"


def reference_images(seed: int, shape: tuple[int, int, int, int]) -> np.ndarray:
    """The test inputs: uint8 RGB values in [0, 255], as float32, NHWC."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=shape, dtype=np.uint8).astype("float32")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="efficientnet_lite0")
    parser.add_argument("--size", type=int, default=96, help="Defaults to 96.")
    parser.add_argument("--count", type=int, default=3, help="Defaults to 3.")
    parser.add_argument("--seed", type=int, default=0, help="Defaults to 0.")
    parser.add_argument(
        "--pth",
        default=None,
        help="The .pth file. Defaults to the one of the installed weights package.",
    )
    parser.add_argument(
        "--out",
        default=None,
        help="Output .npz. Defaults to tests/data/<variant>_reference.npz.",
    )
    args = parser.parse_args(argv)

    import torch
    from efficientnet_lite_pytorch import EfficientNet

    from tlrecipes.efficientnet_lite import VARIANTS, locate_weights
    from tlrecipes.safe_loading import verify_checksum

    spec = VARIANTS[args.variant]
    path = Path(args.pth) if args.pth else locate_weights(args.variant)
    verify_checksum(path, spec.sha256)
    state_dict = torch.load(path, map_location="cpu", weights_only=True)
    torch_name = args.variant.replace("_", "-")
    model = EfficientNet.from_name(torch_name, image_size=args.size)
    model.load_state_dict(state_dict, strict=True)
    model.eval()

    shape = (args.count, args.size, args.size, 3)
    images = reference_images(args.seed, shape)
    scaled = (images - 127.0) / 128.0
    with torch.no_grad():
        logits = model(torch.from_numpy(scaled.transpose(0, 3, 1, 2).copy()))
    logits = logits.numpy().astype("float32")

    out = Path(args.out) if args.out else DEFAULT_OUT / f"{args.variant}_reference.npz"
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        out,
        seed=np.int64(args.seed),
        shape=np.asarray(shape, dtype="int64"),
        variant=np.str_(args.variant),
        logits=logits,
    )
    top = logits.argmax(axis=1).tolist()
    print(f"wrote {out} ({out.stat().st_size:,} bytes): logits {logits.shape}")
    print(f"top-1 classes {top}, torch {torch.__version__}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
