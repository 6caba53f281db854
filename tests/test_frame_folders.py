"""`vidderain folder` with a temporal model: each folder's images derained as the frames of a clip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from vidderain.cli import app
from vidderain.io.images import read_image, write_image
from vidderain.pixels import to_float, to_integer

runner = CliRunner()
FRAME_NAMES = [f"frame{i + 1}.png" for i in range(11)]  # in name order frame10 would come before frame2


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def rainy_clip(make_natural_image, make_rainy, count: int, size: tuple[int, int] = (48, 64)) -> list[np.ndarray]:
    """`count` frames of a camera panning 2 px a frame over a scene, fresh rain in each."""
    height, width = size
    scene = make_natural_image(height, width + 2 * count, seed=5)
    return [make_rainy(scene[:, 2 * i : 2 * i + width], seed=100 + i) for i in range(count)]


def write_frames(folder: Path, frames: list[np.ndarray], names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for frame, name in zip(frames, names):
        write_image(folder / name, to_integer(frame))


def expected_results(temporal_model, frames: list[np.ndarray]) -> list[np.ndarray]:
    """What the engine gives each frame of `frames`, in that order, read as one clip (float32 weights)."""
    from vidderain.engine import Engine, TileSettings
    from vidderain.jobs.windows import stack_windows
    from vidderain.temporal import WindowSpec

    engine = Engine(temporal_model.model, temporal_model.stride, TileSettings(overlap=temporal_model.overlap))
    spec = WindowSpec.from_metadata(temporal_model.metadata)
    # The frames as written and read back (8 bits), as the job reads them.
    read_back = [to_float(to_integer(frame)) for frame in frames]
    results = dict(engine.run(stack_windows(enumerate(read_back), spec)))
    return [to_integer(results[i]).astype(int) for i in range(len(frames))]


def window_mean(frames: list[np.ndarray], centre: int, radius: int = 2) -> np.ndarray:
    """The mean of the window of `frames` around `centre`, edges replicated, as 8-bit RGB."""
    from vidderain.temporal import window_indices

    read_back = [to_float(to_integer(frame)) for frame in frames]
    window = [read_back[i] for i in window_indices(centre, len(frames), radius)]
    return to_integer(np.mean(window, axis=0)).astype(int)


def assert_window_means(out: Path, names: list[str], frames: list[np.ndarray]) -> None:
    """Each result `out/names[i]` is the mean of the window around `frames[i]`, to 8-bit rounding."""
    for i, name in enumerate(names):
        assert np.abs(read_image(out / name).astype(int) - window_mean(frames, i)).max() <= 1, name


@pytest.fixture(scope="module")
def window_mean_model_path(tmp_path_factory) -> Path:
    """A temporal model file whose network gives the mean of its 5 unaligned frames: what a job
    feeds it shows in every pixel of the result."""
    import keras

    from vidderain.models import save_model

    inputs = keras.Input((None, None, 15))
    mean = keras.layers.Conv2D(3, 1, use_bias=False, name="mean")
    model = keras.Model(inputs, mean(inputs))
    kernel = np.zeros((1, 1, 15, 3), np.float32)
    for frame in range(5):
        for channel in range(3):
            kernel[0, 0, 3 * frame + channel, channel] = 0.2
    mean.set_weights([kernel])
    path = tmp_path_factory.mktemp("models") / "window-mean.keras"
    save_model(model, path, {"arch": "temporal", "stride": 8, "overlap": 0, "frames": 5, "align": "none"})
    return path


@pytest.fixture
def numbered_frames(tmp_path, make_natural_image, make_rainy):
    """11 frames of a clip, named FRAME_NAMES."""
    frames = rainy_clip(make_natural_image, make_rainy, 11)
    folder = tmp_path / "frames"
    write_frames(folder, frames, FRAME_NAMES)
    return folder, frames


def test_a_folder_of_frames_is_derained_with_each_frames_neighbours_in_number_order(
    numbered_frames, tmp_path, window_mean_model_path
):
    folder, frames = numbered_frames
    out = tmp_path / "out"
    result = invoke("folder", folder, out, "--model", window_mean_model_path)
    assert result.exit_code == 0, result.output
    assert "11 derained, 0 failed, 0 skipped" in result.output
    assert "each folder's images are read as the frames of one clip, in name order" in result.output
    assert_window_means(out, FRAME_NAMES, frames)


def test_a_single_frame_model_says_nothing_of_clips(numbered_frames, tmp_path, trained_model_path):
    folder, _ = numbered_frames
    result = invoke("folder", folder, tmp_path / "out", "--model", trained_model_path)
    assert result.exit_code == 0, result.output
    assert "11 derained" in result.output and "clip" not in result.output


def test_the_temporal_network_derains_a_folder_of_frames_as_the_engine_does_the_clip(
    numbered_frames, tmp_path, temporal_model_path, temporal_model
):
    folder, frames = numbered_frames
    out = tmp_path / "out"
    result = invoke("folder", folder, out, "--model", temporal_model_path, "--precision", "float32")
    assert result.exit_code == 0, result.output
    assert "windows of 5 frames aligned by the camera's motion" in result.output
    for name, want in zip(FRAME_NAMES, expected_results(temporal_model, frames)):
        assert np.abs(read_image(out / name).astype(int) - want).max() <= 1, name


def test_a_rerun_reads_the_finished_frames_as_neighbours_and_writes_what_one_run_would(
    numbered_frames, tmp_path, window_mean_model_path
):
    folder, frames = numbered_frames
    out = tmp_path / "out"
    assert invoke("folder", folder, out, "--model", window_mean_model_path).exit_code == 0
    for name in ("frame5.png", "frame6.png", "frame11.png"):
        (out / name).unlink()
    result = invoke("folder", folder, out, "--model", window_mean_model_path)
    assert result.exit_code == 0, result.output
    assert "3 derained, 0 failed, 8 skipped" in result.output
    assert_window_means(out, FRAME_NAMES, frames)


def test_a_frame_of_another_size_starts_a_clip_and_an_unreadable_one_fails_alone(
    tmp_path, make_natural_image, make_rainy, window_mean_model_path
):
    big = rainy_clip(make_natural_image, make_rainy, 5)
    small = rainy_clip(make_natural_image, make_rainy, 3, size=(40, 56))
    folder = tmp_path / "frames"
    write_frames(folder, big + small, [f"{i:03d}.png" for i in range(8)])
    (folder / "001b.png").write_bytes(b"not an image")  # inside the first clip, in name order
    out = tmp_path / "out"
    result = invoke("folder", folder, out, "--model", window_mean_model_path)
    assert result.exit_code == 1, result.output
    assert "8 derained, 1 failed, 0 skipped" in result.output
    assert "001b.png" in result.output and "Traceback" not in result.output
    assert not (out / "001b.png").exists()
    assert_window_means(out, ["000.png", "001.png", "002.png", "003.png", "004.png"], big)
    assert_window_means(out, ["005.png", "006.png", "007.png"], small)


def test_each_folder_is_its_own_clip(tmp_path, make_natural_image, make_rainy, window_mean_model_path):
    first, second = (rainy_clip(make_natural_image, make_rainy, 3, size=(32, 40 + 8 * k)) for k in range(2))
    second = [frame[:, :40] for frame in second]  # the same size as the first: only the folder tells them apart
    write_frames(tmp_path / "in" / "a", first, ["1.png", "2.png", "3.png"])
    write_frames(tmp_path / "in" / "b", second, ["1.png", "2.png", "3.png"])
    out = tmp_path / "out"
    result = invoke("folder", tmp_path / "in", out, "--recursive", "--model", window_mean_model_path)
    assert result.exit_code == 0, result.output
    assert_window_means(out / "a", ["1.png", "2.png", "3.png"], first)
    assert_window_means(out / "b", ["1.png", "2.png", "3.png"], second)


def test_each_frame_is_reported_once_as_it_is_written(numbered_frames, tmp_path, window_mean_model_path):
    from vidderain.engine import Engine, TileSettings
    from vidderain.jobs.folder import derain_files
    from vidderain.models import load_model
    from vidderain.temporal import WindowSpec

    folder, _ = numbered_frames
    loaded = load_model(window_mean_model_path)
    engine = Engine(loaded.model, loaded.stride, TileSettings(overlap=loaded.overlap))
    todo = [(folder / name, tmp_path / "out" / name) for name in FRAME_NAMES]
    reported = []

    def on_result(result):
        reported.append(result.source.name)
        assert result.destination.is_file()  # reported once written, not before

    results = derain_files(engine, todo, window=WindowSpec.from_metadata(loaded.metadata), on_result=on_result)
    assert reported == FRAME_NAMES and all(result.ok for result in results)
