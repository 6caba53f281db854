"""Lifting heavy rain's veil off a whole derained frame: the thumbnails, the estimate, the lift.

A model file may carry a veil estimate beside its network (`vidderain.nets.veil`).
The engine derains a frame's tiles, reassembles the frame, shrinks it and the
frame as it came in to thumbnails, asks the estimate for the veil's offset and
light, and lifts the veil off the whole frame with the same gain and offset for
every pixel. One estimate per frame, after the tiles: no seams.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    import keras

# An offset under half an 8-bit grey level moves no pixel by as much as that: no veil to lift.
NEGLIGIBLE = 0.5 / 255


@dataclass(frozen=True)
class Veil:
    """A frame's veil: `veiled = frame * (1 - offset / light) + offset`.

    Attributes:
        offset: float. What the veil adds to every pixel (haze strength times light); 0 for none.
        light: float. The atmospheric light, a grey level in (0, 1].
    """

    offset: float
    light: float

    @property
    def haze(self) -> float:
        """The haze strength: the share of each pixel that is the veil's light."""
        return self.offset / self.light


def thumbnail(frame: np.ndarray, size: int) -> np.ndarray:
    """Shrink an HxWx3 float32 frame to size x size by averaging (so a veil's bound survives it)."""
    return cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA)


def thumbnails(rainy: np.ndarray, derained: np.ndarray, size: int) -> np.ndarray:
    """What the veil estimate reads for one frame: its thumbnail as it came in, then derained (size x size x 6)."""
    return np.concatenate([thumbnail(rainy, size), thumbnail(derained, size)], axis=2)


def estimate_veils(veil: "keras.Model", pairs: list[np.ndarray]) -> list[Veil]:
    """Run the veil estimate `veil` once over frames' `thumbnails` (each size x size x 6)."""
    estimates = np.asarray(veil.predict_on_batch(np.stack(pairs)))
    return [Veil(float(offset), float(light)) for offset, light in estimates]


def thumbnail_size(veil: "keras.Model") -> int:
    """The side of the thumbnails `veil` reads."""
    return int(veil.inputs[0].shape[1])


def lift(frame: np.ndarray, veil: Veil) -> np.ndarray:
    """Return float32 `frame` with `veil` lifted off, clipped to [0, 1]; `frame` itself when there is none."""
    if veil.offset < NEGLIGIBLE:
        return frame
    lifted = (frame - np.float32(veil.offset)) * np.float32(veil.light / (veil.light - veil.offset))
    return np.clip(lifted, 0.0, 1.0, out=lifted)
