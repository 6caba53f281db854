"""benchmarks/video_testset.py: the synthetic rainy video test set and its scoring.

The real set is filmed from Rain100L's held-out clean images, which the suite does not
read; these tests film stand-ins drawn under the same names.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest

from vidderain.data.patches import split_validation
from vidderain.io.images import read_image, write_image
from vidderain.io.video import VideoReader
from vidderain.metrics import psnr
from vidderain.pixels import to_float, to_integer

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "video_testset.py"


@pytest.fixture(scope="module")
def testset():
    spec = importlib.util.spec_from_file_location("video_testset", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def stand_in_clean(tmp_path_factory, testset, make_natural_image) -> Path:
    """Drawn images under the names of the 20 held-out Rain100L images, as RainTrainL/norain holds them."""
    folder = tmp_path_factory.mktemp("norain")
    for index, name in enumerate(testset.VALIDATION_NAMES):
        write_image(folder / f"{name}.png", to_integer(make_natural_image(200, 300, seed=300 + index)))
    return folder


def test_the_held_out_images_are_those_training_holds_out(testset):
    names = sorted(f"norain-{number}" for number in range(1, 201))  # RainTrainL/norain, as training lists it
    _, held_out = split_validation(names, 20, seed=0)
    assert sorted(testset.VALIDATION_NAMES) == sorted(held_out)


def test_make_films_lossless_rainy_clips_with_their_clean_frames(testset, stand_in_clean, tmp_path):
    testset.make(tmp_path / "set", stand_in_clean, clips=2, frames=4)
    manifest = json.loads((tmp_path / "set" / "testset.json").read_text())
    assert [clip["name"] for clip in manifest["clips"]] == ["clip01", "clip02"]
    assert [clip["camera"] for clip in manifest["clips"]] == ["moving", "still"]
    for clip in manifest["clips"]:
        with VideoReader(tmp_path / "set" / clip["name"] / "rainy.mkv") as reader:
            rainy = list(reader)
        clean = [read_image(path) for path in sorted((tmp_path / "set" / clip["name"] / "clean").glob("*.png"))]
        assert len(rainy) == len(clean) == 4
        assert all(frame.shape == (240, 320, 3) for frame in rainy + clean)
        # Rain on the clean frames: close to them, never equal, fresh in every frame.
        assert all(10 < psnr(to_float(r), to_float(c)) < 45 for r, c in zip(rainy, clean))
        assert not np.array_equal(rainy[0].astype(int) - clean[0], rainy[1].astype(int) - clean[1])


def test_the_parallax_variant_moves_every_camera_and_passes_a_near_layer(testset, stand_in_clean, tmp_path):
    testset.make(tmp_path / "gentle", stand_in_clean, clips=3, frames=5)
    testset.make(tmp_path / "near", stand_in_clean, clips=3, frames=5, parallax=True)
    manifest = json.loads((tmp_path / "near" / "testset.json").read_text())
    assert manifest["made_by"].endswith("make --parallax")
    assert [clip["camera"] for clip in manifest["clips"]] == ["near"] * 3
    assert all(clip["near_layer_from"] for clip in manifest["clips"])
    # Clip 3 has no object crossing, in either variant; what differs is the near layer.
    gentle, near = (np.stack([read_image(p) for p in sorted((tmp_path / v / "clip03" / "clean").glob("*.png"))])
                    for v in ("gentle", "near"))
    covered = np.abs(gentle.astype(int) - near).max(axis=3) > 20
    assert 0.02 < covered.mean() < 0.95, covered.mean()


def test_demo_films_the_sample_photos_alone(testset, tmp_path, capsys):
    testset.demo(tmp_path / "demo", frames=4)
    assert "coffee" in capsys.readouterr().out
    with VideoReader(tmp_path / "demo" / "rainy.mkv") as reader:
        rainy = list(reader)
    clean = [read_image(p) for p in sorted((tmp_path / "demo" / "clean").glob("*.png"))]
    assert len(rainy) == len(clean) == 4 and rainy[0].shape == (240, 320, 3)
    assert all(10 < psnr(to_float(r), to_float(c)) < 45 for r, c in zip(rainy, clean))


def test_make_refuses_a_folder_inside_the_repository(testset, stand_in_clean):
    with pytest.raises(SystemExit, match="inside the repository"):
        testset.make(SCRIPT.parent / "testset", stand_in_clean, clips=1, frames=2)
    assert not (SCRIPT.parent / "testset").exists()


@pytest.mark.slow
def test_score_of_a_model_that_changes_nothing_is_the_rainy_inputs_score(testset, stand_in_clean, tmp_path, capsys):
    import keras

    from vidderain.models import save_model

    inputs = keras.Input((None, None, 3))
    save_model(keras.Model(inputs, keras.layers.ReLU(max_value=1.0)(inputs)), tmp_path / "identity.keras",
               {"arch": "default", "stride": 8, "overlap": 32})
    testset.make(tmp_path / "set", stand_in_clean, clips=1, frames=3)
    capsys.readouterr()
    testset.score(tmp_path / "set", str(tmp_path / "identity.keras"), precision="float32", keep=tmp_path / "out")
    lines = capsys.readouterr().out.splitlines()
    clip = next(line for line in lines if line.startswith("clip01"))
    rainy, derained = re.findall(r"(\d+\.\d\d) / (\d\.\d{4})", clip)
    assert rainy == derained
    with VideoReader(tmp_path / "set" / "clip01" / "rainy.mkv") as reader:
        frames = list(reader)
    clean = [to_float(read_image(p)) for p in sorted((tmp_path / "set" / "clip01" / "clean").glob("*.png"))]
    assert float(rainy[0]) == pytest.approx(np.mean([psnr(to_float(f), c) for f, c in zip(frames, clean)]), abs=0.006)
    assert lines[-1].startswith("mean over 3 frames: rainy ") and lines[-1].endswith("(+0.00 dB)")


def test_bound_scores_what_the_neighbouring_frames_hold(testset, stand_in_clean, tmp_path, capsys):
    testset.make(tmp_path / "set", stand_in_clean, clips=2, frames=5)
    capsys.readouterr()
    testset.bound(tmp_path / "set", frames=3)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "windows of 3 frames, 10 frames in 2 clips, rain mixed"
    assert lines[1].split() == ["all", "still", "camera", "moving", "camera", "(PSNR", "capped", "at", "60", "dB)"]
    scores = {line[:22].strip(): float(line[22:].split()[0]) for line in lines[2:]}
    assert list(scores) == ["rainy", "median, align none", "minimum, align none", "median, align flow",
                            "minimum, align flow", "median, align camera", "minimum, align camera",
                            "median, align layered", "minimum, align layered"]
    # Rain adds light and falls afresh in every frame: the darkest of the aligned frames holds less of it.
    assert scores["minimum, align camera"] > scores["rainy"] + 1.0
    assert scores["minimum, align layered"] > scores["rainy"] + 1.0
