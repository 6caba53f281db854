"""`vidderain average`: the mean of networks fine-tuned from one start, saved as a model file."""

from __future__ import annotations

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from vidderain.cli import app
from vidderain.models import load_model, read_metadata, save_model

runner = CliRunner()


def _shifted_copy(path, out, shift: float, step: int):
    """The model at `path` with `shift` added to every weight: a stand-in for a second leg from it."""
    loaded = load_model(path)
    loaded.model.set_weights([w + np.float32(shift) for w in loaded.model.get_weights()])
    save_model(loaded.model, out, dict(loaded.metadata, step=step, val_psnr=30.0 + shift, val_files=["a.png", "b.png"]))
    return out


def test_average_writes_the_mean_of_the_weights_and_says_what_it_averaged(trained_model_path, tmp_path,
                                                                          make_natural_image):
    first = _shifted_copy(trained_model_path, tmp_path / "a.keras", 0.0, step=10)
    second = _shifted_copy(trained_model_path, tmp_path / "b.keras", 0.02, step=20)
    out = tmp_path / "mean.keras"
    result = runner.invoke(app, ["average", str(first), str(second), "--out", str(out)])
    assert result.exit_code == 0, result.output
    expected = [w + np.float32(0.01) for w in load_model(trained_model_path).model.get_weights()]
    for got, want in zip(load_model(out).model.get_weights(), expected):
        np.testing.assert_allclose(got, want, atol=1e-6)
    metadata = read_metadata(out)
    assert [entry["file"] for entry in metadata["averaged"]] == ["a.keras", "b.keras"]
    assert [entry["step"] for entry in metadata["averaged"]] == [10, 20]
    assert "val_psnr" not in metadata and "step" not in metadata  # the mean's own score is not known yet
    assert metadata["val_files"] == ["a.png", "b.png"] and metadata["arch"] == "default"

    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(np.round(make_natural_image(48, 64, seed=3) * 255).astype(np.uint8)).save(images / "a.png")
    result = runner.invoke(app, ["folder", str(images), str(tmp_path / "out"), "--model", str(out)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "a.png").is_file()


def test_average_refuses_different_networks_in_one_line(trained_model_path, temporal_model_path, tmp_path):
    out = tmp_path / "mean.keras"
    result = runner.invoke(app, ["average", str(trained_model_path), str(temporal_model_path), "--out", str(out)])
    assert result.exit_code != 0
    assert "not the same network" in result.output and "Traceback" not in result.output
    assert not out.exists()


def test_average_refuses_a_file_with_a_veil_estimate_and_a_single_file(trained_model_path, tmp_path):
    from vidderain.nets.veil import attach_veil, build_veil

    loaded = load_model(trained_model_path)
    veiled = tmp_path / "veiled.keras"
    save_model(attach_veil(loaded.model, build_veil()), veiled, dict(loaded.metadata))
    out = tmp_path / "mean.keras"
    result = runner.invoke(app, ["average", str(trained_model_path), str(veiled), "--out", str(out)])
    assert result.exit_code != 0
    assert "veil estimate" in result.output and "train-veil" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["average", str(trained_model_path), "--out", str(out)])
    assert result.exit_code != 0 and "two or more" in result.output
    assert not out.exists()
