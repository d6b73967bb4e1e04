"""Writes the 1000 ImageNet class names shipped in `tlrecipes/data/`.

`tlrecipes.applications.imagenet_labels()` names the outputs of an ImageNet
classifier offline. The names are data, so they are generated, not typed:

    python scripts/make_imagenet_labels.py          # tlrecipes/data/imagenet_labels.txt
    python scripts/make_imagenet_labels.py --out F  # somewhere else, to compare

The source is the list `IMAGENET_LABELS_LIST` in the installed TensorFlow
Datasets package (`tensorflow_datasets/datasets/siscore/labels.py`,
Apache-2.0): the ImageNet-1k synsets' WordNet names in the standard class
index order (0 "tench, Tinca tinca" ... 999 "toilet tissue, ..."). The file is
parsed with `ast.literal_eval`, so neither TensorFlow nor TensorFlow Datasets
is imported or run. The output has one name per line, UTF-8, no header.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import sys
from pathlib import Path

DEFAULT_OUT = (
    Path(__file__).resolve().parents[1] / "tlrecipes" / "data" / "imagenet_labels.txt"
)
SOURCE = ("datasets", "siscore", "labels.py")
NAME = "IMAGENET_LABELS_LIST"


def read_labels() -> list[str]:
    """Returns the list from the installed tensorflow_datasets, without importing it."""
    spec = importlib.util.find_spec("tensorflow_datasets")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(
            "error: tensorflow_datasets is not installed; pip install "
            "tensorflow-datasets (see requirements.txt)."
        )
    path = Path(list(spec.submodule_search_locations)[0]).joinpath(*SOURCE)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == NAME for t in node.targets
        ):
            labels = ast.literal_eval(node.value)
            break
    else:
        raise SystemExit(f"error: {path} has no {NAME}.")
    if len(labels) != 1000 or not all(isinstance(s, str) and s for s in labels):
        raise SystemExit(f"error: {NAME} in {path} is not 1000 names.")
    if any("\n" in s for s in labels):
        raise SystemExit(f"error: a name in {NAME} spans lines.")
    return labels


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help=f"Defaults to {DEFAULT_OUT}.")
    args = parser.parse_args(argv)
    labels = read_labels()
    out = Path(args.out) if args.out else DEFAULT_OUT
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(labels) + "\n", encoding="utf-8")
    print(f"wrote {len(labels)} names to {out}: {labels[0]!r} ... {labels[-1]!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
