"""A U-Net of NAFNet-style gated blocks, built from standard Keras layers only.

NAFNet (Chen et al., "Simple Baselines for Image Restoration", ECCV 2022) replaces
the activation functions of a restoration U-Net by a gate: two linear maps of the
features, multiplied. Each block here is

    x + beta  * proj(dw3x3(a(LN(x))) * dw3x3(b(LN(x))))     (spatial mixing)
    x + gamma * proj(c(LN(x)) * d(LN(x)))                  (channel mixing)

with 1x1 convolutions a, b, c, d, proj, depthwise 3x3 convolutions, per-pixel layer
normalisation over the channels, and learnt per-channel scales beta and gamma that
start at zero, so every block starts as the identity. NAFNet splits one 2c-channel
convolution in halves for the gate; two c-channel convolutions compute the same
thing without a slicing layer. NAFNet's channel attention (a global average over
the image) is left out on purpose: a tile would see other statistics than the whole
frame, and tiled results would no longer match whole ones.

As in vidderain's other networks, the model predicts the rain layer and subtracts
it from its input.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers


def _scale(channels: int, name: str):
    # A per-channel learnt scale that starts at zero: a 1x1 depthwise convolution, no bias.
    return layers.DepthwiseConv2D(1, use_bias=False, depthwise_initializer="zeros", name=name)


def gated_block(x, channels: int, name: str):
    """One NAFNet-style block on `x` (NHWC with `channels` channels); returns the same shape."""
    y = layers.LayerNormalization(epsilon=1e-6, name=f"{name}_norm1")(x)
    a = layers.Conv2D(channels, 1, name=f"{name}_a")(y)
    b = layers.Conv2D(channels, 1, name=f"{name}_b")(y)
    a = layers.DepthwiseConv2D(3, padding="same", name=f"{name}_a_dw")(a)
    b = layers.DepthwiseConv2D(3, padding="same", name=f"{name}_b_dw")(b)
    y = layers.Multiply(name=f"{name}_gate1")([a, b])
    y = layers.Conv2D(channels, 1, name=f"{name}_proj1")(y)
    x = layers.Add(name=f"{name}_add1")([x, _scale(channels, f"{name}_beta")(y)])
    y = layers.LayerNormalization(epsilon=1e-6, name=f"{name}_norm2")(x)
    c = layers.Conv2D(channels, 1, name=f"{name}_c")(y)
    d = layers.Conv2D(channels, 1, name=f"{name}_d")(y)
    y = layers.Multiply(name=f"{name}_gate2")([c, d])
    y = layers.Conv2D(channels, 1, name=f"{name}_proj2")(y)
    return layers.Add(name=f"{name}_add2")([x, _scale(channels, f"{name}_gamma")(y)])


def build_gated_unet(
    widths: Sequence[int] = (32, 64, 128, 256),
    encoder_blocks: Sequence[int] = (2, 2, 4),
    middle_blocks: int = 6,
    decoder_blocks: Sequence[int] = (2, 2, 2),
    channels: int = 3,
    name: str = "gated",
) -> keras.Model:
    """Build a residual U-Net of gated blocks on inputs whose sides are multiples of 2**(len(widths)-1).

    Args:
        widths: sequence of int. Channels at each scale, full resolution first. Defaults to (32, 64, 128, 256).
        encoder_blocks: sequence of int. Gated blocks at each scale but the lowest, on the way down.
            Defaults to (2, 2, 4).
        middle_blocks: int. Gated blocks at the lowest scale. Defaults to 6.
        decoder_blocks: sequence of int. Gated blocks at each scale but the lowest, on the way up,
            full resolution first. Defaults to (2, 2, 2).
        channels: int. Colour channels in and out. Defaults to 3.
        name: str. Model name, also the prefix of every layer name. Defaults to "gated".

    Returns:
        A `keras.Model` mapping float32 NHWC images in [0, 1] to derained images in [0, 1].
    """
    widths = tuple(int(w) for w in widths)
    levels = len(widths) - 1
    if levels < 1 or min(widths) < 1:
        raise ValueError(f"`widths` needs two or more positive entries. Received: widths={widths}")
    if len(encoder_blocks) != levels or len(decoder_blocks) != levels:
        raise ValueError(f"`encoder_blocks` and `decoder_blocks` need {levels} entries for widths={widths}. "
                         f"Received: encoder_blocks={tuple(encoder_blocks)}, decoder_blocks={tuple(decoder_blocks)}")
    inputs = keras.Input((None, None, channels), name=f"{name}_input")
    x = layers.Conv2D(widths[0], 3, padding="same", name=f"{name}_intro")(inputs)
    skips = []
    for level in range(levels):
        for i in range(encoder_blocks[level]):
            x = gated_block(x, widths[level], f"{name}_enc{level}_{i}")
        skips.append(x)
        x = layers.Conv2D(widths[level + 1], 2, strides=2, name=f"{name}_down{level}")(x)
    for i in range(middle_blocks):
        x = gated_block(x, widths[-1], f"{name}_mid_{i}")
    for level in range(levels - 1, -1, -1):
        x = layers.Conv2DTranspose(widths[level], 2, strides=2, name=f"{name}_up{level}")(x)
        x = layers.Add(name=f"{name}_skip{level}")([x, skips[level]])
        for i in range(decoder_blocks[level]):
            x = gated_block(x, widths[level], f"{name}_dec{level}_{i}")
    rain = layers.Conv2D(channels, 3, padding="same", name=f"{name}_rain")(x)
    derained = layers.Subtract(name=f"{name}_subtract")([inputs, rain])
    outputs = layers.ReLU(max_value=1.0, name=f"{name}_output")(derained)
    return keras.Model(inputs, outputs, name=name)
