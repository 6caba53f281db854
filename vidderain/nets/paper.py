"""The network of "Image De-raining using Deconvolutional Neural Networks", layer for layer.

Four 2x2 convolutions (64, 128, 256, 512 filters, stride 1, ReLU), 2x2 average
pooling after the 2nd, 3rd and 4th, then unpool (2x upsampling), deconv 512,
unpool, deconv 256, unpool, deconv 128, deconv 3 (2x2 transposed convolutions,
ReLU). It predicts the clean image directly. The last ReLU is capped at 1 so the
output stays a valid image; that adds no parameters.
"""

from __future__ import annotations

import keras
from keras import layers

STRIDE = 8  # three 2x2 poolings


def build_paper(channels: int = 3, name: str = "paper") -> keras.Model:
    """Build the paper's network on inputs of any size that is a multiple of 8.

    Args:
        channels: int. Colour channels in and out. Defaults to 3.
        name: str. Model name, also the prefix of every layer name. Defaults to "paper".

    Returns:
        A `keras.Model` mapping float32 NHWC images in [0, 1] to derained images in [0, 1].
    """
    if channels < 1:
        raise ValueError(f"`channels` must be at least 1. Received: channels={channels}")
    inputs = keras.Input((None, None, channels), name=f"{name}_input")
    x = inputs
    for i, filters in enumerate((64, 128, 256, 512), start=1):
        x = layers.Conv2D(filters, 2, padding="same", activation="relu", name=f"{name}_conv{i}")(x)
        if i >= 2:
            x = layers.AveragePooling2D(2, name=f"{name}_pool{i - 1}")(x)
    for i, filters in enumerate((512, 256, 128), start=1):
        x = layers.UpSampling2D(2, name=f"{name}_unpool{i}")(x)
        x = layers.Conv2DTranspose(filters, 2, padding="same", activation="relu", name=f"{name}_deconv{i}")(x)
    x = layers.Conv2DTranspose(channels, 2, padding="same", name=f"{name}_deconv4")(x)
    outputs = layers.ReLU(max_value=1.0, name=f"{name}_output")(x)
    return keras.Model(inputs, outputs, name=name)
