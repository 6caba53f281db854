"""vidderain's temporal network: a residual U-Net over a window of video frames.

Rain is the one thing in a video that is never in the same place twice: a streak
lasts a frame or two while the scene stays. The network sees the centre frame and
its neighbours, stacked on channels (RGB of frame t-K, ..., t, ..., t+K, the
neighbours warped onto the centre frame beforehand when the model aligns them, see
`vidderain.temporal`), predicts the rain layer of the centre frame, and subtracts it
from the centre frame. The U-Net body is the single-frame network's; only the first
convolution reads more channels. With one frame it is the single-frame control that
measures what the neighbours add. `start_from_single_frame` starts one from a trained
single-frame network of the same body.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
from keras import layers

from vidderain.nets.unet import unet_body


def build_temporal_unet(
    frames: int = 5,
    widths: Sequence[int] = (32, 64, 128, 256),
    blocks: int = 2,
    name: str = "temporal",
) -> keras.Model:
    """Build a residual U-Net that derains the centre of `frames` RGB frames stacked on channels.

    Args:
        frames: int. Frames in the window, odd: the centre and (frames - 1) / 2 on each side. Defaults to 5.
        widths: sequence of int. Filters at each scale, full resolution first. Defaults to (32, 64, 128, 256).
        blocks: int. 3x3 convolutions per scale in the encoder and in the decoder. Defaults to 2.
        name: str. Model name, also the prefix of every layer name. Defaults to "temporal".

    Returns:
        A `keras.Model` mapping float32 NHW(3*frames) windows in [0, 1] to the derained centre
        frame, NHW3 in [0, 1].
    """
    if frames < 1 or frames % 2 == 0:
        raise ValueError(f"`frames` must be odd and positive. Received: frames={frames}")
    inputs = keras.Input((None, None, 3 * frames), name=f"{name}_input")
    # The centre frame's channels, picked by a fixed 1x1 convolution (Keras has no slicing
    # layer that loads in safe mode); exact in float32: ones and zeros.
    pick = np.zeros((1, 1, 3 * frames, 3), np.float32)
    centre_index = frames // 2
    for c in range(3):
        pick[0, 0, 3 * centre_index + c, c] = 1.0
    centre = layers.Conv2D(3, 1, use_bias=False, trainable=False, kernel_initializer=keras.initializers.Constant(pick),
                           name=f"{name}_centre")(inputs)
    x = unet_body(inputs, widths, blocks, name)
    rain = layers.Conv2D(3, 3, padding="same", name=f"{name}_rain")(x)
    derained = layers.Subtract(name=f"{name}_subtract")([centre, rain])
    outputs = layers.ReLU(max_value=1.0, name=f"{name}_output")(derained)
    return keras.Model(inputs, outputs, name=name)


def start_from_single_frame(network: keras.Model, single: keras.Model) -> None:
    """Give a temporal network the weights of a single-frame network with the same body.

    Every layer takes the weights of the single-frame layer of the same name (after each
    model's own prefix). The first convolution reads the centre frame with the single-frame
    kernel and every neighbour with zeros, so `network` computes what `single` computes on
    the centre frame, whatever the neighbours, until training teaches it to use them.

    Args:
        network: keras.Model. A temporal network (`build_temporal_unet`), changed in place.
        single: keras.Model. A single-frame network of the same widths and blocks
            (`vidderain.nets.unet.build_unet`).

    Raises:
        ValueError: `single` is not a single-frame network of the same body, named in the message.
    """
    frames = network.inputs[0].shape[-1] // 3
    if single.inputs[0].shape[-1] != 3:
        raise ValueError(f"{single.name} reads {single.inputs[0].shape[-1]} channels, not one RGB frame")
    sources = {layer.name.removeprefix(single.name): layer for layer in single.layers if layer.weights}
    targets = {layer.name.removeprefix(network.name): layer for layer in network.layers
               if layer.weights and layer.trainable}  # the fixed centre-frame pick is not learned
    if sources.keys() != targets.keys():
        raise ValueError(f"{single.name} and {network.name} have different layers "
                         f"({', '.join(sorted(sources.keys() ^ targets.keys())[:3])})")
    centre = 3 * (frames // 2)
    for suffix, target in targets.items():
        weights = []
        for want, have in zip(target.get_weights(), sources[suffix].get_weights()):
            if want.shape == have.shape:
                weights.append(have)
            elif want.ndim == 4 and want.shape[:2] + want.shape[3:] == have.shape[:2] + have.shape[3:] \
                    and want.shape[2] == 3 * frames and have.shape[2] == 3:
                widened = np.zeros_like(want)
                widened[:, :, centre:centre + 3, :] = have
                weights.append(widened)
            else:
                raise ValueError(f"{single.name} and {network.name} differ in layer {suffix.lstrip('_')} "
                                 f"({have.shape} against {want.shape})")
        target.set_weights(weights)
