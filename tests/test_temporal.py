"""Temporal models: windows of frames, their alignment, synthetic clips, and the network."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from vidderain.data.patches import CameraMotion, ClipBatches, synthesize_clip
from vidderain.engine import Engine, TileSettings
from vidderain.errors import ModelError
from vidderain.metrics import psnr
from vidderain.nets import ARCHITECTURES
from vidderain.data.synth import RainSettings
from vidderain.temporal import WindowSpec, WindowStacker, window_indices


def test_window_indices_replicate_the_edges():
    assert window_indices(0, 10, 2) == [0, 0, 0, 1, 2]
    assert window_indices(5, 10, 2) == [3, 4, 5, 6, 7]
    assert window_indices(9, 10, 2) == [7, 8, 9, 9, 9]
    assert window_indices(0, 1, 1) == [0, 0, 0]


def test_a_window_spec_must_be_odd():
    with pytest.raises(ValueError, match="odd"):
        WindowSpec(4)
    with pytest.raises(ValueError, match="align must be one of none, flow, camera"):
        WindowSpec(5, align="homography")


def test_a_model_file_from_before_the_camera_alignment_reads_as_flow_alignment():
    assert WindowSpec.from_metadata({"frames": 5, "align": True}) == WindowSpec(5, align="flow")
    assert WindowSpec.from_metadata({"frames": 5, "align": False}) == WindowSpec(5)
    assert WindowSpec.from_metadata({"frames": 5, "align": "camera"}) == WindowSpec(5, align="camera")
    assert WindowSpec.from_metadata({}) == WindowSpec(1)
    with pytest.raises(ModelError, match="aligns its frames by 'parallax', which this version"):
        WindowSpec.from_metadata({"frames": 5, "align": "parallax"})


def test_unaligned_windows_stack_frames_in_time_order(make_natural_image):
    frames = [make_natural_image(32, 40, seed=i) for i in range(3)]
    stacker = WindowStacker(WindowSpec(3))
    stacked = stacker.stack([stacker.prepare(f) for f in frames])
    assert stacked.shape == (32, 40, 9) and stacked.dtype == np.float32
    for i, frame in enumerate(frames):
        np.testing.assert_array_equal(stacked[:, :, 3 * i : 3 * i + 3], frame)


@pytest.mark.parametrize("align", ["flow", "camera", "layered"])
def test_alignment_puts_a_panned_neighbour_back_on_the_centre_frame(make_natural_image, align):
    scene = make_natural_image(160, 220, seed=3)
    centre, later = scene[20:140, 40:200], scene[20:140, 46:206]  # the camera panned 6 px
    stacker = WindowStacker(WindowSpec(3, align=align))
    prepared = [stacker.prepare(f) for f in (later, centre, later)]
    stacked = stacker.stack(prepared)
    inner = (slice(10, -10), slice(16, -16))  # away from the border the pan uncovers
    unaligned = psnr(later[inner], centre[inner])
    aligned = psnr(stacked[:, :, 0:3][inner], centre[inner])
    assert aligned > unaligned + 10 and aligned > 30
    np.testing.assert_array_equal(stacked[:, :, 3:6], centre)  # the centre frame itself is untouched


def test_camera_alignment_leaves_a_still_cameras_rainy_neighbours_where_they_are(make_natural_image):
    # The rain makes the optical flow noisy; warping by it smears a scene that needed no warp.
    # The camera model averages the noise away: the darkest frame of the window (rain adds
    # light) finds the dry scene again.
    scene = make_natural_image(160, 160, seed=4)
    still = CameraMotion(still_probability=1.0, object_probability=0.0)
    rain = RainSettings(density=(0.01, 0.01), haze_probability=0.0)
    rainy, clean = synthesize_clip(scene, np.random.default_rng(1), 5, 128, rain, still)
    fused = {}
    for align in ("flow", "camera", "layered"):
        stacker = WindowStacker(WindowSpec(5, align=align))
        window = stacker.stack([stacker.prepare(frame) for frame in rainy])
        fused[align] = psnr(window.reshape(128, 128, 5, 3).min(axis=2), clean[2])
        if align != "flow":
            assert psnr(window[:, :, 0:3], rainy[0]) > 40  # (almost) not warped at all
    assert fused["camera"] > fused["flow"] + 2, fused
    assert fused["layered"] > fused["flow"] + 2, fused


def test_clip_rain_changes_every_frame_while_the_still_scene_stays(make_natural_image):
    scene = make_natural_image(120, 120, seed=1)
    still = CameraMotion(still_probability=1.0, object_probability=0.0)
    rain = RainSettings(density=(0.004, 0.004), haze_probability=0.0)
    rainy, clean = synthesize_clip(scene, np.random.default_rng(0), 5, 64, rain, still)
    assert len(rainy) == len(clean) == 5
    for frame in clean[1:]:
        np.testing.assert_array_equal(frame, clean[0])
    streaks = [r - c for r, c in zip(rainy, clean)]
    assert all(s.max() > 0.1 for s in streaks)
    assert not np.array_equal(streaks[0] > 0.05, streaks[1] > 0.05)  # fresh streaks, not the same ones


def test_a_moving_camera_films_different_views(make_natural_image):
    scene = make_natural_image(200, 200, seed=2)
    moving = CameraMotion(still_probability=0.0, speed=6.0, object_probability=0.0)
    _, clean = synthesize_clip(scene, np.random.default_rng(4), 3, 64, RainSettings(), moving)
    assert not np.allclose(clean[0], clean[2])


def test_a_near_layer_moves_apart_from_the_scene_so_one_camera_motion_cannot_align_both(make_natural_image):
    # Parallax: what is near a moving camera moves faster than what is far. Aligning the clean
    # frames by the camera's motion undoes a plain pan; with a near layer it must leave a part
    # misaligned, as hand-held footage does and temporal models have to cope with.
    scene, sprite = make_natural_image(240, 240, seed=5), make_natural_image(240, 240, seed=6)
    flat = CameraMotion(still_probability=0.0, speed=6.0, zoom=0.0, rotation=0.0, shake=0.0, object_probability=0.0,
                        parallax_probability=0.0)
    near = dataclasses.replace(flat, parallax_probability=1.0)
    misaligned = {}
    for align in ("camera", "layered"):
        stacker = WindowStacker(WindowSpec(5, align=align))
        residuals = {}
        for name, motion in (("flat", flat), ("near", near)):
            _, clean = synthesize_clip(scene, np.random.default_rng(1), 5, 128, RainSettings(), motion, sprite)
            window = stacker.stack([stacker.prepare(frame) for frame in clean])
            inner = (slice(24, -24), slice(24, -24))  # away from what the pan uncovers
            residuals[name] = np.abs(window[:, :, 0:3] - clean[2])[inner].mean(axis=2)
        assert residuals["flat"].mean() < 0.01
        misaligned[align] = (residuals["near"] > 0.05).mean()
    assert 0.03 < misaligned["camera"] < 0.9, misaligned  # a part of the frame, not all of it
    # The layered alignment also follows the near layer, as far as it is larger than its smoothing.
    assert misaligned["layered"] < 0.5 * misaligned["camera"], misaligned


def test_clip_batches_are_windows_with_their_clean_centre(make_natural_image):
    scenes = [make_natural_image(100, 120, seed=i) for i in range(3)]
    batches = ClipBatches(scenes, batch=3, patch=32, steps=4, spec=WindowSpec(5, "camera"), rain=RainSettings(), seed=2)
    windows, targets = batches[1]
    assert windows.shape == (3, 32, 32, 15) and targets.shape == (3, 32, 32, 3)
    again = ClipBatches(scenes, batch=3, patch=32, steps=4, spec=WindowSpec(5, "camera"), rain=RainSettings(), seed=2)
    np.testing.assert_array_equal(again[1][0], windows)  # a pure function of (seed, index)


def test_temporal_network_derains_the_centre_of_a_window_through_the_engine():
    arch = ARCHITECTURES["temporal"]
    model = arch.build()
    assert model.inputs[0].shape[-1] == 15 and model.outputs[0].shape[-1] == 3
    window = np.random.default_rng(0).random((40, 56, 15), dtype=np.float32)
    out = Engine(model, arch.stride, TileSettings(tile=32, overlap=8)).process(window)
    assert out.shape == (40, 56, 3) and 0 <= out.min() and out.max() <= 1


def test_single_frame_control_is_the_same_network_on_one_frame():
    control, temporal = ARCHITECTURES["temporal-single"].build(), ARCHITECTURES["temporal"].build()
    assert control.inputs[0].shape[-1] == 3
    # Only the first convolution reads more channels.
    difference = temporal.count_params() - control.count_params()
    assert difference == 12 * 3 * 3 * 32 + 12 * 3  # 12 more input channels into 32 filters, and the fixed centre pick
