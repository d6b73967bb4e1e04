"""safe_loading: a truncated or corrupt .keras file is named, never 'File not found'."""

import keras
import pytest

from tlrecipes.safe_loading import check_keras_archive, safe_load_model


@pytest.fixture
def saved(tmp_path):
    keras.backend.clear_session()
    path = tmp_path / "model.keras"
    keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]).save(path)
    return path


@pytest.mark.multibackend
def test_a_truncated_keras_file_is_named_with_the_fix(saved, tmp_path):
    whole = saved.read_bytes()
    cut = tmp_path / "cut.keras"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ValueError) as err:
        safe_load_model(cut)
    message = str(err.value)
    assert f"Cannot load {str(cut)!r} ({len(whole) // 2:,} bytes)" in message
    assert "not a valid .keras archive (truncated or corrupt)" in message
    assert "File not found" not in message
    assert "Fix: save the model again" in message and "\n" not in message
    # Keras alone says the file is not found, although it exists.
    with pytest.raises(ValueError, match="File not found"):
        keras.saving.load_model(cut)
    # An empty file, and one corrupted inside (a CRC error), are named too.
    empty = tmp_path / "empty.keras"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="not a valid .keras archive"):
        safe_load_model(empty)
    flipped = bytearray(whole)
    flipped[len(whole) // 2] ^= 0xFF
    bad = tmp_path / "bad.keras"
    bad.write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match="fails its CRC check"):
        check_keras_archive(bad)
    # A whole file still loads.
    assert safe_load_model(saved).output_shape == (None, 2)


def test_recipes_saved_bases_name_a_truncated_file(tmp_path):
    from tlrecipes import add_head
    from tlrecipes.lab import build_base, saved_base

    keras.backend.clear_session()
    base, _ = build_base("small_convnet", "none", image_size=16)
    path = tmp_path / "model.keras"
    add_head(base, 2).save(path)
    path.write_bytes(path.read_bytes()[:-200])
    for load in (saved_base, lambda p: build_base("small_convnet", p, 16)):
        with pytest.raises(ValueError, match="not a valid .keras archive") as err:
            load(path)
        assert str(path) in str(err.value)
