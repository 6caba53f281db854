"""Specification of vidderain.nets: the registered networks, their size and their cost."""

import keras
import numpy as np
import pytest
from keras import layers, ops

from vidderain.nets import ARCHITECTURES, build_paper, build_unet, count_macs, get_architecture

NAMES = sorted(ARCHITECTURES)


@pytest.fixture(scope="module")
def networks():
    keras.utils.set_random_seed(0)
    return {name: ARCHITECTURES[name].build() for name in NAMES}


def test_paper_network_has_the_papers_parameter_count(networks):
    assert networks["paper"].count_params() == 2_396_227


def test_paper_network_costs_428288_multiply_adds_per_pixel(networks):
    assert count_macs(networks["paper"]) == 428_288


def test_default_network_costs_no_more_than_the_paper(networks):
    assert count_macs(networks["default"]) <= count_macs(networks["paper"])


def channels(name: str) -> int:
    """Input channels: RGB, or a temporal network's window of RGB frames stacked on channels."""
    return 3 * ARCHITECTURES[name].frames


@pytest.mark.parametrize("name", NAMES)
def test_network_takes_any_size_and_three_channels_per_frame(networks, name):
    assert tuple(networks[name].inputs[0].shape) == (None, None, None, channels(name))
    assert tuple(networks[name].outputs[0].shape) == (None, None, None, 3)


@pytest.mark.parametrize("name", NAMES)
def test_network_runs_on_a_batch_of_ones(networks, name):
    out = networks[name](ops.ones((2, 64, 64, channels(name))))
    assert tuple(out.shape) == (2, 64, 64, 3)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("height", "width"), [(8, 8), (8, 48), (40, 24), (72, 104)])
def test_output_shape_equals_input_shape_for_multiples_of_the_stride(networks, name, height, width):
    assert height % ARCHITECTURES[name].stride == 0 and width % ARCHITECTURES[name].stride == 0
    out = networks[name].predict_on_batch(np.zeros((1, height, width, channels(name)), np.float32))
    assert out.shape == (1, height, width, 3)


@pytest.mark.parametrize("name", NAMES)
def test_outputs_stay_in_zero_one_even_for_extreme_inputs(networks, name):
    rng = np.random.default_rng(0)
    shape = (32, 32, channels(name))
    batch = np.stack([
        rng.random(shape),
        np.ones(shape),
        np.zeros(shape),
        rng.normal(0.5, 3.0, shape),  # far outside [0, 1]: the clamp must hold anyway
    ]).astype(np.float32)
    out = networks[name].predict_on_batch(batch)
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert out.max() > out.min()  # not a constant image: the range check means something


@pytest.mark.parametrize("name", NAMES)
def test_every_layer_is_named_after_its_network(networks, name):
    assert all(layer.name.startswith(f"{name}_") for layer in networks[name].layers)


@pytest.mark.parametrize("name", NAMES)
def test_sides_off_the_registry_stride_do_not_come_back_whole(networks, name):
    # Why the engine pads to the stride: off it, the network fails or changes the size.
    stride = ARCHITECTURES[name].stride
    side = stride + stride // 2
    try:
        shape = networks[name].predict_on_batch(np.zeros((1, side, stride, channels(name)), np.float32)).shape
    except Exception:  # Keras reports the mismatch at a skip connection as various types
        shape = None
    assert shape != (1, side, stride, 3)


def test_count_macs_of_a_single_convolution():
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, layers.Conv2D(8, 3, padding="same")(inputs))
    assert count_macs(model) == 3 * 3 * 3 * 8


def test_count_macs_of_a_strided_convolution_and_transposed_convolution():
    inputs = keras.Input((None, None, 3))
    down = layers.Conv2D(4, 2, strides=2)(inputs)  # 2*2*3*4 per output pixel, a quarter of the pixels
    up = layers.Conv2DTranspose(3, 2, strides=2)(down)  # 2*2*4*3 per input pixel, a quarter of the pixels
    model = keras.Model(inputs, up)
    assert count_macs(model) == (48 + 48) / 4


def test_unknown_architecture_lists_the_known_ones():
    with pytest.raises(KeyError) as info:
        get_architecture("resnet")
    for name in NAMES:
        assert name in str(info.value)


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: build_unet(widths=(32,)), "widths"),
        (lambda: build_unet(widths=(32, 0)), "widths"),
        (lambda: build_unet(blocks=0), "blocks"),
        (lambda: build_paper(channels=0), "channels"),
    ],
)
def test_builders_refuse_impossible_arguments_naming_them(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_a_temporal_network_started_from_a_single_frame_one_derains_as_it_does_whatever_the_neighbours():
    from vidderain.nets import build_temporal_unet, start_from_single_frame

    keras.utils.set_random_seed(1)
    single = build_unet((8, 16), name="single")
    for layer in single.layers:  # biases away from their zero start, so that copying them is checked too
        layer.set_weights([w + 0.01 * np.random.default_rng(2).standard_normal(w.shape).astype(np.float32)
                           for w in layer.get_weights()])
    temporal = build_temporal_unet(3, widths=(8, 16), name="temporal")
    rng = np.random.default_rng(0)
    centre = rng.random((1, 32, 32, 3), np.float32)
    window = np.concatenate([rng.random((1, 32, 32, 3), np.float32), centre, rng.random((1, 32, 32, 3), np.float32)], 3)
    before = temporal.predict_on_batch(window)
    start_from_single_frame(temporal, single)
    wanted = single.predict_on_batch(centre)
    assert not np.allclose(before, wanted, atol=1e-3)  # random weights did not already agree
    np.testing.assert_allclose(temporal.predict_on_batch(window), wanted, atol=1e-5)
    window[..., :3] = 1.0 - window[..., :3]  # another past frame: the neighbours are read with zeros
    np.testing.assert_allclose(temporal.predict_on_batch(window), wanted, atol=1e-5)


def test_a_temporal_network_refuses_a_single_frame_start_of_another_body():
    from vidderain.nets import build_temporal_unet, start_from_single_frame

    temporal = build_temporal_unet(3, widths=(8, 16), name="temporal")
    with pytest.raises(ValueError, match="different layers"):
        start_from_single_frame(temporal, build_unet((8, 16, 32), name="deeper"))
    with pytest.raises(ValueError, match=r"differ in layer enc0_conv1 \(\(3, 3, 3, 12\) against \(3, 3, 9, 8\)\)"):
        start_from_single_frame(temporal, build_unet((12, 16), name="wider"))
    with pytest.raises(ValueError, match="reads 9 channels, not one RGB frame"):
        start_from_single_frame(temporal, build_temporal_unet(3, widths=(8, 16), name="other"))
