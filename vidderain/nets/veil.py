"""The veil estimate: how much grey haze heavy rain left over a whole derained frame.

Heavy rain veils a scene: the many drops too small or too far to see as streaks
scatter light, and the frame looks as if seen through grey haze,
`veiled = (1 - h) * frame + h * A` for a haze strength h and an atmospheric light A
(the model `vidderain.data.synth` draws its haze from). A network that derains in
tiles sees too little of the frame to tell a veil from a pale scene, and keeps it
(models/README.md). This small network reads the whole frame twice, shrunk to
thumbnails: as it came in and as the network derained it. What the network took
away says how heavy the rain was, which is what tells a veil from a scene's own
haze (light rain does not veil); the derained thumbnail shows the veil without
streaks. It returns the veil's `offset` (h * A) and `light` (A); lifting it,
`(derained - offset) * light / (light - offset)`, is the same for every pixel, so
it runs on the reassembled frame, after the tiles, without seams.

A veil adds `offset` to every pixel, so no pixel of a veiled frame is darker than
it: the estimate is capped at the derained thumbnail's darkest value (a frame with a
black pixel has no veil to lift). Shrinking by averaging keeps that bound, since a
veil commutes with an average.
"""

from __future__ import annotations

import keras
from keras import layers, ops

THUMBNAIL = 128  # px, the side of the square thumbnails the estimate reads
MAX_HAZE = 0.6  # the largest haze strength h the estimate returns (the synthesizer draws up to 0.6)
LIGHT = (0.5, 1.0)  # the atmospheric light A it returns lies in this range


def build_veil(size: int = THUMBNAIL, name: str = "veil", bound: bool = True) -> keras.Model:
    """Build the veil estimate: thumbnails (N, size, size, 6) in [0, 1] -> (offset, light), shape (N, 2).

    The six channels are the frame's RGB thumbnail as it came in, then the derained
    frame's. Four strided 3x3 convolutions (16, 32, 64, 64 filters) with their features'
    mean and maximum, and each channel's minimum, mean and maximum, feed two dense layers.
    The haze strength is a linear output clipped to [0, MAX_HAZE] (a ReLU), so "no veil"
    is exactly 0, and the offset is capped at the derained thumbnail's darkest value.

    `bound=False` leaves out the clip and the cap, for training: both pass no gradient where
    they hold. Trained through them, or through a sigmoid in place of the clip, the estimate
    died in trial runs (every thumbnail "no veil", or every one the most haze, left to the
    cap). Neither adds weights, so the trained weights go into a bounded copy unchanged.
    """
    thumbnails = keras.Input((size, size, 6), name=f"{name}_thumbnails")
    x = thumbnails
    for i, filters in enumerate((16, 32, 64, 64)):
        x = layers.Conv2D(filters, 3, strides=2, padding="same", activation="relu", name=f"{name}_conv{i}")(x)
    darkest = ops.min(thumbnails, axis=(1, 2))
    features = layers.Concatenate(name=f"{name}_features")([
        layers.GlobalAveragePooling2D(name=f"{name}_mean")(x),
        layers.GlobalMaxPooling2D(name=f"{name}_max")(x),
        darkest,
        ops.mean(thumbnails, axis=(1, 2)),
        ops.max(thumbnails, axis=(1, 2)),
    ])
    z = layers.Dense(64, activation="relu", name=f"{name}_dense0")(features)
    z = layers.Dense(32, activation="relu", name=f"{name}_dense1")(z)
    haze = layers.Dense(1, name=f"{name}_haze_raw")(z)
    low, high = LIGHT
    light = layers.Dense(1, activation="sigmoid", name=f"{name}_light_logit")(z)
    light = layers.Rescaling(high - low, offset=low, name=f"{name}_light")(light)
    if bound:
        haze = layers.ReLU(max_value=MAX_HAZE, name=f"{name}_haze")(haze)
        offset = ops.minimum(haze * light, ops.min(darkest[:, 3:], axis=1, keepdims=True))
    else:
        offset = haze * light
    return keras.Model(thumbnails, layers.Concatenate(name=f"{name}_estimate")([offset, light]), name=name)


def copy_veil_weights(source: keras.Model, target: keras.Model) -> None:
    """Copy a veil estimate's weights into another build of it, layer by layer, by name.

    Never by `get_weights()` order: the clip on the haze branch changes the graph's order, so
    a bounded and an unbounded build list the haze and light layers (both 32 -> 1) the other
    way round, and a copy in list order swaps them without an error. The bundled estimates
    before 2026-12-07's fix were saved that way (models/README.md, "The veil estimate").
    """
    for layer in target.layers:
        if layer.weights:
            layer.set_weights(source.get_layer(layer.name).get_weights())


def attach_veil(derain: keras.Model, veil: keras.Model) -> keras.Model:
    """The two networks in one model, for one file: (frame, thumbnails) -> (derained frame, veil estimate).

    They run apart (the network on tiles, the estimate once per frame on its thumbnails
    before and after), so the model only holds them; `split_veil` takes them out again.
    """
    frame = keras.Input(derain.inputs[0].shape[1:], name="frame")
    thumbnails = keras.Input(veil.inputs[0].shape[1:], name="thumbnails")
    return keras.Model([frame, thumbnails], [derain(frame), veil(thumbnails)], name=f"{derain.name}_and_veil")


def split_veil(model: keras.Model) -> tuple[keras.Model, keras.Model | None]:
    """Return (derain network, veil estimate) of a model built by `attach_veil`; (model, None) for any other."""
    if len(model.inputs) != 2:
        return model, None
    nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    veils = [m for m in nested if tuple(m.outputs[0].shape[1:]) == (2,)]
    networks = [m for m in nested if m not in veils]
    if len(veils) != 1 or len(networks) != 1:
        raise ValueError(f"Expected a derain network and a veil estimate inside {model.name}. "
                         f"Received: {[m.name for m in nested]}")
    return networks[0], veils[0]
