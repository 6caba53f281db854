"""Untrusted model files: code in them never runs, every bad file is one clear line, bundled files are checksummed."""

from __future__ import annotations

import base64
import json
import marshal
import shutil
import zipfile
from pathlib import Path

import keras
import pytest
from typer.testing import CliRunner

from vidderain import models
from vidderain.cli import app
from vidderain.errors import ModelError
from vidderain.io.images import write_image
from vidderain.models import (
    CHECKSUMS_NAME,
    bundled_models,
    file_sha256,
    load_model,
    read_checksums,
    save_model,
)
from vidderain.nets import build_unet
from vidderain.pixels import to_integer

runner = CliRunner()
METADATA = {"arch": "default", "stride": 8, "overlap": 16}


@pytest.fixture
def photos(tmp_path, make_natural_image):
    folder = tmp_path / "in"
    folder.mkdir()
    write_image(folder / "a.png", to_integer(make_natural_image(32, 32)))
    return folder


def refused_in_one_line(photos: Path, model: Path | str) -> str:
    """Run `vidderain folder` with `model`; it must fail with exit 2 and one line, writing nothing.

    A model that passes the checks made without Keras is announced ("loading model ...")
    before Keras reads it; that status line is not part of the error.
    """
    out = photos.parent / "out"
    result = runner.invoke(app, ["folder", str(photos), str(out), "--model", str(model)])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip() and not line.startswith("loading model ")]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert not out.exists()
    return lines[0]


@pytest.fixture(scope="module")
def plain_model(tmp_path_factory) -> Path:
    inputs = keras.Input((None, None, 3))
    outputs = keras.layers.Conv2D(3, 3, padding="same", name="conv")(inputs)
    path = tmp_path_factory.mktemp("plain") / "plain.keras"
    save_model(keras.Model(inputs, outputs), path, METADATA)
    return path


def with_config(source: Path, target: Path, change) -> Path:
    """Copy a model file with its config.json passed through `change(config)`."""
    with zipfile.ZipFile(source) as src:
        config = json.loads(src.read("config.json"))
        change(config)
        with zipfile.ZipFile(target, "w") as dst:
            for info in src.infolist():
                dst.writestr(info, json.dumps(config) if info.filename == "config.json" else src.read(info))
    return target


def conv_config(config: dict) -> dict:
    return next(layer for layer in config["config"]["layers"] if layer["class_name"] == "Conv2D")["config"]


# Code in a model file never runs ----------------------------------------------------------------


def test_lambda_layer_is_refused_by_the_cli_and_never_runs(photos, tmp_path):
    marker = tmp_path / "ran"
    code = f"lambda x: (__import__('pathlib').Path({str(marker)!r}).touch(), x)[1]"
    inputs = keras.Input((None, None, 3))
    save_model(keras.Model(inputs, keras.layers.Lambda(eval(code))(inputs)), tmp_path / "lambda.keras", METADATA)
    marker.unlink()  # building the model ran it once
    assert "serialized code" in refused_in_one_line(photos, tmp_path / "lambda.keras")
    assert not marker.exists()


def test_marshalled_function_in_a_layer_setting_is_refused_and_never_runs(photos, plain_model, tmp_path):
    marker = tmp_path / "ran"

    def payload(x):
        __import__("pathlib").Path(str(marker)).touch()
        return x

    def change(config):
        conv_config(config)["activation"] = {
            "class_name": "__lambda__",
            "config": {"code": base64.b64encode(marshal.dumps(payload.__code__)).decode(), "defaults": None,
                       "closure": None},
        }

    model = with_config(plain_model, tmp_path / "activation.keras", change)
    assert "serialized code" in refused_in_one_line(photos, model)
    assert not marker.exists()


@pytest.mark.parametrize("place", ["layer", "initializer"])
def test_a_module_outside_keras_is_refused_and_never_imported(photos, plain_model, tmp_path, place):
    marker = tmp_path / "ran"
    popen = {"module": "subprocess", "class_name": "Popen", "config": {"args": ["touch", str(marker)]},
             "registered_name": None}

    def change(config):
        if place == "layer":
            config["config"]["layers"].append({**popen, "name": "evil", "inbound_nodes": []})
        else:
            conv_config(config)["kernel_initializer"] = popen

    model = with_config(plain_model, tmp_path / f"{place}.keras", change)
    assert "'subprocess'" in refused_in_one_line(photos, model)
    assert not marker.exists()


# Files that are not usable models ----------------------------------------------------------------


def test_missing_model_file_is_one_line(photos, tmp_path):
    assert "no such model file" in refused_in_one_line(photos, tmp_path / "absent.keras")


def test_text_file_named_keras_is_one_line(photos, tmp_path):
    (tmp_path / "text.keras").write_text("not a model")
    assert "not a readable .keras model file" in refused_in_one_line(photos, tmp_path / "text.keras")


def test_truncated_model_file_is_one_line(photos, plain_model, tmp_path):
    data = plain_model.read_bytes()
    (tmp_path / "cut.keras").write_bytes(data[: len(data) * 2 // 3])
    refused_in_one_line(photos, tmp_path / "cut.keras")


def test_archive_without_a_keras_config_is_one_line(photos, plain_model, tmp_path):
    with zipfile.ZipFile(plain_model) as src, zipfile.ZipFile(tmp_path / "noconfig.keras", "w") as dst:
        for info in src.infolist():
            if info.filename != "config.json":
                dst.writestr(info, src.read(info))
    assert "cannot be loaded" in refused_in_one_line(photos, tmp_path / "noconfig.keras")


def test_weights_that_do_not_fit_the_network_are_one_line(photos, plain_model, tmp_path):
    def change(config):
        conv_config(config)["filters"] = 5  # the stored kernel has 3

    assert "cannot be loaded" in refused_in_one_line(photos, with_config(plain_model, tmp_path / "misfit.keras", change))


def test_model_with_wrong_input_channels_is_one_line(photos, tmp_path):
    save_model(build_unet(widths=(4, 8), blocks=1, channels=1, name="gray"), tmp_path / "gray.keras", METADATA)
    assert "1 input channels" in refused_in_one_line(photos, tmp_path / "gray.keras")


def test_model_folder_is_one_line(photos, tmp_path):
    assert "is a folder" in refused_in_one_line(photos, tmp_path)


# Bundled models are checked against their recorded SHA-256 -------------------------------------------


def test_every_bundled_model_has_a_matching_line_in_sha256sums():
    found = bundled_models()
    assert found, "no bundled models"
    folder = next(iter(found.values())).parent
    recorded = read_checksums(folder / CHECKSUMS_NAME)
    for path in found.values():
        assert recorded.get(path.name) == file_sha256(path), (
            f"{path.name}: SHA256SUMS is stale; run `cd models && sha256sum *.keras > SHA256SUMS`")


@pytest.fixture
def fake_bundle(plain_model, tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "bundled"
    folder.mkdir()
    shutil.copy(plain_model, folder / "light.keras")
    (folder / CHECKSUMS_NAME).write_text(f"{file_sha256(folder / 'light.keras')}  light.keras\n")
    monkeypatch.setattr(models, "bundled_dir", lambda: folder)
    return folder


def test_bundled_model_matching_its_checksum_loads(fake_bundle):
    assert load_model("light").model.inputs[0].shape[-1] == 3


def test_bundled_model_with_changed_bytes_is_refused(fake_bundle, photos):
    data = bytearray((fake_bundle / "light.keras").read_bytes())
    data[-100] ^= 0xFF
    (fake_bundle / "light.keras").write_bytes(bytes(data))
    assert "does not match the SHA-256" in refused_in_one_line(photos, "light")


def test_bundled_model_without_a_recorded_checksum_is_refused(fake_bundle, plain_model):
    shutil.copy(plain_model, fake_bundle / "extra.keras")
    with pytest.raises(ModelError, match="without a recorded SHA-256"):
        load_model("extra")


def test_checksum_file_in_another_format_is_refused(fake_bundle):
    (fake_bundle / CHECKSUMS_NAME).write_text("light.keras: 1234\n")
    with pytest.raises(ModelError, match="line 1"):
        load_model("light")


def test_the_same_file_outside_the_bundled_folder_is_not_checked(fake_bundle, tmp_path):
    shutil.copy(fake_bundle / "light.keras", tmp_path / "mine.keras")
    (fake_bundle / CHECKSUMS_NAME).write_text("")
    assert load_model(tmp_path / "mine.keras").metadata["stride"] == 8
