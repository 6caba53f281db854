"""`vidderain train`: pairing rules, learning, checkpoints and resume, export, synthesized rain."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from vidderain.cli import app
from vidderain.errors import InputError
from vidderain.io.images import write_image
from vidderain.data.pairs import find_folders, pair_files
from vidderain.pixels import to_integer

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def make_pairs(root, make_natural_image, make_rainy, count=16, rainy="rain", clean="norain", size=(72, 88)):
    (root / rainy).mkdir(parents=True)
    (root / clean).mkdir(parents=True)
    for i in range(count):
        scene = make_natural_image(*size, seed=i)
        write_image(root / clean / f"{i}.png", to_integer(scene))
        write_image(root / rainy / f"{i}.png", to_integer(make_rainy(scene, seed=i)))
    return root


def read_log(out):
    with open(out.with_name(out.stem + ".run") / "log.csv") as f:
        return list(csv.DictReader(f))


# Pairing -------------------------------------------------------------------------------


@pytest.mark.parametrize("rainy,clean", [("rain", "norain"), ("rainy", "clean"), ("input", "target"),
                                         ("rainy_image", "ground_truth")])
def test_folder_names_people_use_are_found(tmp_path, rainy, clean):
    (tmp_path / rainy).mkdir()
    (tmp_path / clean).mkdir()
    assert find_folders(tmp_path) == (tmp_path / rainy, tmp_path / clean)


def test_pairs_by_identical_name_and_by_rain1400_suffix(tmp_path):
    for folder in ("rain", "norain"):
        (tmp_path / folder).mkdir()
    for name in ("a.png", "12_1.jpg", "12_2.jpg"):
        (tmp_path / "rain" / name).touch()
    for name in ("a.png", "12.jpg"):
        (tmp_path / "norain" / name).touch()
    pairs = pair_files(tmp_path / "rain", tmp_path / "norain")
    assert [(r.name, c.name) for r, c in pairs] == [("12_1.jpg", "12.jpg"), ("12_2.jpg", "12.jpg"), ("a.png", "a.png")]


def test_unpaired_files_are_named_in_the_error(tmp_path):
    for folder in ("rain", "norain"):
        (tmp_path / folder).mkdir()
    (tmp_path / "rain" / "a.png").touch()
    (tmp_path / "rain" / "orphan.png").touch()
    (tmp_path / "norain" / "a.png").touch()
    (tmp_path / "norain" / "widow.png").touch()
    with pytest.raises(InputError, match="orphan.png.*widow.png"):
        pair_files(tmp_path / "rain", tmp_path / "norain")


# Training ------------------------------------------------------------------------------


@pytest.mark.slow
def test_loss_falls_over_30_steps(tmp_path, make_natural_image, make_rainy):
    data = make_pairs(tmp_path / "data", make_natural_image, make_rainy)
    out = tmp_path / "m.keras"
    # `unet`: the narrower U-Net learns fastest in 30 steps (the wider `default` needs more).
    result = invoke("train", data, "--out", out, "--arch", "unet", "--steps", 30, "--batch", 4, "--patch", 64,
                    "--warmup", 5, "--val-every", 30)
    assert result.exit_code == 0, result.output
    losses = [float(row["loss"]) for row in read_log(out)]
    assert len(losses) == 30
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5])


@pytest.mark.slow
def test_interrupted_run_resumes_to_where_an_uninterrupted_one_ends(tmp_path, make_natural_image, make_rainy):
    from vidderain.data.patches import load_training_data
    from vidderain.train.trainer import Trainer, TrainSettings

    data = make_pairs(tmp_path / "data", make_natural_image, make_rainy)
    settings = TrainSettings(steps=10, batch=4, patch=32, warmup=3, val_every=4, seed=3)
    # float32 on both sides: the Trainer below runs at its default precision.
    options = ["--steps", 10, "--batch", 4, "--patch", 32, "--warmup", 3, "--val-every", 4, "--seed", 3,
               "--precision", "float32"]
    straight = tmp_path / "straight.keras"
    assert invoke("train", data, "--out", straight, *options).exit_code == 0

    def interrupt_at_step_6(progress):
        if progress.step == 6:
            raise KeyboardInterrupt

    loaded = load_training_data(data, val_split=0.1, seed=3)
    split = tmp_path / "split.keras"
    trainer = Trainer(settings, loaded.train, loaded.val, split, "test pairs", on_progress=interrupt_at_step_6)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    assert [int(r["step"]) for r in read_log(split)] == list(range(1, 7))
    state = json.loads((split.with_name("split.run") / "checkpoint" / "state.json").read_text())
    assert state["step"] == 6

    resumed = invoke("train", data, "--out", split, "--resume", "--precision", "float32")  # the run's own 10 steps
    assert resumed.exit_code == 0, resumed.output
    assert [int(r["step"]) for r in read_log(split)] == list(range(1, 11))
    straight_losses = [float(r["loss"]) for r in read_log(straight)]
    split_losses = [float(r["loss"]) for r in read_log(split)]
    np.testing.assert_allclose(split_losses, straight_losses, rtol=1e-3)


@pytest.mark.slow
def test_a_stop_right_after_an_update_resumes(tmp_path, make_natural_image, make_rainy, monkeypatch):
    # A signal is delivered between Python bytecodes: here, just after step 4's update was applied
    # and before the loop counted it. The checkpoint must say step 4, or --resume refuses it.
    from vidderain.train.distribution import Distribution

    real = Distribution.make_train_step

    def stopping_after_4(self, model):
        step = real(self, model)

        def run(x, y):
            loss = step(x, y)
            if int(np.asarray(model.optimizer.iterations)) == 4:
                raise KeyboardInterrupt
            return loss
        return run

    data = make_pairs(tmp_path / "data", make_natural_image, make_rainy, count=6)
    out = tmp_path / "m.keras"
    options = ["--steps", 6, "--batch", 2, "--patch", 32, "--val-every", 3, "--precision", "float32"]
    monkeypatch.setattr(Distribution, "make_train_step", stopping_after_4)
    stopped = invoke("train", data, "--out", out, *options)
    assert stopped.exit_code == 130 and "checkpoint of step 4" in stopped.output, stopped.output
    monkeypatch.setattr(Distribution, "make_train_step", real)
    resumed = invoke("train", data, "--out", out, "--resume", "--precision", "float32")
    assert resumed.exit_code == 0, resumed.output
    assert "trained 6 steps" in resumed.output
    assert [int(r["step"]) for r in read_log(out)][-2:] == [5, 6]


@pytest.mark.slow
def test_finished_run_extends_with_resume_and_more_steps(tmp_path, make_natural_image, make_rainy):
    data = make_pairs(tmp_path / "data", make_natural_image, make_rainy)
    out = tmp_path / "m.keras"
    assert invoke("train", data, "--out", out, "--steps", 6, "--batch", 2, "--patch", 32, "--val-every", 3).exit_code == 0
    result = invoke("train", data, "--out", out, "--steps", 9, "--resume")
    assert result.exit_code == 0, result.output
    assert [int(r["step"]) for r in read_log(out)] == list(range(1, 10))
    assert "trained 9 steps" in result.output
    for again in (["--steps", 9], ["--steps", 5], []):  # nothing left to train: said in one line, the run untouched
        result = invoke("train", data, "--out", out, "--resume", *again)
        assert result.exit_code == 2, result.output
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and ("step 9" in lines[0] or "its 9 steps" in lines[0]), lines
    assert [int(r["step"]) for r in read_log(out)] == list(range(1, 10))


def test_resume_without_a_checkpoint_is_a_clear_error(tmp_path, make_natural_image, make_rainy):
    data = make_pairs(tmp_path / "data", make_natural_image, make_rainy, count=2)
    result = invoke("train", data, "--out", tmp_path / "m.keras", "--resume")
    assert result.exit_code == 2
    assert "no checkpoint to resume from" in result.output


@pytest.mark.slow
def test_exported_model_carries_metadata_and_runs_through_folder(tmp_path, make_natural_image, make_rainy):
    from vidderain.models import load_model, read_metadata

    data = make_pairs(tmp_path / "data", make_natural_image, make_rainy)
    out = tmp_path / "m.keras"
    assert invoke("train", data, "--out", out, "--steps", 4, "--batch", 2, "--patch", 32, "--val-every", 2).exit_code == 0
    meta = read_metadata(out)
    assert meta["arch"] == "default" and meta["stride"] == 8
    assert meta["val_pairs"] == 2 and len(meta["val_files"]) == 2
    assert meta["val_psnr"] > 0 and 0 < meta["val_ssim"] <= 1
    assert meta["training"]["loss"] == "charbonnier"
    assert meta["data"] == "data: 14 training pairs, 2 validation pairs"  # the data set's name, not its path
    assert load_model(out).model.inputs[0].shape[-1] == 3
    run = out.with_name("m.run")
    assert (run / "curve.png").is_file() and (run / "samples.png").is_file()
    result = invoke("folder", data / "rain", tmp_path / "derained", "--model", out)
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "derained").iterdir())) == 16


@pytest.mark.slow
def test_paper_network_trains_too(tmp_path, make_natural_image, make_rainy):
    data = make_pairs(tmp_path / "data", make_natural_image, make_rainy, count=4)
    out = tmp_path / "p.keras"
    result = invoke("train", data, "--out", out, "--arch", "paper", "--steps", 3, "--batch", 2, "--patch", 32,
                    "--val-split", 0.25, "--val-every", 3)
    assert result.exit_code == 0, result.output
    from vidderain.models import read_metadata

    assert read_metadata(out)["arch"] == "paper"


def test_a_validation_split_that_leaves_nothing_to_train_on_is_one_line(tmp_path, make_natural_image, make_rainy):
    data = make_pairs(tmp_path / "data", make_natural_image, make_rainy, count=2)
    result = invoke("train", data, "--out", tmp_path / "m.keras", "--val-split", 0.9, "--steps", 2)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip() and not line.startswith("loading")]
    assert lines == ["error: --val-split must be small enough to leave images to train on (it would hold out all 2). "
                     "Received: --val-split=0.9"]
    assert not (tmp_path / "m.keras").exists()


@pytest.mark.slow
def test_synthesize_trains_from_clean_images_alone(tmp_path, make_natural_image):
    clean = tmp_path / "clean_only"
    clean.mkdir()
    for i in range(6):
        write_image(clean / f"{i}.png", to_integer(make_natural_image(64, 80, seed=i)))
    out = tmp_path / "s.keras"
    result = invoke("train", clean, "--out", out, "--synthesize", "--steps", 4, "--batch", 2, "--patch", 32,
                    "--val-split", 0.34, "--val-every", 4)
    assert result.exit_code == 0, result.output
    from vidderain.models import read_metadata

    meta = read_metadata(out)
    assert meta["synthesized_rain"] is True
    assert meta["val_pairs"] == 2


@pytest.mark.slow
def test_synthesize_takes_clean_frames_from_videos(tmp_path):
    import subprocess

    from vidderain.io.video import ffmpeg_exe
    from vidderain.models import read_metadata

    clean = tmp_path / "footage"
    clean.mkdir()
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=s=96x64:r=25:d=2",
                    "-pix_fmt", "yuv420p", str(clean / "walk.mp4")], check=True)
    out = tmp_path / "v.keras"
    result = invoke("train", clean, "--out", out, "--synthesize", "--steps", 2, "--batch", 2, "--patch", 32,
                    "--val-split", 0.25, "--val-every", 2)
    assert result.exit_code == 0, result.output
    meta = read_metadata(out)
    assert (meta["train_pairs"], meta["val_pairs"]) == (36, 12)  # 48 of its 50 frames
    assert all(name.startswith("walk.mp4#") for name in meta["val_files"])


def test_settings_are_refused_by_their_parameter_name_in_the_library():
    from vidderain.errors import ParameterError
    from vidderain.train.trainer import TrainSettings

    with pytest.raises(ParameterError) as caught:
        TrainSettings(patch=30).check()
    assert caught.value.parameter == "patch"
    assert str(caught.value) == "patch must be a multiple of 8 for default. Received: patch=30"
    assert caught.value.worded("--patch") == "--patch must be a multiple of 8 for default. Received: --patch=30"


def test_the_run_folder_is_named_in_one_place(tmp_path):
    from vidderain.train.checkpoint import run_folder
    from vidderain.train.trainer import Trainer, TrainSettings

    trainer = Trainer(TrainSettings(steps=1), [], [], tmp_path / "rain.keras", "")
    assert trainer.run_dir == run_folder(tmp_path / "rain.keras") == tmp_path / "rain.run"


def test_bad_settings_are_refused_with_the_value(tmp_path, make_natural_image, make_rainy):
    data = make_pairs(tmp_path / "data", make_natural_image, make_rainy, count=2)
    result = invoke("train", data, "--out", tmp_path / "m.keras", "--patch", 30)
    assert result.exit_code == 2
    assert "multiple of 8" in result.output and "30" in result.output
    result = invoke("train", data, "--out", tmp_path / "m.keras", "--loss", "hinge")
    assert result.exit_code == 2
    assert "hinge" in result.output


@pytest.mark.slow
def test_each_leg_records_the_precision_it_ran_at(tmp_path, make_natural_image, make_rainy):
    from vidderain.cli.info import _precisions
    from vidderain.models import read_metadata

    data = make_pairs(tmp_path / "data", make_natural_image, make_rainy, count=4)
    out = tmp_path / "m.keras"
    options = ["--batch", 2, "--patch", 32, "--warmup", 1, "--val-split", 0]
    assert invoke("train", data, "--out", out, "--steps", 3, "--precision", "float32", *options).exit_code == 0
    resumed = invoke("train", data, "--out", out, "--steps", 5, "--resume", "--precision", "bfloat16")
    assert resumed.exit_code == 0, resumed.output
    assert "in bfloat16 (asked for)" in resumed.output
    assert [row["precision"] for row in read_log(out)] == ["float32"] * 3 + ["bfloat16"] * 2
    metadata = read_metadata(out)
    assert [(leg["from_step"], leg["precision"]) for leg in metadata["legs"]] == [(0, "float32"), (3, "bfloat16")]
    assert _precisions(metadata) == " (steps 0-3 in float32, steps 3-5 in bfloat16)"


@pytest.mark.slow
def test_a_resumed_run_keeps_its_data_settings_and_says_what_it_ignores(tmp_path, make_natural_image, make_rainy):
    data = make_pairs(tmp_path / "data", make_natural_image, make_rainy, count=10)
    out = tmp_path / "m.keras"
    first = invoke("train", data, "--out", out, "--steps", 2, "--batch", 2, "--patch", 32, "--warmup", 1,
                   "--val-split", "0.2", "--val-every", 2, "--precision", "float32")
    assert first.exit_code == 0, first.output
    resumed = invoke("train", data, "--out", out, "--steps", 4, "--resume", "--val-split", "0.5", "--rain-mix", "0.5",
                     "--precision", "float32")
    assert resumed.exit_code == 0, resumed.output
    assert "ignored with --resume, the run keeps what it started with: --rain-mix 0.5, --val-split 0.5" in resumed.output
    assert "8 training pairs, 2 validation pairs" in resumed.output  # the run's own split, not 5 + 5


def test_restart_lr_needs_resume(tmp_path, make_natural_image, make_rainy):
    data = make_pairs(tmp_path / "data", make_natural_image, make_rainy, count=4)
    result = invoke("train", data, "--out", tmp_path / "m.keras", "--restart-lr", "1e-4")
    assert result.exit_code == 2 and "--restart-lr needs --resume" in result.output


@pytest.mark.slow
def test_init_starts_from_a_trained_model_of_the_same_network(tmp_path, make_natural_image, make_rainy):
    from vidderain.models import load_model, read_metadata

    data = make_pairs(tmp_path / "data", make_natural_image, make_rainy, count=8)
    first = tmp_path / "first.keras"
    common = ["--batch", 2, "--patch", 32, "--warmup", 0, "--val-split", "0.25", "--precision", "float32"]
    assert invoke("train", data, "--out", first, "--steps", 4, "--val-every", 4, *common).exit_code == 0
    tuned = tmp_path / "tuned.keras"
    result = invoke("train", data, "--out", tuned, "--init", first, "--steps", 1, "--val-every", 1, "--lr", "1e-9", *common)
    assert result.exit_code == 0, result.output
    assert "warning" not in result.output  # same validation pairs as the model it starts from
    start, after = load_model(first).model.get_weights(), load_model(tuned).model.get_weights()
    assert all(np.allclose(a, b, atol=1e-6) for a, b in zip(start, after))  # one step at lr 1e-9 from first's weights
    assert read_metadata(tuned)["training"]["init"] == "first.keras"  # its name, not its path
    assert read_metadata(tuned)["val_psnr"] == pytest.approx(read_metadata(first)["val_psnr"], abs=0.01)

    other = invoke("train", data, "--out", tmp_path / "paper.keras", "--arch", "paper", "--init", first,
                   "--steps", 1, "--batch", 2, "--patch", 32, "--val-split", "0.5")
    assert other.exit_code == 2
    assert "first.keras did not hold out 2 of this run's 4 validation pairs" in other.output
    assert other.output.strip().splitlines()[-1].endswith("--init needs a model of the same architecture")
    missing = invoke("train", data, "--out", tmp_path / "x.keras", "--init", tmp_path / "nosuch.keras")
    assert missing.exit_code == 2 and "nosuch.keras" in missing.output and "Traceback" not in missing.output


@pytest.mark.slow
def test_a_temporal_network_can_start_from_a_single_frame_model_of_the_same_body(tmp_path, make_natural_image,
                                                                                  make_rainy):
    from vidderain.models import load_model

    data = make_pairs(tmp_path / "data", make_natural_image, make_rainy, count=6, size=(64, 64))
    common = ["--batch", 2, "--patch", 32, "--warmup", 0, "--val-split", 0.34, "--precision", "float32"]
    single = tmp_path / "single.keras"
    first = invoke("train", data, "--out", single, "--arch", "unet", "--steps", 2, "--val-every", 2, *common)
    assert first.exit_code == 0, first.output
    out = tmp_path / "t.keras"
    result = invoke("train", data, "--out", out, "--arch", "temporal-3", "--init", single, "--steps", 1,
                    "--val-every", 1, "--lr", "1e-9", *common)
    assert result.exit_code == 0, result.output
    start, tuned = load_model(single).model, load_model(out).model
    kernel = tuned.get_layer("temporal-3_enc0_conv1").get_weights()[0]
    np.testing.assert_allclose(kernel[:, :, 3:6], start.get_layer("unet_enc0_conv1").get_weights()[0], atol=1e-6)
    assert np.abs(kernel[:, :, :3]).max() < 1e-6 and np.abs(kernel[:, :, 6:]).max() < 1e-6  # neighbours: zeros
    np.testing.assert_allclose(tuned.get_layer("temporal-3_rain").get_weights()[0],
                               start.get_layer("unet_rain").get_weights()[0], atol=1e-6)

    wide = invoke("train", data, "--out", tmp_path / "w.keras", "--arch", "temporal-wide", "--init", single,
                  "--steps", 1, *common)
    assert wide.exit_code == 2 and "Traceback" not in wide.output
    assert wide.output.strip().splitlines()[-1].endswith("or a single-frame one of the same body")


def test_a_temporal_network_trains_on_clips_and_records_its_window(tmp_path, make_natural_image, make_rainy):
    from vidderain.models import load_model
    from vidderain.temporal import WindowSpec

    data = make_pairs(tmp_path / "data", make_natural_image, make_rainy, count=6, size=(64, 64))
    out = tmp_path / "t.keras"
    result = invoke("train", data, "--out", out, "--arch", "temporal-3", "--steps", 2, "--batch", 2, "--patch", 32,
                    "--warmup", 1, "--val-every", 2, "--val-split", 0.34)
    assert result.exit_code == 0, result.output
    loaded = load_model(out)
    assert WindowSpec.from_metadata(loaded.metadata) == WindowSpec(3, align="camera")
    assert loaded.model.inputs[0].shape[-1] == 9
    assert loaded.metadata["val_psnr"] > 0  # validated on a clip of each held-out image
    assert loaded.metadata["training"]["motion"] == "parallax"
    bad = invoke("train", data, "--out", tmp_path / "u.keras", "--arch", "temporal-3", "--motion", "shaky")
    assert bad.exit_code == 2 and "Traceback" not in bad.output
    assert bad.output.strip().splitlines()[-1] == "error: --motion must be one of parallax, gentle. Received: --motion='shaky'"
