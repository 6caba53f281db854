"""Specification of vidderain.engine: tiled, batched inference that matches whole-frame inference."""

import math

import keras
import numpy as np
import pytest

from vidderain.engine import (
    Engine,
    TileSettings,
    check_settings,
    pad_frame,
    plan_tiles,
    tile_origins,
    tile_side,
    tile_weights,
)
from vidderain.metrics import psnr
from vidderain.nets import ARCHITECTURES


class RecordingModel(keras.Model):
    """Runs `inner` and records the shape of every batch the engine hands it."""

    def __init__(self, inner: keras.Model):
        super().__init__()
        self.inner = inner
        self.batch_shapes: list[tuple[int, ...]] = []

    def call(self, x):
        return self.inner(x)

    def predict_on_batch(self, x):
        self.batch_shapes.append(tuple(x.shape))
        return super().predict_on_batch(x)


def identity_model() -> keras.Model:
    inputs = keras.Input((None, None, 3))
    return keras.Model(inputs, keras.layers.Identity()(inputs))


def paper_with_visible_output() -> keras.Model:
    """The paper network with random weights, its last layer scaled so outputs average about 0.5.

    Freshly initialised, its outputs all lie below about 0.01, where any seam would
    hide; scaling one layer keeps every nonlinearity and the whole receptive field.
    """
    keras.utils.set_random_seed(0)
    model = ARCHITECTURES["paper"].build()
    probe = model.predict_on_batch(np.full((1, 64, 64, 3), 0.5, np.float32))
    last = model.get_layer("paper_deconv4")
    kernel, bias = last.get_weights()
    gain = 0.5 / float(probe.mean())
    last.set_weights([kernel * gain, bias * gain])
    return model


# Tile plan ----------------------------------------------------------------------------


@pytest.mark.parametrize("length", [256, 264, 384, 1088, 1920])
@pytest.mark.parametrize(("tile", "overlap"), [(192, 32), (128, 16), (256, 48), (64, 32)])
def test_tile_origins_lie_on_the_stride_and_cover_the_canvas(length, tile, overlap):
    origins = tile_origins(length, tile, overlap, stride=8)
    assert origins[0] == 0 and origins[-1] + tile == length
    assert all(o % 8 == 0 for o in origins)
    for left, right in zip(origins, origins[1:]):
        assert left < right
        assert left + tile - right >= overlap  # neighbours share at least `overlap` pixels


def test_one_tile_covers_a_canvas_no_larger_than_it():
    assert tile_origins(192, 192, 32, 8) == [0]


def test_blend_weights_sum_to_one_across_an_exact_overlap():
    tile, overlap = 64, 16
    origins = [0, tile - overlap, 2 * (tile - overlap)]
    weights = tile_weights(origins, tile, overlap)
    total = np.zeros(origins[-1] + tile)
    for origin, w in zip(origins, weights):
        assert w.min() >= 0
        total[origin : origin + tile] += w
    np.testing.assert_allclose(total, 1.0, atol=1e-6)


def test_blend_weights_ramp_without_a_hard_cut():
    w = tile_weights([0, 96, 192], 128, 32)[1]
    assert np.all(np.diff(w[:32]) >= 0) and np.all(np.diff(w[-32:]) <= 0)
    assert w[0] < 0.01 and w[-1] < 0.01 and np.all(w[32:-32] == 1)
    assert np.abs(np.diff(w)).max() < 0.2  # a cut would jump by 0.5 or 1


def test_a_lone_tile_weighs_one_everywhere():
    (w,) = tile_weights([0], 64, 16)
    np.testing.assert_array_equal(w, 1.0)


def test_pad_frame_mirrors_at_bottom_and_right():
    frame = np.arange(6, dtype=np.float32).reshape(2, 3, 1)
    padded = pad_frame(frame, 4, 5)
    np.testing.assert_array_equal(padded[:2, :3], frame)
    np.testing.assert_array_equal(padded[2, :3, 0], frame[0, :, 0])  # row 2 mirrors row 0 about row 1
    np.testing.assert_array_equal(padded[:2, 3, 0], frame[:, 1, 0])


def test_pad_frame_repeats_a_single_pixel_side():
    padded = pad_frame(np.full((1, 1, 3), 0.25, np.float32), 8, 8)
    assert padded.shape == (8, 8, 3)
    np.testing.assert_array_equal(padded, 0.25)


# Settings -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        (TileSettings(tile=100), "tile=100"),
        (TileSettings(tile=-8), "tile=-8"),
        (TileSettings(tile=64, overlap=40), "overlap=40"),
        (TileSettings(tile=64, overlap=-1), "overlap=-1"),
        (TileSettings(batch=0), "batch=0"),
    ],
)
def test_impossible_settings_are_refused_naming_the_value(settings, match):
    with pytest.raises(ValueError, match=match):
        check_settings(settings, stride=8)


@pytest.mark.parametrize(
    "frame",
    [np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.float32), np.zeros((8, 8, 4), np.float32),
     np.zeros((0, 8, 3), np.float32)],
    ids=["uint8", "gray", "rgba", "empty"],
)
def test_frames_that_are_not_float_rgb_with_pixels_are_refused(frame):
    with pytest.raises(ValueError, match="Received"):
        Engine(identity_model(), 8, TileSettings(tile=0)).process(frame)


# Any size in, same size out -----------------------------------------------------------------


ODD_SIZES = [(1, 1), (1, 7), (7, 1), (13, 17), (255, 257), (50, 100), (130, 70)]


@pytest.mark.parametrize("size", ODD_SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("tile", [0, 64], ids=["whole", "tile64"])
def test_any_size_comes_out_the_same_size_float32_in_zero_one(trained_model, make_natural_image, make_rainy, size, tile):
    frame = make_rainy(make_natural_image(*size, seed=sum(size)), seed=1)
    out = Engine(trained_model.model, 8, TileSettings(tile=tile, overlap=16)).process(frame)
    assert out.shape == frame.shape
    assert out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0


@pytest.mark.parametrize("size", ODD_SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("tile", [0, 64], ids=["whole", "tile64"])
def test_identity_network_gives_back_the_frame_whatever_its_size(make_natural_image, size, tile):
    # Padding, tiling, blending and cropping together must add nothing of their own.
    frame = make_natural_image(*size, seed=2)
    out = Engine(identity_model(), 8, TileSettings(tile=tile, overlap=16, batch=3)).process(frame)
    np.testing.assert_allclose(out, frame, atol=1e-6)


def test_saturated_frame_stays_within_one_after_blending():
    # All-white in, all-white out: overlapping tiles must blend back to exactly 1, not above.
    frame = np.ones((200, 300, 3), np.float32)
    out = Engine(identity_model(), 8, TileSettings(tile=64, overlap=24)).process(frame)
    assert out.max() <= 1.0
    np.testing.assert_allclose(out, 1.0, atol=1e-6)


def test_frame_smaller_than_a_tile_is_run_whole(trained_model, make_natural_image, make_rainy):
    frame = make_rainy(make_natural_image(120, 96, seed=3), seed=3)
    tiled = Engine(trained_model.model, 8, TileSettings(tile=192)).process(frame)
    whole = Engine(trained_model.model, 8, TileSettings(tile=0)).process(frame)
    np.testing.assert_allclose(tiled, whole, atol=1e-6)


def test_input_frame_is_not_modified(trained_model, make_natural_image):
    frame = make_natural_image(64, 64, seed=4)
    before = frame.copy()
    Engine(trained_model.model, 8, TileSettings(tile=32, overlap=8)).process(frame)
    np.testing.assert_array_equal(frame, before)


def test_same_input_gives_the_same_output_bits(trained_model, make_natural_image):
    frame = make_natural_image(100, 140, seed=5)
    engine = Engine(trained_model.model, 8, TileSettings(tile=64, overlap=16))
    np.testing.assert_array_equal(engine.process(frame), engine.process(frame))


# Batching across frames ---------------------------------------------------------------------------


FRAME_SIZES = {"a": (40, 40), "b": (20, 20), "c": (100, 70), "d": (1, 1), "e": (64, 64)}


def frames_of_several_sizes(make_natural_image):
    return [(key, make_natural_image(*size, seed=i)) for i, (key, size) in enumerate(FRAME_SIZES.items())]


def test_frames_of_different_sizes_come_back_in_order_with_their_keys(trained_model, make_natural_image):
    frames = frames_of_several_sizes(make_natural_image)
    engine = Engine(trained_model.model, 8, TileSettings(tile=32, overlap=8, batch=4))
    results = list(engine.run(iter(frames)))
    assert [key for key, _ in results] == list(FRAME_SIZES)
    for (_, frame), (_, out) in zip(frames, results):
        assert out.shape == frame.shape


def test_a_frame_sharing_batches_equals_that_frame_alone(trained_model, make_natural_image):
    frames = frames_of_several_sizes(make_natural_image)
    engine = Engine(trained_model.model, 8, TileSettings(tile=32, overlap=8, batch=4))
    for (_, frame), (_, out) in zip(frames, engine.run(frames)):
        np.testing.assert_allclose(out, engine.process(frame), atol=1e-5)


@pytest.mark.parametrize("tile", [0, 32], ids=["whole", "tile32"])
def test_batch_size_does_not_change_results(trained_model, make_natural_image, tile):
    frames = frames_of_several_sizes(make_natural_image)
    one = Engine(trained_model.model, 8, TileSettings(tile=tile, overlap=8, batch=1)).run(frames)
    four = Engine(trained_model.model, 8, TileSettings(tile=tile, overlap=8, batch=4)).run(frames)
    for (key1, out1), (key4, out4) in zip(one, four, strict=True):
        assert key1 == key4
        np.testing.assert_allclose(out1, out4, atol=1e-5)


def test_ensemble_averages_each_frame_with_its_mirror_image_in_order(trained_model, make_natural_image):
    frames = frames_of_several_sizes(make_natural_image)
    plain = Engine(trained_model.model, 8, TileSettings(tile=32, overlap=8, batch=4))
    ensemble = Engine(trained_model.model, 8, TileSettings(tile=32, overlap=8, batch=4, ensemble=True))
    results = list(ensemble.run(iter(frames)))
    assert [key for key, _ in results] == list(FRAME_SIZES)
    for (_, frame), (_, out) in zip(frames, results):
        straight = plain.process(frame)
        mirrored = plain.process(np.ascontiguousarray(frame[:, ::-1]))[:, ::-1]
        np.testing.assert_allclose(out, (straight + mirrored) / 2, atol=1e-5)
    _, big = frames[2]  # 100x70: the network is not mirror-symmetric, so the two passes differ
    assert np.abs(dict(results)["c"] - plain.process(big)).max() > 1e-3


def test_frames_of_one_size_share_one_batch_shape_and_the_last_batch_is_padded(make_natural_image):
    model = RecordingModel(identity_model())
    frames = [(i, make_natural_image(64, 64, seed=i)) for i in range(3)]
    list(Engine(model, 8, TileSettings(tile=32, overlap=8, batch=4)).run(frames))
    # Canvas 64 with tiles of at most 32 and overlap 8: 3 tiles of 32 per axis (origins 0, 24, 32).
    tiles = 3 * 3 * 3
    assert set(model.batch_shapes) == {(4, 32, 32, 3)}  # the last, short batch is padded, not retraced
    assert len(model.batch_shapes) == math.ceil(tiles / 4)


class TraceCountingModel(keras.Model):
    """Runs `inner`, counting how often its Python `call` runs: once per trace of a compiled function."""

    def __init__(self, inner: keras.Model):
        super().__init__()
        self.inner = inner
        self.traces = 0

    def call(self, x):
        self.traces += 1
        return self.inner(x)


def test_frames_of_one_size_are_traced_once_however_many_go_through(trained_model, make_natural_image):
    model = TraceCountingModel(trained_model.model)
    engine = Engine(model, 8, TileSettings(tile=64, overlap=16, batch=4))
    # 100x150 -> canvas 104x152 -> 2 x 3 tiles of 64x64: two frames fill three batches exactly.
    frames = [make_natural_image(100, 150, seed=i) for i in range(7)]
    list(engine.run(enumerate(frames[:2])))
    traced = model.traces
    assert traced >= 1
    # Five more frames, 30 tiles: seven full batches and a short one, which must keep the shape.
    list(engine.run(enumerate(frames[2:])))
    assert model.traces == traced
    # The counter does see a retrace: a batch of another shape traces the function again.
    model.predict_on_batch(np.zeros((2, 64, 64, 3), np.float32))
    assert model.traces > traced


@pytest.mark.parametrize(("length", "tile", "side"), [(1088, 1024, 560), (1920, 1024, 976), (360, 1024, 360),
                                                       (640, 0, 640), (1024, 1024, 1024), (1032, 1024, 536)])
def test_tiles_are_the_fewest_equal_ones_covering_the_canvas(length, tile, side):
    assert tile_side(length, tile, 32, 8) == side


@pytest.mark.parametrize("length", range(8, 2000, 56))
@pytest.mark.parametrize(("tile", "overlap"), [(192, 32), (256, 48), (1024, 32), (64, 32)])
def test_balanced_tiles_fit_the_limit_on_the_stride_and_need_no_more_tiles_than_the_limit(length, tile, overlap):
    side = tile_side(length, tile, overlap, 8)
    assert side % 8 == 0 and side <= min(tile, length)
    fewest = 1 if length <= tile else math.ceil((length - overlap) / (tile - overlap))
    assert len(tile_origins(length, side, overlap, 8)) == fewest


def test_a_side_shorter_than_the_tile_is_run_whole_at_its_padded_length(make_natural_image):
    model = RecordingModel(identity_model())
    frames = [(i, make_natural_image(20, 150, seed=i)) for i in range(3)]  # one video: one shape
    list(Engine(model, 8, TileSettings(tile=64, overlap=16, batch=4)).run(frames))
    assert set(model.batch_shapes) == {(4, 24, 64, 3)}


def test_whole_frames_of_one_size_share_batches(make_natural_image):
    model = RecordingModel(identity_model())
    frames = [(i, make_natural_image(30, 50, seed=i)) for i in range(5)]
    results = list(Engine(model, 8, TileSettings(tile=0, batch=2)).run(frames))
    assert [key for key, _ in results] == list(range(5))
    assert model.batch_shapes == [(2, 32, 56, 3)] * 3  # padded to the stride; the last batch padded too


def test_results_stream_out_before_the_input_ends(make_natural_image):
    # A video is longer than memory: the first frame must come out while later ones are unread.
    read = []

    def frames():
        for i in range(10):
            read.append(i)
            yield i, make_natural_image(16, 16, seed=i)

    results = Engine(identity_model(), 8, TileSettings(tile=0, batch=2)).run(frames())
    key, _ = next(results)
    assert key == 0
    assert len(read) < 10


# Seamless tiling -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rainy_full_hd(make_natural_image, make_rainy):
    return make_rainy(make_natural_image(1080, 1920, seed=0), seed=0)


@pytest.mark.slow
def test_tiled_equals_whole_frame_for_the_trained_default_network(trained_model, rainy_full_hd):
    whole = Engine(trained_model.model, 8, TileSettings(tile=0, batch=1)).process(rainy_full_hd)
    tiled = Engine(trained_model.model, 8, TileSettings(tile=192)).process(rainy_full_hd)
    assert psnr(whole, rainy_full_hd) < 35  # the network changes the frame: seams would show
    assert psnr(tiled, whole) >= 50


@pytest.mark.slow
def test_tiled_equals_whole_frame_for_the_paper_network(rainy_full_hd):
    model = paper_with_visible_output()
    whole = Engine(model, 8, TileSettings(tile=0, batch=1)).process(rainy_full_hd)
    tiled = Engine(model, 8, TileSettings(tile=192)).process(rainy_full_hd)
    assert whole.std() > 0.05  # a textured output, not a flat one in which seams would hide
    assert psnr(tiled, whole) >= 50


def test_a_huge_image_is_still_cut_into_tiles_of_the_default_limit():
    plan = plan_tiles(10_000, 10_000, TileSettings(), stride=8)
    assert (plan.tile_height, plan.tile_width) == (944, 944) and plan.count == 11 * 11
    assert plan_tiles(360, 640, TileSettings(), stride=8).count == 1  # common video frames run whole
