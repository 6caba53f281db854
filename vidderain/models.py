"""Find, save, load and describe vidderain models.

A model file is a standard `.keras` archive with one extra member,
`vidderain.json`, holding what vidderain needs to run it (architecture name,
stride, tile overlap) and what a user wants to know about it (training data,
steps, validation metrics, versions). Models load in Keras safe mode only.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vidderain.errors import ModelError
from vidderain.io.files import atomic_output

if TYPE_CHECKING:
    import keras

METADATA_NAME = "vidderain.json"
MODEL_SUFFIX = ".keras"


@dataclass(frozen=True)
class LoadedModel:
    """A network ready to run, with what the file says about it.

    Attributes:
        model: keras.Model. The network, inputs float32 NHWC RGB in [0, 1].
        stride: int. Input sides must be multiples of this.
        overlap: int. Tile overlap that hides seams for this network.
        metadata: dict. Everything stored in the file's `vidderain.json`.
        path: Path. Where it was loaded from.
    """

    model: "keras.Model"
    stride: int
    overlap: int
    metadata: dict[str, Any]
    path: Path


def bundled_dir() -> Path:
    """The folder holding the bundled models: package data when installed, `models/` in a checkout."""
    installed = Path(str(resources.files("vidderain"))) / "bundled"
    if installed.is_dir():
        return installed
    return Path(__file__).resolve().parent.parent / "models"


def bundled_models() -> dict[str, Path]:
    """Names and paths of the bundled model files, sorted by name."""
    folder = bundled_dir()
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.glob(f"*{MODEL_SUFFIX}"))}


def resolve_model(name_or_path: str | os.PathLike) -> Path:
    """Turn a bundled model name or a path into the path of an existing model file.

    Raises:
        ModelError: nothing by that name or at that path; the message lists the bundled names.
    """
    text = str(name_or_path)
    bundled = bundled_models()
    if text in bundled:
        return bundled[text]
    path = Path(text).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        raise ModelError(f"{path}: is a folder; --model takes a bundled name or a .keras file")
    known = ", ".join(bundled) or "none are installed"
    if path.suffix == MODEL_SUFFIX or os.sep in text:
        raise ModelError(f"{path}: no such model file (bundled models: {known})")
    raise ModelError(
        f"no model named {text!r} (bundled models: {known}); "
        "train one with `vidderain train` or pass a .keras file with --model"
    )


def save_model(model: "keras.Model", path: str | os.PathLike, metadata: dict[str, Any]) -> None:
    """Save `model` with `metadata` to a `.keras` file, atomically.

    Args:
        model: keras.Model. The network to save.
        path: str or PathLike. Destination ending in `.keras`.
        metadata: dict. JSON-serialisable; must hold `arch`, `stride` and `overlap`.
    """
    path = Path(path)
    if path.suffix != MODEL_SUFFIX:
        raise ModelError(f"{path}: a model file must end in {MODEL_SUFFIX}")
    missing = {"arch", "stride", "overlap"} - metadata.keys()
    if missing:
        raise ValueError(f"metadata lacks {sorted(missing)}. Received keys: {sorted(metadata)}")
    with atomic_output(path) as tmp:
        model.save(tmp)
        with zipfile.ZipFile(tmp, "a") as archive:
            archive.writestr(METADATA_NAME, json.dumps(metadata, indent=2, sort_keys=True))


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """Read a model file's `vidderain.json` without loading the network.

    Raises:
        ModelError: the file is not a `.keras` archive or carries no vidderain metadata.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            if METADATA_NAME not in archive.namelist():
                raise ModelError(f"{path}: a Keras file without vidderain metadata; save it with `vidderain train`")
            return json.loads(archive.read(METADATA_NAME))
    except (zipfile.BadZipFile, json.JSONDecodeError, OSError) as exc:
        raise ModelError(f"{path}: not a readable .keras model file ({exc})") from None


def load_model(name_or_path: str | os.PathLike) -> LoadedModel:
    """Load a bundled model by name, or a `.keras` file by path, in Keras safe mode.

    Raises:
        ModelError: missing, corrupt, unsafe (serialized code), or not a 3-channel image model.
    """
    import keras  # here, so that listing and resolving models stays quick

    path = resolve_model(name_or_path)
    metadata = read_metadata(path)
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except ValueError as exc:
        if "safe_mode" in str(exc) or "lambda" in str(exc).lower():
            raise ModelError(f"{path}: refused, the file contains serialized code (Keras safe mode)") from None
        raise ModelError(f"{path}: cannot be loaded ({_first_line(exc)})") from None
    except Exception as exc:  # Keras raises many types for a damaged archive.
        raise ModelError(f"{path}: cannot be loaded ({_first_line(exc)})") from None
    channels = model.inputs[0].shape[-1]
    if channels != 3:
        raise ModelError(f"{path}: the model takes {channels} input channels; vidderain needs 3 (RGB)")
    try:
        stride, overlap = int(metadata["stride"]), int(metadata["overlap"])
    except (KeyError, TypeError, ValueError):
        raise ModelError(f"{path}: its metadata lacks a valid stride and overlap") from None
    return LoadedModel(model=model, stride=stride, overlap=overlap, metadata=metadata, path=path)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
