"""Specification of vidderain.models: saving with metadata, and loading safely or not at all."""

import json
import shutil
import zipfile

import keras
import numpy as np
import pytest

from vidderain import models
from vidderain.errors import ModelError
from vidderain.models import bundled_models, load_model, read_metadata, resolve_model, save_model
from vidderain.nets import build_unet

METADATA = {"arch": "default", "stride": 8, "overlap": 32, "data": "none", "val_psnr": 12.5, "training": {"steps": 3}}


@pytest.fixture(scope="module")
def small_unet():
    keras.utils.set_random_seed(1)
    return build_unet(widths=(4, 8), blocks=1, name="small")


@pytest.fixture(scope="module")
def saved_path(small_unet, tmp_path_factory):
    path = tmp_path_factory.mktemp("saved") / "small.keras"
    save_model(small_unet, path, METADATA)
    return path


def one_line_model_error(name_or_path) -> str:
    with pytest.raises(ModelError) as info:
        load_model(name_or_path)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_saved_metadata_reads_back_unchanged(saved_path):
    assert read_metadata(saved_path) == METADATA


def test_save_leaves_only_the_model_file(saved_path):
    assert [p.name for p in saved_path.parent.iterdir()] == ["small.keras"]


def test_saved_archive_is_deflated_and_smaller_than_keras_own(small_unet, saved_path, tmp_path):
    small_unet.save(tmp_path / "plain.keras")
    with zipfile.ZipFile(saved_path) as archive:
        assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_DEFLATED}
        assert "model.weights.h5" in archive.namelist()
    assert saved_path.stat().st_size < (tmp_path / "plain.keras").stat().st_size


def test_loaded_model_computes_what_the_saved_one_did(small_unet, saved_path):
    loaded = load_model(saved_path)
    batch = np.random.default_rng(0).random((2, 16, 24, 3)).astype(np.float32)
    np.testing.assert_array_equal(loaded.model.predict_on_batch(batch), small_unet.predict_on_batch(batch))


def test_loaded_model_carries_stride_overlap_metadata_and_path(saved_path):
    loaded = load_model(str(saved_path))
    assert (loaded.stride, loaded.overlap) == (8, 32)
    assert loaded.metadata == METADATA
    assert loaded.path == saved_path


def test_trained_fixture_loads_as_a_three_channel_model(trained_model, trained_model_path):
    assert trained_model.path == trained_model_path
    assert trained_model.metadata["step"] > 0
    assert trained_model.model.inputs[0].shape[-1] == 3


def test_save_refuses_a_name_without_keras_suffix(small_unet, tmp_path):
    with pytest.raises(ModelError, match=".keras"):
        save_model(small_unet, tmp_path / "model.h5", METADATA)
    assert list(tmp_path.iterdir()) == []


def test_save_refuses_metadata_without_stride_and_overlap(small_unet, tmp_path):
    with pytest.raises(ValueError, match="overlap"):
        save_model(small_unet, tmp_path / "model.keras", {"arch": "default", "stride": 8})
    assert list(tmp_path.iterdir()) == []


# Code in a model file never runs ------------------------------------------------------------


def save_lambda_model(path, marker):
    # The lambda imports what it needs, so it would run wherever it is deserialised.
    code = f"lambda x: (__import__('pathlib').Path({str(marker)!r}).touch(), x)[1]"
    inputs = keras.Input((None, None, 3))
    outputs = keras.layers.Lambda(eval(code))(inputs)  # noqa: S307 - our own literal
    save_model(keras.Model(inputs, outputs), path, METADATA)
    marker.unlink()  # building the model ran the lambda once


def test_lambda_layer_is_refused_and_its_code_never_runs(tmp_path):
    marker = tmp_path / "lambda-ran"
    save_lambda_model(tmp_path / "lambda.keras", marker)
    with pytest.raises(ModelError, match="serialized code"):
        load_model(tmp_path / "lambda.keras")
    assert not marker.exists()


def test_the_lambda_would_run_if_loaded_outside_safe_mode(tmp_path):
    # The premise of the test above: the marker appears when safe mode is off.
    marker = tmp_path / "lambda-ran"
    save_lambda_model(tmp_path / "lambda.keras", marker)
    keras.saving.load_model(tmp_path / "lambda.keras", compile=False, safe_mode=False)
    assert marker.exists()


# Files that are not models ----------------------------------------------------------------


def test_missing_file_is_a_model_error(tmp_path):
    assert "no such model file" in one_line_model_error(tmp_path / "absent.keras")


def test_folder_is_a_model_error(tmp_path):
    assert "folder" in one_line_model_error(tmp_path)


def test_non_zip_file_is_a_model_error(tmp_path):
    (tmp_path / "text.keras").write_text("not a model")
    assert "not a readable .keras model file" in one_line_model_error(tmp_path / "text.keras")


def test_truncated_file_is_a_model_error(saved_path, tmp_path):
    data = saved_path.read_bytes()
    (tmp_path / "cut.keras").write_bytes(data[: len(data) // 2])
    one_line_model_error(tmp_path / "cut.keras")


def rewrite_member(source, target, member, content):
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, content if info.filename == member else src.read(info))


@pytest.mark.parametrize("member", ["model.weights.h5", "config.json"])
def test_archive_with_a_corrupt_member_is_a_model_error(saved_path, tmp_path, member):
    rewrite_member(saved_path, tmp_path / "corrupt.keras", member, b"\x00garbage\xff" * 50)
    assert "cannot be loaded" in one_line_model_error(tmp_path / "corrupt.keras")


def test_keras_file_without_vidderain_metadata_is_a_model_error(small_unet, tmp_path):
    small_unet.save(tmp_path / "plain.keras")
    assert "without vidderain metadata" in one_line_model_error(tmp_path / "plain.keras")


def test_metadata_without_a_valid_stride_is_a_model_error(saved_path, tmp_path):
    bad = dict(METADATA, stride="eight")
    rewrite_member(saved_path, tmp_path / "bad.keras", models.METADATA_NAME, json.dumps(bad).encode())
    assert "stride" in one_line_model_error(tmp_path / "bad.keras")


def test_single_channel_model_is_a_model_error(tmp_path):
    save_model(build_unet(widths=(4, 8), blocks=1, channels=1, name="gray"), tmp_path / "gray.keras", METADATA)
    assert "1 input channels" in one_line_model_error(tmp_path / "gray.keras")


# Names -------------------------------------------------------------------------------------


def test_unknown_name_lists_the_bundled_models():
    message = one_line_model_error("no-such-model")
    assert "no-such-model" in message
    names = list(bundled_models())
    assert all(name in message for name in names) if names else "none are installed" in message


def test_bundled_models_resolve_by_name_and_unknown_names_list_them(saved_path, tmp_path, monkeypatch):
    # A bundled folder of our own instead of the package's: real model files, found the real way.
    for name in ("rain-light", "rain-heavy"):
        shutil.copy(saved_path, tmp_path / f"{name}.keras")
    sums = "".join(f"{models.file_sha256(p)}  {p.name}\n" for p in sorted(tmp_path.glob("*.keras")))
    (tmp_path / models.CHECKSUMS_NAME).write_text(sums)
    monkeypatch.setattr(models, "bundled_dir", lambda: tmp_path)
    assert list(bundled_models()) == ["rain-heavy", "rain-light"]
    assert resolve_model("rain-light") == tmp_path / "rain-light.keras"
    assert load_model("rain-heavy").metadata == METADATA
    message = one_line_model_error("drizzle")
    assert "rain-heavy" in message and "rain-light" in message
