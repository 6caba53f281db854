"""The mean of networks fine-tuned from one start: a "model soup" (Wortsman et al., ICML 2022).

Legs fine-tuned from the same weights stay close to one another, and the mean of their
weights often keeps something of each: the bundled `default` is the mean of a network
that keeps bright curves and a further leg from it that takes rain off dark scenes
(models/README.md, "The dark leg"). Networks trained from different starts do not
average into anything useful; the caller scores the result (`vidderain folder` +
`vidderain eval`, or `vidderain train-veil`, which scores what it saves).
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from vidderain import __version__
from vidderain.models import LoadedModel, file_sha256

# What a mean's metadata cannot take over from the files averaged: their scores and how
# each was trained (listed per file under "averaged" instead).
_PER_FILE = ("val_psnr", "val_ssim", "training", "legs", "step", "wall_seconds", "date", "versions")


def average_models(models: Sequence[LoadedModel]) -> tuple[keras.Model, dict[str, Any]]:
    """Average the weights of two or more files of one network; return the network and its metadata.

    Args:
        models: sequence of LoadedModel. Files of one architecture (the same `arch` and
            weight shapes), without a veil estimate (add one to the mean with `train-veil`).

    Returns:
        (network, metadata): a new keras.Model holding the mean weights, and the first file's
        metadata with its scores and training record replaced by `averaged`, one entry per
        file (its name, SHA-256, step, validation scores and training settings). The
        validation files held out are those every file held out (none recorded if a file
        records none).

    Raises:
        ValueError: fewer than two files, a file with a veil estimate, or files of different networks.
    """
    if len(models) < 2:
        raise ValueError(f"Averaging needs two or more model files. Received: {len(models)}")
    first = models[0]
    for other in models:
        if other.veil is not None:
            raise ValueError(f"{other.path.name} carries a veil estimate; average the networks alone, then add one "
                             "to the mean with `vidderain train-veil`")
        shapes = [w.shape for w in other.model.get_weights()]
        if (other.metadata.get("arch") != first.metadata.get("arch")
                or shapes != [w.shape for w in first.model.get_weights()]):
            raise ValueError(f"{other.path.name} ({other.metadata.get('arch', '?')}) is not the same network as "
                             f"{first.path.name} ({first.metadata.get('arch', '?')})")
    network = keras.models.clone_model(first.model)
    network.set_weights([np.mean(ws, axis=0) for ws in zip(*(m.model.get_weights() for m in models))])
    return network, _metadata(models)


def _metadata(models: Sequence[LoadedModel]) -> dict[str, Any]:
    metadata = {key: value for key, value in models[0].metadata.items() if key not in _PER_FILE}
    held_out = [m.metadata.get("val_files") for m in models]
    metadata.pop("val_files", None)
    if all(names is not None for names in held_out):
        metadata["val_files"] = sorted(set.intersection(*map(set, held_out)))
    metadata["averaged"] = [
        {"file": m.path.name, "sha256": file_sha256(m.path),
         **{key: m.metadata.get(key) for key in ("step", "val_psnr", "val_ssim", "training")}}
        for m in models
    ]
    metadata["versions"] = {"vidderain": __version__, "keras": keras.__version__, "backend": keras.backend.backend()}
    metadata["date"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return metadata
