"""`advise`: the source tutorial's 2x2 table as rules."""

import pytest

from tlrecipes.lab.advice import CASES, SMALL_MAX_PER_CLASS, advise
from tlrecipes.lab.runs import EXTRA_STRATEGIES, STRATEGIES


def test_the_four_cells():
    small, large = SMALL_MAX_PER_CLASS, SMALL_MAX_PER_CLASS + 1
    assert advise(small, True).strategy == "feature_extractor"
    assert advise(small, False).strategy == "earlier_block"
    assert advise(large, True).strategy == "two_phase"
    assert advise(large, False).strategy == "fine_tune_all"
    assert (advise(small, True).size, advise(large, False).similarity) == (
        "small",
        "different",
    )


def test_strategy_names_are_the_experiments_names():
    known = set(STRATEGIES) | set(EXTRA_STRATEGIES)
    assert {strategy for strategy, _, _ in CASES.values()} <= known


def test_text_says_what_it_is_based_on_and_how_to_run_it():
    text = str(advise(400, similar=True))
    assert "Based on: the source tutorial's 2x2 table" in text
    assert "python recipes/two_phase_finetune.py --data-dir DIR" in text
    assert "two_phase_fit(" in text


@pytest.mark.parametrize("bad", [0, -1, True, 2.5, "10"])
def test_bad_images_per_class(bad):
    with pytest.raises(ValueError, match="images_per_class"):
        advise(bad, similar=True)


def test_the_earlier_block_command_fits_the_backbone():
    from tlrecipes.lab.advice import earlier_cut

    assert advise(10, False).command.endswith(
        "--cut-at block4a_expand_conv --pooling flatten"
    )
    assert advise(10, False, backbone="small_convnet").command.endswith(
        "--cut-after-block 2 --pooling flatten"
    )
    assert 'pooling="flatten"' in advise(10, False).code
    assert earlier_cut("VGG16") == "--cut-after-block 2"
    assert earlier_cut("efficientnetb0") == "--cut-at block4a_expand_conv"
    assert earlier_cut("resnet50") == "--cut-at LAYER"
    assert "--cut" not in advise(500, False).command


def test_the_default_cut_is_a_layer_of_the_default_backbone():
    import tlrecipes as tl

    base = tl.application("efficientnet_lite0", weights=None, input_shape=(32, 32, 3))
    assert "block4a_expand_conv" in [layer.name for layer in tl.flat_layers(base)]
