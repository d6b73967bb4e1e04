"""Real-backbone report: ImageNet EfficientNet-Lite0 to Fashion-MNIST and MNIST.

For each real-backbone task (`tlrecipes.lab.real_backbone.REAL_BACKBONE_TASKS`)
it measures, with the lab's protocol (choices on validation, test read once per
final model, arms paired by seed through `compare`):

- the similarity of the target to ImageNet: the linear probe on frozen
  ImageNet features against the same probe on a random-init twin whose
  BatchNormalization statistics are estimated on the target's training
  images (`linear_probe_similarity`, `calibrate_batchnorm`), at the largest
  size;
- the arms per size (`run_arms`): feature extractor (linear head on frozen
  cached features), random-init probe and, unless `--no-scratch`, the
  from-scratch twin of the backbone.

It writes `REPORT.md` and `results.json` (with provenance: commit, backend,
device, versions, settings) to `--out`; the work is
`tlrecipes.lab.real_backbone_report`, which `tlrecipes study --real-backbone`
also runs.

    python benchmarks/real_backbone_report.py                 # CPU defaults
    python benchmarks/real_backbone_report.py --quick         # smoke run, seconds

Features are cached on disk (`$TLRECIPES_FEATURE_CACHE`), so a rerun costs
only the heads (and the scratch twin).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="reports/real_backbone", help="output folder")
    p.add_argument("--tasks", nargs="+", default=None, help="task names")
    p.add_argument("--sizes", nargs="+", type=int, default=[10, 100])
    p.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1")
    p.add_argument("--size", type=int, default=96, help="input side (pixels)")
    p.add_argument("--val-per-class", type=int, default=20)
    p.add_argument(
        "--test-per-class",
        type=int,
        default=200,
        help="fixed test sample per class (0 = full test split)",
    )
    p.add_argument("--epochs", type=int, default=10, help="scratch epochs per rate")
    p.add_argument("--no-scratch", action="store_true", help="skip the scratch twin")
    p.add_argument("--cache-dir", default=None, help="feature cache folder")
    p.add_argument("--quick", action="store_true", help="tiny smoke run")
    return p


def _settings(args: argparse.Namespace) -> dict:
    from tlrecipes.lab.real_backbone_report import real_backbone_settings

    return real_backbone_settings(
        tasks=args.tasks,
        sizes=args.sizes,
        seeds=args.seeds,
        size=args.size,
        val_per_class=args.val_per_class,
        test_per_class=args.test_per_class or None,
        scratch=not args.no_scratch,
        epochs=args.epochs,
        quick=args.quick,
    )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from tlrecipes.lab.real_backbone_report import run_real_backbone_report

    out = Path(args.out)
    payload = run_real_backbone_report(
        out,
        _settings(args),
        cache_dir=args.cache_dir,
        log=lambda text: print(text, flush=True),
    )
    print(
        f"Wrote {out / 'REPORT.md'} and {out / 'results.json'} "
        f"({payload['seconds']:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
