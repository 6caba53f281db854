"""The veil estimate: its bound, the lift, the engine running it, saving it with a network, training it."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from vidderain.veil import NEGLIGIBLE, Veil, lift, thumbnails

runner = CliRunner()


def _veiled(image, haze, light):
    from vidderain.data.veil import veil

    return veil(image, haze, light)


def _fixed_veil(haze: float, light: float, size: int = 32):
    """A veil estimate whose haze and light are `haze` and `light` whatever it reads (before its bound)."""
    from vidderain.nets.veil import LIGHT, build_veil

    net = build_veil(size)
    share = (light - LIGHT[0]) / (LIGHT[1] - LIGHT[0])
    for name, value in (("veil_haze_raw", haze), ("veil_light_logit", np.log(share / (1 - share)))):
        layer = net.get_layer(name)
        kernel, bias = layer.get_weights()
        layer.set_weights([np.zeros_like(kernel), np.full_like(bias, value)])
    return net


def _identity_network():
    import keras

    inputs = keras.Input((None, None, 3))
    return keras.Model(inputs, keras.layers.ReLU(max_value=1.0)(inputs), name="identity")


def test_lift_undoes_a_veil(make_natural_image):
    clean = make_natural_image(40, 56, seed=1)
    veiled = _veiled(clean, 0.3, 0.8)
    assert np.abs(veiled - clean).max() > 0.1
    np.testing.assert_allclose(lift(veiled, Veil(offset=0.3 * 0.8, light=0.8)), clean, atol=1e-5)
    assert Veil(0.24, 0.8).haze == pytest.approx(0.3)


def test_a_negligible_veil_leaves_the_frame_as_it_is(make_natural_image):
    frame = make_natural_image(24, 24)
    assert lift(frame, Veil(NEGLIGIBLE * 0.9, 0.8)) is frame
    assert not np.array_equal(lift(frame, Veil(NEGLIGIBLE * 2, 0.8)), frame)


def test_the_estimate_never_exceeds_the_darkest_derained_pixel(make_natural_image):
    net = _fixed_veil(haze=0.2, light=0.9)
    pale = 0.3 + 0.6 * make_natural_image(32, 32, seed=3)  # nowhere darker than 0.3
    dark = pale.copy()
    dark[5:9, 5:9] = 0.05  # a dark patch the size of a few thumbnail pixels
    offsets = np.asarray(net.predict_on_batch(np.stack([
        np.concatenate([pale, pale], axis=2),
        np.concatenate([pale, dark], axis=2),  # dark once derained: the cap reads the derained half
        np.concatenate([dark, pale], axis=2),
    ])))[:, 0]
    assert offsets[0] == pytest.approx(0.2 * 0.9, abs=1e-4)  # below the cap: the estimate itself
    assert offsets[1] == pytest.approx(0.05, abs=1e-4)  # capped at the darkest derained value
    assert offsets[2] == pytest.approx(0.2 * 0.9, abs=1e-4)


def test_the_engine_lifts_each_whole_frame_after_its_tiles(make_natural_image):
    from vidderain.engine import Engine, TileSettings

    net = _fixed_veil(haze=0.25, light=0.8)
    clean = 0.2 + 0.8 * make_natural_image(96, 136, seed=4)
    veiled = _veiled(clean, 0.25, 0.8)
    tiled = Engine(_identity_network(), 8, TileSettings(tile=48, overlap=16, batch=3), veil=net)
    out = tiled.process(veiled)
    # Through the identity network, the result is the whole frame's lift: the same gain and offset everywhere.
    np.testing.assert_allclose(out, np.clip(clean, 0, 1), atol=2e-3)
    plain = Engine(_identity_network(), 8, TileSettings(tile=48, overlap=16, batch=3))
    np.testing.assert_allclose(plain.process(veiled), veiled, atol=1e-5)


def test_a_veil_estimate_needs_a_single_frame_network():
    import keras

    from vidderain.engine import Engine

    inputs = keras.Input((None, None, 9))
    window = keras.Model(inputs, keras.layers.Conv2D(3, 1)(inputs))
    with pytest.raises(ValueError, match="single RGB frames"):
        Engine(window, 8, veil=_fixed_veil(0.2, 0.8))


def test_a_model_file_carries_its_veil_estimate(trained_model, tmp_path, make_natural_image, make_rainy):
    import keras

    from vidderain.engine import Engine, TileSettings
    from vidderain.models import load_model, save_model
    from vidderain.nets.veil import attach_veil

    net = _fixed_veil(haze=0.2, light=0.85)
    path = tmp_path / "veiled.keras"
    save_model(attach_veil(trained_model.model, net), path, {**trained_model.metadata, "veil": {"thumbnail": 32}})
    loaded = load_model(path)
    assert loaded.veil is not None and loaded.model.inputs[0].shape[-1] == 3
    assert load_model(trained_model.path).veil is None
    frame = np.clip(0.15 + 0.85 * make_rainy(make_natural_image(64, 96, seed=5)), 0, 1)
    engine = Engine(loaded.model, loaded.stride, TileSettings(tile=0), veil=loaded.veil)
    # The file's model holds both networks: derain the frame with it, then estimate from the thumbnails.
    both = keras.saving.load_model(path, compile=False, safe_mode=True)
    derained = np.asarray(both.predict_on_batch([frame[None], np.zeros((1, 32, 32, 6), np.float32)])[0])[0]
    seen = thumbnails(frame, derained, 32)
    offset, light = np.asarray(both.predict_on_batch([frame[None], seen[None]])[1])[0]
    assert offset == pytest.approx(0.2 * 0.85, abs=1e-4)
    np.testing.assert_allclose(engine.process(frame), lift(derained, Veil(float(offset), float(light))), atol=1e-4)
    assert loaded.metadata["veil"] == {"thumbnail": 32}


def test_veil_thumbnails_are_veiled_only_in_heavy_rain(make_natural_image):
    from vidderain.data.veil import VeilBatches, VeilSettings, make_thumbnails

    pairs = [(np.clip(make_natural_image(48, 64, seed=i) + 0.02, 0, 1), make_natural_image(48, 64, seed=i))
             for i in range(3)]
    derained = []

    def derain(frame):
        derained.append(frame)
        return np.clip(frame - 0.02, 0, 1)

    settings = VeilSettings(size=16, draws=3, windows=2)
    thumbs = make_thumbnails(pairs, derain, np.random.default_rng(0), settings)
    assert len(derained) == 3 * (2 + 3)  # each pair's two sides and three draws, once each
    assert thumbs.own.shape == (3 * 2 * 2, 16, 16, 6)  # rainy and clean, two windows each
    assert thumbs.synthetic.shape == (3 * 3 * 2, 16, 16, 6) and thumbs.veils.shape == (18, 2)
    whole = thumbs.own[0]  # the first window is the whole image, before and after deraining
    np.testing.assert_allclose(whole[..., 3:], thumbnails(pairs[0][0], np.clip(pairs[0][0] - 0.02, 0, 1), 16)[..., 3:])
    batches = VeilBatches(thumbs, batch=32, steps=4, seed=1)
    inputs, veils = batches[2]
    again, _ = batches[2]
    np.testing.assert_array_equal(inputs, again)
    assert inputs.shape == (32, 16, 16, 6) and veils.shape == (32, 2)
    # Rain never heavy enough (above -1 dB): nothing is veiled.
    never = make_thumbnails(pairs, derain, np.random.default_rng(0), VeilSettings(size=16, draws=3, heavy=(-1.0, -2.0)))
    assert not never.veils.any()
    # Any rain heavy enough (below 100 dB): about `share` of the draws are veiled, before deraining: no
    # rainy thumbnail is darker than its veil's offset.
    always = make_thumbnails(pairs * 10, derain, np.random.default_rng(0),
                             VeilSettings(size=16, draws=3, windows=1, heavy=(100.0, 99.0), share=0.5))
    veiled = always.veils[:, 1] > 0
    assert 0.3 < veiled.mean() < 0.7
    assert (always.synthetic[veiled][..., :3].min(axis=(1, 2, 3)) >= always.veils[veiled, 0] - 1e-6).all()
    lights = always.veils[veiled, 0] / always.veils[veiled, 1]
    assert (lights >= 0.6 - 1e-6).all() and (lights <= 1.0 + 1e-6).all()  # VeilSettings.light
    inputs, veils = VeilBatches(always, batch=64, steps=1, seed=1, own=0.0)[0]
    assert (veils[:, 1] > 0).any() and (veils[:, 1] == 0).any()


@pytest.mark.parametrize("field,value", [("share", 1.5), ("heavy", (20.0, 26.0)), ("haze", (0.2, 1.0)), ("size", 0)])
def test_veil_settings_that_cannot_work_are_refused(field, value):
    from vidderain.data.veil import VeilSettings
    from vidderain.errors import ParameterError

    with pytest.raises(ParameterError, match=field):
        VeilSettings(**{field: value}).check()


def _write_pairs(root, make_natural_image, make_rainy, count=10):
    for folder in ("rain", "norain"):
        (root / folder).mkdir(parents=True)
    for i in range(count):
        clean = make_natural_image(40, 56, seed=200 + i)
        for folder, image in (("rain", make_rainy(clean, seed=i)), ("norain", clean)):
            Image.fromarray(np.round(image * 255).astype(np.uint8)).save(root / folder / f"{i}.png")
    return root


def test_train_veil_adds_an_estimate_that_folder_runs(trained_model_path, tmp_path, make_natural_image, make_rainy):
    from vidderain.cli import app
    from vidderain.models import load_model

    data = _write_pairs(tmp_path / "pairs", make_natural_image, make_rainy)
    out = tmp_path / "veiled.keras"
    result = runner.invoke(app, ["train-veil", str(data), "--model", str(trained_model_path), "--out", str(out),
                                 "--steps", "3", "--val-split", "0.2"])
    assert result.exit_code == 0, result.output
    assert "validation" in result.output and "without" in result.output
    loaded = load_model(out)
    assert loaded.veil is not None
    with zipfile.ZipFile(out) as archive:
        metadata = json.loads(archive.read("vidderain.json"))
    assert metadata["veil"]["training"]["steps"] == 3 and metadata["veil"]["val_pairs"] == 2
    assert metadata["arch"] == "default" and metadata["widths"] == load_model(trained_model_path).metadata["widths"]
    np.testing.assert_array_equal(loaded.model.get_weights()[0], load_model(trained_model_path).model.get_weights()[0])

    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(np.round(make_natural_image(48, 64, seed=9) * 255).astype(np.uint8)).save(images / "a.png")
    result = runner.invoke(app, ["folder", str(images), str(tmp_path / "out"), "--model", str(out)])
    assert result.exit_code == 0, result.output
    assert "veil" in result.output
    assert (tmp_path / "out" / "a.png").is_file()


def test_train_veil_refuses_a_temporal_model_in_one_line(temporal_model_path, tmp_path, make_natural_image, make_rainy):
    from vidderain.cli import app

    data = _write_pairs(tmp_path / "pairs", make_natural_image, make_rainy, count=2)
    result = runner.invoke(app, ["train-veil", str(data), "--model", str(temporal_model_path),
                                 "--out", str(tmp_path / "x.keras")])
    assert result.exit_code != 0
    assert "single-frame" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "x.keras").exists()


def test_a_bounded_copy_keeps_each_layer_s_weights_where_they_were():
    # The haze and light heads are both 32 -> 1 layers, listed in the other order by a bounded and an
    # unbounded build: a copy in list order would swap them silently.
    from vidderain.nets.veil import build_veil, copy_veil_weights

    unbounded = build_veil(32, bound=False)
    for name, kernel, bias in (("veil_haze_raw", 0.01, 0.1), ("veil_light_logit", 0.0, -2.0)):
        unbounded.get_layer(name).set_weights([np.full((32, 1), kernel, np.float32), np.full((1,), bias, np.float32)])
    bounded = build_veil(32)
    copy_veil_weights(unbounded, bounded)
    for layer in unbounded.layers:
        for got, want in zip(bounded.get_layer(layer.name).get_weights(), layer.get_weights()):
            np.testing.assert_array_equal(got, want)
    thumbs = np.full((1, 32, 32, 6), 0.5, np.float32)  # darkest 0.5: the cap does not bind
    np.testing.assert_allclose(bounded.predict(thumbs, verbose=0), unbounded.predict(thumbs, verbose=0), atol=1e-6)


def test_train_veil_with_no_steps_carries_the_start_s_estimate_over(trained_model_path, tmp_path, make_natural_image,
                                                                    make_rainy):
    from vidderain.cli import app
    from vidderain.models import load_model, read_metadata, save_model
    from vidderain.nets.veil import attach_veil

    base = load_model(trained_model_path)
    source = tmp_path / "with-veil.keras"
    save_model(attach_veil(base.model, _fixed_veil(0.2, 0.8)), source, dict(base.metadata))
    data = _write_pairs(tmp_path / "pairs", make_natural_image, make_rainy, count=4)
    out = tmp_path / "carried.keras"
    result = runner.invoke(app, ["train-veil", str(data), "--model", str(trained_model_path), "--start", str(source),
                                 "--steps", "0", "--out", str(out), "--val-split", "0.5"])
    assert result.exit_code == 0, result.output
    carried, start = load_model(out).veil, load_model(source).veil
    for layer in start.layers:
        for got, want in zip(carried.get_layer(layer.name).get_weights(), layer.get_weights()):
            np.testing.assert_array_equal(got, want)
    assert read_metadata(out)["veil"]["start"]["file"] == "with-veil.keras"
    assert "carried the veil estimate of with-veil.keras over" in result.output

    result = runner.invoke(app, ["train-veil", str(data), "--model", str(trained_model_path), "--steps", "0",
                                 "--out", str(tmp_path / "x.keras")])
    assert result.exit_code != 0 and "--start" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["train-veil", str(data), "--model", str(trained_model_path), "--start",
                                 str(trained_model_path), "--out", str(tmp_path / "x.keras")])
    assert result.exit_code != 0 and "with a veil estimate" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "x.keras").exists()
