"""The `vidderain` command line, run through Typer's runner on real files."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest
from typer.testing import CliRunner

from vidderain.cli import app
from vidderain.io.images import read_image, write_image
from vidderain.metrics import psnr, ssim
from vidderain.pixels import to_float, to_integer

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def photo_folder(tmp_path, make_natural_image, make_rainy):
    folder = tmp_path / "in"
    folder.mkdir()
    write_image(folder / "street.png", to_integer(make_rainy(make_natural_image(90, 130, seed=1), seed=1)))
    write_image(folder / "field.jpg", to_integer(make_rainy(make_natural_image(64, 48, seed=2), seed=2)))
    return folder


def test_version_prints_the_package_version():
    from vidderain import __version__

    result = invoke("--version")
    assert result.exit_code == 0
    assert __version__ in result.output


def test_folder_derains_every_image_keeping_name_size_and_format(photo_folder, tmp_path, trained_model_path):
    out = tmp_path / "out"
    result = invoke("folder", photo_folder, out, "--model", trained_model_path)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["field.jpg", "street.png"]
    for name in ("street.png", "field.jpg"):
        assert read_image(out / name).shape == read_image(photo_folder / name).shape
    assert "2 derained, 0 failed" in result.output


def test_folder_ensemble_writes_the_average_of_the_frame_and_its_mirror_image(
    photo_folder, tmp_path, trained_model_path, trained_model
):
    from vidderain.engine import Engine, TileSettings

    plain, ensemble = tmp_path / "plain", tmp_path / "ensemble"
    assert invoke("folder", photo_folder, plain, "--model", trained_model_path).exit_code == 0
    result = invoke("folder", photo_folder, ensemble, "--model", trained_model_path, "--ensemble")
    assert result.exit_code == 0, result.output
    assert "mirrored ensemble" in result.output
    rainy = to_float(read_image(photo_folder / "street.png"))
    settings = TileSettings(overlap=trained_model.overlap, ensemble=True)
    expected = to_integer(Engine(trained_model.model, trained_model.stride, settings).process(rainy)).astype(int)
    written = read_image(ensemble / "street.png").astype(int)
    assert np.abs(written - expected).max() <= 1
    assert np.abs(written - read_image(plain / "street.png").astype(int)).max() >= 2


def test_folder_reports_a_bad_file_by_name_and_goes_on(photo_folder, tmp_path, trained_model_path):
    (photo_folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    out = tmp_path / "out"
    result = invoke("folder", photo_folder, out, "--model", trained_model_path)
    assert result.exit_code == 1
    assert "broken.png" in result.output
    assert "2 derained, 1 failed" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["field.jpg", "street.png"]
    assert "Traceback" not in result.output


def test_folder_rerun_skips_finished_outputs(photo_folder, tmp_path, trained_model_path):
    out = tmp_path / "out"
    assert invoke("folder", photo_folder, out, "--model", trained_model_path).exit_code == 0
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    result = invoke("folder", photo_folder, out, "--model", trained_model_path)
    assert result.exit_code == 0
    assert "2 already done" in result.output
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


def test_folder_refuses_to_write_over_its_input(photo_folder, trained_model_path):
    before = {p.name: p.read_bytes() for p in photo_folder.iterdir()}
    result = invoke("folder", photo_folder, photo_folder, "--model", trained_model_path)
    assert result.exit_code == 2
    assert "the output is the input" in result.output
    assert {p.name: p.read_bytes() for p in photo_folder.iterdir()} == before


def test_folder_output_inside_input_is_never_read_back(photo_folder, trained_model_path):
    out = photo_folder / "derained"
    for _ in range(2):
        result = invoke("folder", photo_folder, out, "--model", trained_model_path, "--recursive", "--overwrite")
        assert result.exit_code == 0, result.output
    assert not (out / "derained").exists()
    assert sorted(p.name for p in out.iterdir()) == ["field.jpg", "street.png"]


def test_folder_mirrors_subfolders_with_recursive(photo_folder, tmp_path, trained_model_path, make_natural_image):
    (photo_folder / "day2").mkdir()
    write_image(photo_folder / "day2" / "cam.png", to_integer(make_natural_image(40, 40, seed=3)))
    out = tmp_path / "out"
    assert invoke("folder", photo_folder, out, "--model", trained_model_path, "-r").exit_code == 0
    assert (out / "day2" / "cam.png").is_file()


def test_missing_input_is_one_clear_line(tmp_path):
    result = invoke("folder", tmp_path / "nowhere", tmp_path / "out")
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == [f"error: {tmp_path / 'nowhere'}: no such folder"]


def test_unknown_model_is_one_clear_line(photo_folder, tmp_path):
    result = invoke("folder", photo_folder, tmp_path / "out", "--model", "no-such-model")
    assert result.exit_code == 2
    assert "no model named 'no-such-model'" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_tile_that_is_not_a_multiple_of_the_stride_is_refused(photo_folder, tmp_path, trained_model_path):
    result = invoke("folder", photo_folder, tmp_path / "out", "--model", trained_model_path, "--tile", "100")
    assert result.exit_code == 2
    assert "tile=100" in result.output


@pytest.mark.parametrize("command", ["folder", "video", "bench"])
def test_the_first_line_comes_before_the_model_loads(command, photo_folder, tmp_path, trained_model_path, monkeypatch):
    import keras

    said_before_loading = []

    def load_model(*args, **kwargs):  # records what the user had been told when Keras starts reading
        said_before_loading.append(True)
        raise ValueError("stop here")

    monkeypatch.setattr(keras.saving, "load_model", load_model)
    paths = {"folder": [photo_folder, tmp_path / "out"], "video": [photo_folder, tmp_path / "out.mp4", "--fps", 5],
             "bench": []}[command]
    result = invoke(command, *paths, "--model", trained_model_path)
    assert said_before_loading
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines[0] == f"loading model {trained_model_path.name} ..."


@pytest.mark.parametrize("command", ["folder", "video", "bench"])
def test_a_tile_off_the_stride_is_refused_with_the_nearest_before_the_model_loads(command, photo_folder, tmp_path,
                                                                                   trained_model_path, monkeypatch):
    import keras

    loads = []
    monkeypatch.setattr(keras.saving, "load_model", lambda *args, **kwargs: loads.append(args))
    paths = {"folder": [photo_folder, tmp_path / "out"], "video": [photo_folder, tmp_path / "out.mp4", "--fps", 5],
             "bench": []}[command]
    result = invoke(command, *paths, "--model", trained_model_path, "--tile", "100")
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: --tile must be 0")
    assert "the nearest are 96 and 104" in lines[0] and lines[0].endswith("Received: --tile=100")
    assert loads == []


def test_a_library_setting_is_named_by_its_flag(tmp_path, trained_model_path, photo_folder):
    result = invoke("video", photo_folder, tmp_path / "out.mp4", "--model", trained_model_path)
    assert result.exit_code == 2
    assert "needs --fps, its frame rate" in result.output
    result = invoke("folder", photo_folder, tmp_path / "out", "--compare", "above")
    assert result.exit_code == 2
    assert result.output.strip() == "error: --compare must be one of side, split. Received: --compare='above'"


@pytest.mark.parametrize("command", [[], ["folder"], ["video"], ["eval"], ["models"], ["train"], ["bench"]],
                         ids=lambda c: " ".join(c) or "vidderain")
def test_help_shows_flags_without_a_value_placeholder(command):
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "<bool>" not in result.output
    flags = [line for line in result.output.splitlines() if re.search(r"--(help|overwrite|recursive|json|version)\b", line)]
    assert flags and all("<" not in line for line in flags), flags


@pytest.mark.parametrize(("command", "arguments"), [("folder", "IN_DIR OUT_DIR"), ("video", "IN OUT"),
                                                     ("eval", "PRED_DIR CLEAN_DIR"), ("train", "DATA_DIR")])
def test_usage_names_the_arguments_as_the_help_text_does(command, arguments):
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    usage = next(line for line in result.output.splitlines() if "Usage:" in line)
    assert usage.split("Usage:")[1].split()[1:] == [command, "[OPTIONS]", *arguments.split()]
    first_paragraph = result.output.split("Usage:")[1]
    assert all(name in first_paragraph for name in arguments.split())


def test_eval_json_gives_the_mean_of_per_file_metrics(tmp_path, make_natural_image, make_rainy):
    pred, clean = tmp_path / "pred", tmp_path / "clean"
    pred.mkdir()
    clean.mkdir()
    expected_p, expected_s = [], []
    for i in range(3):
        c = to_integer(make_natural_image(48, 64, seed=i))
        p = to_integer(make_rainy(to_float(c), seed=i))
        write_image(clean / f"{i}.png", c)
        write_image(pred / f"{i}.png", p)
        expected_p.append(psnr(to_float(p), to_float(c)))
        expected_s.append(ssim(to_float(p), to_float(c)))
    result = invoke("eval", pred, clean, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["count"] == 3
    assert report["psnr"] == pytest.approx(np.mean(expected_p), abs=1e-9)
    assert report["ssim"] == pytest.approx(np.mean(expected_s), abs=1e-9)
    assert [f["name"] for f in report["files"]] == ["0.png", "1.png", "2.png"]


def test_eval_names_a_prediction_without_a_clean_partner(tmp_path, make_natural_image):
    pred, clean = tmp_path / "pred", tmp_path / "clean"
    pred.mkdir()
    clean.mkdir()
    write_image(pred / "lonely.png", to_integer(make_natural_image(20, 20)))
    result = invoke("eval", pred, clean)
    assert result.exit_code == 2
    assert "lonely.png" in result.output


def test_eval_with_a_missing_folder_or_a_file_is_one_clear_line(tmp_path, make_natural_image):
    clean = tmp_path / "clean"
    clean.mkdir()
    image = tmp_path / "one.png"
    write_image(image, to_integer(make_natural_image(20, 20)))
    for pred, reason in ((tmp_path / "nowhere", "no such folder"), (image, "is a file, not a folder of images")):
        result = invoke("eval", pred, clean)
        assert result.exit_code == 2
        assert [line for line in result.output.splitlines() if line.strip()] == [f"error: {pred}: {reason}"]


@pytest.fixture
def bundle_trained_far_away(tmp_path, trained_model_path, monkeypatch):
    """A bundled-models folder whose one model records the absolute path it was trained from."""
    import shutil
    import zipfile

    from vidderain import models

    folder = tmp_path / "bundled"
    folder.mkdir()
    path = shutil.copy(trained_model_path, folder / "tiny.keras")
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    meta = json.loads(members["vidderain.json"])
    meta.update(data="/home/someone/datasets/RainTrainL: 180 training pairs, 20 validation pairs",
                val_psnr=30.0, macs_per_pixel=20000.0)
    members["vidderain.json"] = json.dumps(meta).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    monkeypatch.setattr(models, "bundled_dir", lambda: folder)
    return folder


def test_models_name_the_training_data_set_and_its_size_never_a_path(bundle_trained_far_away):
    result = runner.invoke(app, ["models"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "/home/someone" not in result.output
    assert "trained on RainTrainL (180 training pairs, 20 validation pairs)" in result.output
    listed = json.loads(runner.invoke(app, ["models", "--json"]).output)
    assert listed["tiny"]["data"] == "RainTrainL (180 training pairs, 20 validation pairs)"


def test_models_explain_their_columns_and_say_which_to_use(bundle_trained_far_away):
    result = runner.invoke(app, ["models"], env={"COLUMNS": "200"})
    assert "MACs/pixel: multiply-adds the network spends on each pixel" in result.output
    assert "stride: frames are padded to a multiple of it, and --tile must be one" in result.output
    assert "Which to use: tiny, the best validation score at the least compute." in result.output


def test_models_name_a_temporal_model_for_videos_apart_from_the_ranking(bundle_trained_far_away, temporal_model_path):
    # Its validation score is on synthetic clips: however high, it does not rank against the images'.
    import zipfile

    with zipfile.ZipFile(temporal_model_path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    meta = json.loads(members["vidderain.json"])
    meta.update(val_psnr=45.0, macs_per_pixel=10000.0)
    members["vidderain.json"] = json.dumps(meta).encode()
    with zipfile.ZipFile(bundle_trained_far_away / "temporal.keras", "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    result = runner.invoke(app, ["models"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert ("Which to use: tiny, the best validation score at the least compute. For videos and folders of a "
            "clip's frames: temporal (what `vidderain video` runs), which also reads each frame's neighbours"
            ) in " ".join(result.output.split())
    assert "45.00 dB (clips)" in result.output


def test_models_json_lists_each_bundled_model_with_its_metadata():
    from vidderain.models import bundled_models

    result = invoke("models", "--json")
    assert result.exit_code == 0
    listed = json.loads(result.output)
    assert sorted(listed) == sorted(bundled_models())
    for meta in listed.values():
        assert {"arch", "stride", "overlap"} <= meta.keys()


def test_console_script_runs_in_a_fresh_process(tmp_path):
    import subprocess
    import sys

    script = "from vidderain.cli import main; main()"
    result = subprocess.run([sys.executable, "-c", script, "folder", str(tmp_path / "none"), str(tmp_path / "o")],
                            capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {tmp_path / 'none'}: no such folder"
