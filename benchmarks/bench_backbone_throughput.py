"""Fine-tuning throughput of a standard backbone on each Keras backend (issue 8).

Trains `keras.applications.ResNet50(weights=None)` (all layers trainable, SGD
with momentum, sparse cross-entropy, synthetic images at 224x224) with
`model.fit` on every backend that imports, each in its own process, and reports
images per second measured after a warm-up epoch (which holds the
compilation). On a CUDA GPU the same run also trains a plain PyTorch loop of
the same architecture (torchvision's `resnet50` when installed, else the
bottleneck ResNet-50 defined below, 25,557,032 parameters like torchvision's;
Keras's ResNet50 has 25,636,712 because its convolutions carry biases),
channels-last, with bf16 autocast (AMP): the reference for what the card does
without Keras. Achieved TFLOP/s counts
3x the forward FLOPs of one image (forward + backward, the usual estimate),
with the forward FLOPs summed over the Keras model's convolutions and dense
layers, and is set against the card's dense bf16 peak from its datasheet.

    python benchmarks/bench_backbone_throughput.py --out DIR      # full: GPU
    python benchmarks/bench_backbone_throughput.py --quick        # CPU smoke

Full mode (GPU): batch 128, 30 timed steps after a 10-step warm-up, float32
and mixed_bfloat16 on each backend, plus the PyTorch AMP loop. On an H100 it
takes a few minutes. Quick mode: 64x64 images, batch 4, 3 steps, float32 only.
Writes `backbone_throughput.json` and `backbone_throughput.md` to `--out`.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

#: Dense (no sparsity) bf16 tensor-core peaks, TFLOP/s, from NVIDIA datasheets.
PEAK_BF16_TFLOPS = {
    "H100 SXM": 989.4,
    "H100 NVL": 835.5,
    "H100 PCIe": 756.5,
    "H100": 989.4,  # the SXM part when the name does not say
    "H200": 989.4,
    "A100": 312.0,
    "L40S": 362.05,
    "L4": 121.0,
    "A10": 125.0,
    "V100": 125.0,  # fp16 tensor cores; V100 has no bf16
    "T4": 65.0,  # fp16
}


def _gpu() -> dict | None:
    """Name and bf16 peak of the first NVIDIA GPU, or None."""
    try:
        name = (
            subprocess.run(
                ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            )
            .stdout.splitlines()[0]
            .strip()
        )
    except (OSError, subprocess.SubprocessError, IndexError):
        return None
    peak = None
    for key in sorted(PEAK_BF16_TFLOPS, key=len, reverse=True):
        if key.replace(" ", "").lower() in name.replace(" ", "").lower():
            peak = PEAK_BF16_TFLOPS[key]
            break
    return {"name": name, "peak_bf16_tflops": peak}


def forward_flops(model) -> float:
    """FLOPs (2 per multiply-add) of one image through convolutions and Dense."""
    import keras

    total = 0.0
    for layer in model.layers:
        out = layer.output.shape
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            k = layer.kernel.shape  # (kh, kw, cin, multiplier)
            total += 2.0 * k[0] * k[1] * out[1] * out[2] * out[3]
        elif isinstance(layer, keras.layers.Conv2D):
            k = layer.kernel.shape  # (kh, kw, cin / groups, cout)
            total += 2.0 * k[0] * k[1] * k[2] * k[3] * out[1] * out[2]
        elif isinstance(layer, keras.layers.Dense):
            k = layer.kernel.shape
            total += 2.0 * k[0] * k[1]
    return total


class _Timer:
    """Wall time of each epoch (epoch 0 holds the compilation)."""

    def __init__(self) -> None:
        import keras

        class Callback(keras.callbacks.Callback):
            def on_epoch_begin(cb, epoch, logs=None):
                cb.start = time.perf_counter()

            def on_epoch_end(cb, epoch, logs=None):
                float(logs["loss"])  # waits for the device
                self.times.append(time.perf_counter() - cb.start)

        self.times: list[float] = []
        self.callback = Callback()


def keras_child(args: argparse.Namespace) -> dict:
    """One backend, one precision: images/s of `model.fit` on ResNet50."""
    import keras
    import numpy as np

    if args.precision != "float32":
        keras.mixed_precision.set_global_policy(args.precision)
    keras.utils.set_random_seed(0)
    size, batch = args.image_size, args.batch_size
    model = keras.applications.ResNet50(
        weights=None,
        input_shape=(size, size, 3),
        classes=1000,
        classifier_activation=None,  # logits, as tlrecipes heads output
    )
    model.compile(
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    rng = np.random.default_rng(0)
    xb = rng.random((batch, size, size, 3), dtype=np.float32)
    yb = rng.integers(0, 1000, batch)

    class Batches(keras.utils.PyDataset):  # one batch in memory, fed `steps` times
        def __init__(self, steps: int) -> None:
            super().__init__()
            self.steps = steps

        def __len__(self) -> int:
            return self.steps

        def __getitem__(self, i: int):
            return xb, yb

    timer = _Timer()
    model.fit(Batches(args.warmup), epochs=1, verbose=0, callbacks=[timer.callback])
    model.fit(Batches(args.steps), epochs=1, verbose=0, callbacks=[timer.callback])
    seconds = timer.times[-1]
    flops = forward_flops(model)
    return {
        "engine": f"keras/{keras.backend.backend()}",
        "precision": args.precision,
        "images_per_s": args.steps * batch / seconds,
        "timed_seconds": seconds,
        "warmup_seconds": timer.times[0],
        "forward_gflops_per_image": flops / 1e9,
        "tflops": 3 * flops * args.steps * batch / seconds / 1e12,
    }


def _torch_resnet50(torch):
    """ResNet-50 v1.5 (torchvision's layout) for when torchvision is missing."""
    nn = torch.nn

    class Bottleneck(nn.Module):
        def __init__(self, cin: int, width: int, stride: int) -> None:
            super().__init__()
            cout = width * 4
            self.body = nn.Sequential(
                nn.Conv2d(cin, width, 1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.Conv2d(width, width, 3, stride, 1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.Conv2d(width, cout, 1, bias=False),
                nn.BatchNorm2d(cout),
            )
            self.skip = (
                nn.Identity()
                if stride == 1 and cin == cout
                else nn.Sequential(
                    nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
                )
            )

        def forward(self, x):
            return torch.relu(self.body(x) + self.skip(x))

    layers = [
        nn.Conv2d(3, 64, 7, 2, 3, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2, 1),
    ]
    cin = 64
    for width, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
        for i in range(blocks):
            layers.append(Bottleneck(cin, width, stride if i == 0 else 1))
            cin = width * 4
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2048, 1000)]
    return nn.Sequential(*layers)


def torch_child(args: argparse.Namespace) -> dict:
    """The plain PyTorch AMP loop: images/s and TFLOP/s of the same network."""
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    try:
        import torchvision

        model, source = torchvision.models.resnet50(), "torchvision"
    except ImportError:
        model, source = _torch_resnet50(torch), "bench_backbone_throughput"
    model = model.to(device, memory_format=torch.channels_last)
    if args.torch_compile:
        model = torch.compile(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    size, batch = args.image_size, args.batch_size
    x = torch.rand(batch, 3, size, size, device=device).to(
        memory_format=torch.channels_last
    )
    y = torch.randint(0, 1000, (batch,), device=device)
    amp = args.precision != "float32"

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=torch.bfloat16, enabled=amp):
            loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    start = time.perf_counter()
    for _ in range(args.warmup):
        step()
    sync()
    warmup = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    sync()
    seconds = time.perf_counter() - start
    return {
        "engine": "torch-loop" + ("+compile" if args.torch_compile else ""),
        "precision": "bf16_autocast" if amp else "float32",
        "model_source": source,
        "images_per_s": args.steps * batch / seconds,
        "timed_seconds": seconds,
        "warmup_seconds": warmup,
    }


def _child_run(argv: list[str], env: dict, timeout: int) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        return {"error": (proc.stderr or proc.stdout)[-1500:]}
    return json.loads(lines[-1][len("RESULT ") :])


def _markdown(report: dict) -> str:
    gpu = report["gpu"]
    peak = gpu["peak_bf16_tflops"] if gpu else None
    rows = [
        f"# Backbone fine-tuning throughput: {report['model']} "
        f"{report['image_size']}x{report['image_size']}, batch {report['batch_size']}",
        "",
        f"Machine: {report['machine']}. {report['steps']} timed steps after "
        f"{report['warmup']} warm-up steps. TFLOP/s = 3 x forward FLOPs "
        f"({report.get('forward_gflops_per_image', 0):.2f} GFLOP/image) x images/s."
        + (f" Peak: {peak} dense bf16 TFLOP/s ({gpu['name']})." if peak else ""),
        *(["", f"Note: {report['note']}", ""] if report.get("note") else [""]),
        "| engine | precision | images/s | TFLOP/s | % of bf16 peak |",
        "|---|---|---|---|---|",
    ]
    for r in report["runs"]:
        if "error" in r:
            rows.append(f"| {r['engine']} | {r['precision']} | error | | |")
            continue
        tf = r.get("tflops")
        pct = f"{100 * tf / peak:.1f}" if tf and peak else ""
        rows.append(
            f"| {r['engine']} | {r['precision']} | {r['images_per_s']:.1f} | "
            f"{'' if tf is None else f'{tf:.3g}'} | {pct} |"
        )
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--quick", action="store_true", help="CPU smoke run")
    parser.add_argument("--backends", default=None, help="e.g. jax,torch")
    parser.add_argument("--precisions", default=None, help="float32,mixed_bfloat16")
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--note", default=None, help="saved with the numbers")
    parser.add_argument("--no-torch-loop", action="store_true")
    parser.add_argument("--torch-compile", action="store_true")
    parser.add_argument("--child", choices=["keras", "torch"], help=argparse.SUPPRESS)
    parser.add_argument("--precision", default="float32", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    gpu = None if args.child else _gpu()
    quick = args.quick or (gpu is None and not args.child and args.steps is None)
    args.image_size = args.image_size or (64 if quick else 224)
    args.batch_size = args.batch_size or (4 if quick else 128)
    args.steps = args.steps or (3 if quick else 30)
    args.warmup = args.warmup or (1 if quick else 10)
    if args.child:
        result = (keras_child if args.child == "keras" else torch_child)(args)
        print("RESULT " + json.dumps(result))
        return 0

    installed = [
        b
        for b, module in (
            ("tensorflow", "tensorflow"),
            ("jax", "jax"),
            ("torch", "torch"),
        )
        if importlib.util.find_spec(module)
    ]
    backends = args.backends.split(",") if args.backends else installed
    precisions = (
        args.precisions.split(",")
        if args.precisions
        else (["float32", "mixed_bfloat16"] if gpu else ["float32"])
    )
    shape = ["--image-size", str(args.image_size), "--batch-size", str(args.batch_size)]
    shape += ["--steps", str(args.steps), "--warmup", str(args.warmup)]
    runs = []
    for precision in precisions:
        for backend in backends:
            env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
            result = _child_run(
                ["--child", "keras", "--precision", precision, *shape], env, 1800
            )
            result.setdefault("engine", f"keras/{backend}")
            result.setdefault("precision", precision)
            print(json.dumps(result)[:300], flush=True)
            runs.append(result)
        if gpu and not args.no_torch_loop and importlib.util.find_spec("torch"):
            extra = ["--torch-compile"] if args.torch_compile else []
            result = _child_run(
                ["--child", "torch", "--precision", precision, *shape, *extra],
                dict(os.environ),
                1800,
            )
            result.setdefault("engine", "torch-loop")
            result.setdefault("precision", precision)
            print(json.dumps(result)[:300], flush=True)
            runs.append(result)
    flops = [
        r["forward_gflops_per_image"] for r in runs if "forward_gflops_per_image" in r
    ]
    for r in runs:  # the torch loop trains the same network: same FLOPs per image
        if "images_per_s" in r and "tflops" not in r and flops:
            r["tflops"] = 3 * flops[0] * 1e9 * r["images_per_s"] / 1e12
    peak = gpu["peak_bf16_tflops"] if gpu else None
    for r in runs:
        if peak and r.get("tflops"):
            r["fraction_of_bf16_peak"] = r["tflops"] / peak
    report = {
        "benchmark": "backbone fine-tuning throughput (issue 8)",
        "model": "ResNet50 (weights=None, all layers trainable)",
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "steps": args.steps,
        "warmup": args.warmup,
        "quick": quick,
        "gpu": gpu,
        "machine": gpu["name"] if gpu else f"{os.cpu_count()}-core CPU, no GPU",
        "platform": platform.platform(),
        "python": platform.python_version(),
        "forward_gflops_per_image": flops[0] if flops else None,
        "runs": runs,
        "note": args.note,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = "backbone_throughput" + ("_quick" if quick else "")
    (out / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / f"{name}.md").write_text(_markdown(report))
    print(_markdown(report))
    print(f"saved {out / name}.json and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
