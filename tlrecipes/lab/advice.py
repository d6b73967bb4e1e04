"""Which recipe to use: the source tutorial's 2x2 table, as rules.

The table, from the transfer-learning tutorial this project grew from (after
CS231n's notes), crosses the size of the target data with its similarity to
the source problem. The table is advice, not
evidence: `tlrecipes study` measures each cell on the offline tasks, and
`advise` quotes that measurement (`tlrecipes.lab.evidence`) beside the rule,
saying when it is a tie or disagrees.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "Advice", "advise", "earlier_cut", "BLOCK_NAMED", "SMALL_MAX_PER_CLASS", "CASES"
]

#: Up to this many training images per class counts as "small" target data.
#: Soekhoe et al. (2016) found transfer beats training from scratch below
#: roughly 500 images per class; the study's "small" case uses 10 per class and
#: its "large" case 400 per class.
SMALL_MAX_PER_CLASS = 100

#: (size, similarity) -> (strategy, the tutorial's words, why).
CASES: dict[tuple[str, str], tuple[str, str, str]] = {
    ("small", "similar"): (
        "feature_extractor",
        "Use the pretrained model as a fixed feature extractor; train a new head.",
        "Too little data to fine-tune without overfitting, and the pretrained "
        "features already fit the problem.",
    ),
    ("small", "different"): (
        "earlier_block",
        "Do not use the pretrained model as it is; take features from an "
        "earlier block (the CS231n alternative).",
        "Late features are specific to the source problem; early ones (edges, "
        "textures) are general, and there is too little data to retrain much.",
    ),
    ("large", "similar"): (
        "two_phase",
        "Fine-tune: train the new head first, then unfreeze and fine-tune at a "
        "low learning rate.",
        "Enough data to adapt the features without overfitting; starting from "
        "similar features converges faster and higher.",
    ),
    ("large", "different"): (
        "fine_tune_all",
        "Train the whole network, initialised with the pretrained weights.",
        "Enough data to learn the new problem's features; pretrained weights "
        "still give a faster start than random ones.",
    ),
}

_CODE = {
    "feature_extractor": (
        "model = tl.add_head(base, num_classes)\n"
        "tl.two_phase_fit(model, x, y, head_epochs=20, fine_tune_epochs=0)"
    ),
    "earlier_block": (
        "early = lab.cut_after_block(base, 2)  # or base up to an earlier layer\n"
        "model = tl.add_head(early, num_classes, pooling=\"flatten\")\n"
        "tl.two_phase_fit(model, x, y, head_epochs=20, fine_tune_epochs=0)"
    ),
    "two_phase": (
        "model = tl.add_head(base, num_classes)\n"
        "tl.two_phase_fit(model, x, y, head_epochs=10, fine_tune_epochs=10)"
    ),
    "fine_tune_all": (
        "model = tl.add_head(base, num_classes)\n"
        "tl.two_phase_fit(model, x, y, head_epochs=0, fine_tune_epochs=20)"
    ),
}

_RECIPE = {
    "feature_extractor": "recipes/feature_extractor.py",
    "earlier_block": "recipes/feature_extractor.py",  # + earlier_cut(backbone)
    "two_phase": "recipes/two_phase_finetune.py",
    "fine_tune_all": "recipes/finetune_all.py",
}


@dataclass
class Advice:
    """A recommendation: the strategy, the reasons, and how to run it."""

    size: str
    similarity: str
    images_per_class: int
    strategy: str
    tutorial_says: str
    why: str
    code: str
    command: str
    measured: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return "\n".join(
            [
                f"Case: {self.size} target data ({self.images_per_class} images per "
                f"class; small means <= {SMALL_MAX_PER_CLASS}), {self.similarity} "
                "problem.",
                f"Recommended recipe: {self.strategy}",
                f"  {self.tutorial_says}",
                f"Why: {self.why}",
                "Based on: the source tutorial's 2x2 table (dataset size x "
                "similarity; rules), "
                + (
                    "checked against the measured row below."
                    if self.measured
                    else "not checked against measurements."
                ),
                *self.measured,
                "Run `tlrecipes study` to measure every strategy against a "
                "from-scratch twin on your own setting "
                "(`tlrecipes advise --evidence OUT/summary.json` then answers "
                "from it).",
                "",
                "Run it on your own image folder:",
                f"  python {self.command}"
                + ("" if "--data-dir" in self.command else " --data-dir DIR"),
                "",
                "Or in code (import tlrecipes as tl; from tlrecipes import lab):",
                *("  " + line for line in self.code.splitlines()),
            ]
        )


#: Backbones whose layers are named by block (`block<i>_...`).
BLOCK_NAMED = ("small_convnet", "vgg16", "vgg19")


def earlier_cut(backbone: str | None = None) -> str:
    """The feature extractor recipe's flag that reads features from an earlier block.

    Args:
        backbone: The recipe's `--backbone`. Defaults to None: the recipes'
            default, `efficientnet_lite0`.

    Returns:
        `--cut-after-block 2` for backbones named by block (`BLOCK_NAMED`),
        `--cut-at block4a_expand_conv` (the start of the fourth of seven
        stages) for EfficientNets, else `--cut-at LAYER`: a layer name of
        the backbone to fill in (`tl.trainable_summary(base)` lists them).

    Example:

    >>> earlier_cut(), earlier_cut("small_convnet")
    ('--cut-at block4a_expand_conv', '--cut-after-block 2')
    """
    name = (backbone or "efficientnet_lite0").lower().replace("-", "_")
    if name in BLOCK_NAMED:
        return "--cut-after-block 2"
    if name.startswith("efficientnet"):
        return "--cut-at block4a_expand_conv"
    return "--cut-at LAYER"


def advise(
    images_per_class: int,
    similar: bool,
    backbone: str | None = None,
    evidence: str | Path | None = "shipped",
) -> Advice:
    """Recommends a transfer-learning recipe for a target dataset.

    Args:
        images_per_class: Training images per class in the target data.
        similar: Whether the target problem resembles the source problem
            (natural photos for ImageNet, clothing for a Fashion-MNIST source).
        backbone: The backbone the recipe will use, for the earlier-block
            command (see `earlier_cut`). Defaults to None: the recipes' default.
        evidence: Where the measurements come from: `"shipped"` (the
            default) for the committed study shipped with the package, the
            path of a `tlrecipes study` run's `summary.json`, or None for the
            table's rules alone. The advice then quotes the measured row of
            its case: the recipe against the from-scratch twin with its 95%
            interval and verdict, the best strategy picked on validation, and
            says so when the evidence is a tie or disagrees with the table.

    Returns:
        An `Advice`; `print()` it.

    Raises:
        ValueError: If `images_per_class` is not a positive integer.

    Example:

    >>> advise(10, similar=True).strategy
    'feature_extractor'
    >>> advise(500, similar=False).strategy
    'fine_tune_all'
    >>> print(advise(400, similar=True).measured[-2])  # doctest: +ELLIPSIS
      Best on validation: earlier_block.
    """
    if isinstance(images_per_class, bool) or not isinstance(images_per_class, int):
        raise ValueError(
            "Received an invalid value for `images_per_class`, expected a positive "
            f"integer. Received: images_per_class={images_per_class!r}."
        )
    if images_per_class < 1:
        raise ValueError(
            "Received an invalid value for `images_per_class`, expected a positive "
            f"integer. Received: images_per_class={images_per_class}. Fix: count the "
            "training images of your smallest class."
        )
    size = "small" if images_per_class <= SMALL_MAX_PER_CLASS else "large"
    similarity = "similar" if similar else "different"
    strategy, says, why = CASES[(size, similarity)]
    measured: list[str] = []
    if evidence is not None:
        from tlrecipes.lab.evidence import describe_measurement, load_evidence

        source = None if str(evidence) == "shipped" else evidence
        measured = describe_measurement(
            load_evidence(source), size, similarity, strategy, images_per_class
        )
    return Advice(
        size=size,
        similarity=similarity,
        images_per_class=images_per_class,
        strategy=strategy,
        tutorial_says=says,
        why=why,
        code=_CODE[strategy],
        command=_RECIPE[strategy]
        + (
            f" {earlier_cut(backbone)} --pooling flatten"
            if strategy == "earlier_block"
            else ""
        ),
        measured=measured,
    )
