"""The registry of networks vidderain can build, train and run."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import keras

from vidderain.nets.gated import build_gated_unet
from vidderain.nets.paper import STRIDE as PAPER_STRIDE
from vidderain.nets.paper import build_paper
from vidderain.nets.temporal import build_temporal_unet
from vidderain.nets.unet import build_unet


@dataclass(frozen=True)
class Architecture:
    """A network vidderain knows by name.

    Attributes:
        build: callable. Returns a fresh, untrained `keras.Model`.
        stride: int. Input sides must be multiples of this.
        overlap: int. Tile overlap (pixels) that hides tile seams, measured on trained weights.
        description: str. One line for `vidderain models`.
        frames: int. Frames the network reads: 1, or a window of video frames (the centre and
            (frames - 1) / 2 on each side, stacked on channels). Defaults to 1.
        align: str. How the window's neighbours are warped onto the centre frame first: "none",
            "flow", "camera" or "layered" (`vidderain.temporal`). Defaults to "none".
        clips: bool. Trained on synthetic clips (moving camera, rain changing every frame)
            made from the clean images, instead of on the pairs' own rain. Defaults to False.
    """

    build: Callable[[], keras.Model]
    stride: int
    overlap: int
    description: str
    frames: int = 1
    align: str = "none"
    clips: bool = False


ARCHITECTURES: dict[str, Architecture] = {
    "default": Architecture(
        build=lambda: build_unet((48, 96, 192, 384), name="default"),
        stride=8,
        overlap=32,
        description="residual U-Net, widths 48/96/192/384, two 3x3 convolutions per scale (the bundled "
                    "model; `unet-wide` builds the same network)",
    ),
    "unet": Architecture(
        build=lambda: build_unet(name="unet"),
        stride=8,
        overlap=32,
        description="residual U-Net, widths 32/64/128/256, two 3x3 convolutions per scale",
    ),
    "unet-deep": Architecture(
        build=lambda: build_unet((32, 64, 128), blocks=4, name="unet-deep"),
        stride=4,
        overlap=32,
        description="residual U-Net, widths 32/64/128, four 3x3 convolutions per scale",
    ),
    "unet-wide": Architecture(
        build=lambda: build_unet((48, 96, 192, 384), name="unet-wide"),
        stride=8,
        overlap=32,
        description="residual U-Net, widths 48/96/192/384, two 3x3 convolutions per scale",
    ),
    "gated": Architecture(
        build=lambda: build_gated_unet(name="gated"),
        stride=8,
        overlap=32,
        description="residual U-Net of NAFNet-style gated blocks, widths 32/64/128/256",
    ),
    "temporal": Architecture(
        build=lambda: build_temporal_unet(5, name="temporal"),
        stride=8,
        overlap=32,
        description="residual U-Net over 5 video frames, neighbours aligned by the camera's motion",
        frames=5,
        align="camera",
        clips=True,
    ),
    "temporal-layered": Architecture(
        build=lambda: build_temporal_unet(5, name="temporal-layered"),
        stride=8,
        overlap=32,
        description="residual U-Net over 5 video frames, neighbours aligned by the camera's motion and by what "
                    "moves apart from it",
        frames=5,
        align="layered",
        clips=True,
    ),
    "temporal-wide": Architecture(
        build=lambda: build_temporal_unet(5, widths=(48, 96, 192, 384), name="temporal-wide"),
        stride=8,
        overlap=32,
        description="residual U-Net of unet-wide's widths over 5 video frames, aligned as temporal-layered",
        frames=5,
        align="layered",
        clips=True,
    ),
    "temporal-3": Architecture(
        build=lambda: build_temporal_unet(3, name="temporal-3"),
        stride=8,
        overlap=32,
        description="residual U-Net over 3 video frames, neighbours aligned by the camera's motion",
        frames=3,
        align="camera",
        clips=True,
    ),
    "temporal-flow": Architecture(
        build=lambda: build_temporal_unet(5, name="temporal-flow"),
        stride=8,
        overlap=32,
        description="residual U-Net over 5 video frames, neighbours warped by their optical flow",
        frames=5,
        align="flow",
        clips=True,
    ),
    "temporal-unaligned": Architecture(
        build=lambda: build_temporal_unet(5, name="temporal-unaligned"),
        stride=8,
        overlap=32,
        description="residual U-Net over 5 video frames stacked as they are",
        frames=5,
        clips=True,
    ),
    "temporal-single": Architecture(
        build=lambda: build_temporal_unet(1, name="temporal-single"),
        stride=8,
        overlap=32,
        description="the temporal network's single-frame control: one frame, trained on the same clips",
        clips=True,
    ),
    "paper": Architecture(
        build=lambda: build_paper(name="paper"),
        stride=PAPER_STRIDE,
        overlap=32,
        description="the paper's network: 4 convolutions, 3 poolings, 4 transposed convolutions",
    ),
}


def get_architecture(name: str) -> Architecture:
    """Return the registered architecture called `name`.

    Raises:
        KeyError: if no architecture has that name; the message lists the names there are.
    """
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise KeyError(f"Unknown architecture {name!r}; known: {', '.join(ARCHITECTURES)}") from None


def count_macs(model: keras.Model, size: int = 64) -> float:
    """Multiply-adds per input pixel of the convolutions in `model`.

    Args:
        model: keras.Model. A fully convolutional image model.
        size: int. Side of the square input used to read layer shapes; a multiple
            of the model's stride. Defaults to 64.

    Returns:
        Multiply-adds per input pixel (biases and activations not counted).
    """
    probe = keras.Model(model.inputs, [layer.output for layer in model.layers[1:]])
    shapes = [out.shape for out in probe.compute_output_spec(keras.KerasTensor((1, size, size, model.inputs[0].shape[-1])))]
    total = 0.0
    for layer, out_shape in zip(model.layers[1:], shapes):
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            kh, kw, channels, multiplier = layer.kernel.shape
            total += out_shape[1] * out_shape[2] * kh * kw * channels * multiplier
        elif isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv2DTranspose)):
            kh, kw, a, b = layer.kernel.shape
            if isinstance(layer, keras.layers.Conv2DTranspose):
                # Kernel is (kh, kw, out, in); each input pixel scatters kh*kw*in*out.
                in_h, in_w = out_shape[1] // layer.strides[0], out_shape[2] // layer.strides[1]
                total += in_h * in_w * kh * kw * a * b
            else:
                total += out_shape[1] * out_shape[2] * kh * kw * a * b
    return total / (size * size)
