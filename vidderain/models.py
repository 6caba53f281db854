"""Find, save, load and describe vidderain models.

A model file is a standard `.keras` archive with one extra member,
`vidderain.json`, holding what vidderain needs to run it (architecture name,
stride, tile overlap) and what a user wants to know about it (training data,
steps, validation metrics, versions). Models load in Keras safe mode only, after
vidderain has read the archive's layer configuration itself and refused any
serialized code (Lambda layers) or reference to a Python module outside Keras.
Bundled models are also checked against the SHA-256 recorded for them in
`SHA256SUMS` beside them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vidderain.errors import ModelError, first_line, no_such, not_a_file
from vidderain.io.files import atomic_output

if TYPE_CHECKING:
    import keras

METADATA_NAME = "vidderain.json"
MODEL_SUFFIX = ".keras"
CHECKSUMS_NAME = "SHA256SUMS"  # `sha256sum *.keras > SHA256SUMS` in the bundled folder
# The bundled model each command runs unless --model names another.
DEFAULT_MODEL = "default"  # `folder` (its photos and its videos) and `bench`: each frame alone
VIDEO_MODEL = "temporal"  # `video`: each frame with its neighbours, aligned to it
_CONFIG_NAME = "config.json"
# Layer classes whose configuration carries Python code.
_CODE_CLASSES = frozenset({"Lambda", "__lambda__", "TFOpLambda", "SlicingOpLambda"})
_CHECKSUM_LINE = re.compile(r"^([0-9a-fA-F]{64}) [ *](.+)$")


@dataclass(frozen=True)
class ModelFile:
    """A model file that passed every check that needs no Keras: what `inspect_model` returns.

    Attributes:
        path: Path. The `.keras` file.
        stride: int. Input sides must be multiples of this.
        overlap: int. Tile overlap that hides seams for this network.
        metadata: dict. Everything stored in the file's `vidderain.json`.
    """

    path: Path
    stride: int
    overlap: int
    metadata: dict[str, Any]


@dataclass(frozen=True)
class LoadedModel:
    """A network ready to run, with what the file says about it.

    Attributes:
        model: keras.Model. The network, inputs float32 NHWC RGB in [0, 1].
        stride: int. Input sides must be multiples of this.
        overlap: int. Tile overlap that hides seams for this network.
        metadata: dict. Everything stored in the file's `vidderain.json`.
        path: Path. Where it was loaded from.
        veil: keras.Model or None. The file's whole-frame veil estimate (`vidderain.nets.veil`),
            which the engine runs once per frame after `model` has derained its tiles; None if
            the file has none.
    """

    model: "keras.Model"
    stride: int
    overlap: int
    metadata: dict[str, Any]
    path: Path
    veil: "keras.Model | None" = None


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
        raise ModelError(not_a_file(path, f"a model: a bundled model's name or a {MODEL_SUFFIX} file"))
    known = ", ".join(bundled) or "none are installed"
    if path.suffix == MODEL_SUFFIX or os.sep in text:
        raise ModelError(f"{no_such(path, 'model file')} (bundled models: {known})")
    raise ModelError(f"no model named {text!r} (bundled models: {known}); the path of a {MODEL_SUFFIX} file "
                     "(one that training wrote) works too")


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
        # Keras stores its archive uncompressed; deflating it makes a file smaller (unet-wide: 22.5 to 20.6 MB,
        # float32 weights compress little) and Keras reads either back.
        with zipfile.ZipFile(tmp) as archive:
            members = [(name, archive.read(name)) for name in archive.namelist()]
        members.append((METADATA_NAME, json.dumps(metadata, indent=2, sort_keys=True).encode()))
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, data in members:
                archive.writestr(name, data)


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
        ModelError: missing, corrupt, unsafe (serialized code or a module outside Keras),
            not a 3-channel image model, or a bundled model that does not match its SHA-256.
    """
    import keras  # here, so that listing and resolving models stays quick

    checked = inspect_model(name_or_path)
    path = checked.path
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except ValueError as exc:
        if "safe_mode" in str(exc) or "lambda" in str(exc).lower():
            raise ModelError(f"{path}: refused, the file contains serialized code (Keras safe mode)") from None
        raise ModelError(f"{path}: cannot be loaded ({first_line(exc)})") from None
    except Exception as exc:  # Keras raises many types for a damaged archive.
        raise ModelError(f"{path}: cannot be loaded ({first_line(exc)})") from None
    from vidderain.nets.veil import split_veil  # imports keras, so here too

    try:
        model, veil = split_veil(model)
    except ValueError as exc:
        raise ModelError(f"{path}: cannot be loaded ({first_line(exc)})") from None
    channels = model.inputs[0].shape[-1]
    frames = int(checked.metadata.get("frames", 1))
    if channels != 3 * frames:
        wanted = "3 (RGB)" if frames == 1 else f"{3 * frames} ({frames} RGB frames, as its metadata says)"
        raise ModelError(f"{path}: the model takes {channels} input channels; vidderain needs {wanted}")
    return LoadedModel(model=model, stride=checked.stride, overlap=checked.overlap, metadata=checked.metadata, path=path,
                       veil=veil)


def inspect_model(name_or_path: str | os.PathLike) -> ModelFile:
    """Check a bundled model name or `.keras` path as far as can be done without Keras.

    `load_model` starts with this; a job that loads the model elsewhere (Ray workers)
    calls it first, so that a bad model is one error before any work starts.

    Raises:
        ModelError: missing, not a vidderain `.keras` file, unsafe (serialized code or a
            module outside Keras), without a valid stride and overlap, or a bundled model
            that does not match its SHA-256.
    """
    path = resolve_model(name_or_path)
    if is_bundled(path):
        check_bundled_checksum(path)
    metadata = read_metadata(path)
    _refuse_code(path)
    try:
        stride, overlap = int(metadata["stride"]), int(metadata["overlap"])
    except (KeyError, TypeError, ValueError):
        raise ModelError(f"{path}: its metadata lacks a valid stride and overlap") from None
    return ModelFile(path=path, stride=stride, overlap=overlap, metadata=metadata)


def is_bundled(path: str | os.PathLike) -> bool:
    """Return True if `path` is a file in the bundled models' folder."""
    return Path(path).resolve().parent == bundled_dir().resolve()


def read_checksums(path: str | os.PathLike) -> dict[str, str]:
    """Read a `sha256sum`-format file: {file name: lowercase hex digest}.

    Raises:
        ModelError: the file is missing or holds a line that is not `<64 hex digits>  <name>`.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ModelError(f"{path}: the bundled models' checksums cannot be read ({exc.strerror or exc})") from None
    sums = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        match = _CHECKSUM_LINE.match(line)
        if match is None:
            raise ModelError(f"{path}: line {number} is not '<sha256>  <file name>'. Received: {line!r}")
        sums[match[2]] = match[1].lower()
    return sums


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes as lowercase hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_bundled_checksum(path: str | os.PathLike) -> None:
    """Check a bundled model file against the SHA-256 recorded for it in `SHA256SUMS` beside it.

    Raises:
        ModelError: no checksum is recorded for it, or its bytes do not match (a damaged
            download or a replaced file).
    """
    path = Path(path)
    sums_path = path.parent / CHECKSUMS_NAME
    expected = read_checksums(sums_path).get(path.name)
    if expected is None:
        raise ModelError(f"{path}: bundled model without a recorded SHA-256 in {sums_path}")
    if file_sha256(path) != expected:
        raise ModelError(
            f"{path}: bundled model does not match the SHA-256 recorded in {sums_path} "
            "(damaged or replaced); reinstall vidderain"
        )


def _refuse_code(path: Path) -> None:
    """Refuse an archive whose layer configuration carries code or names a module outside Keras.

    Keras safe mode refuses these too, with messages about deserialization; checking
    here first gives a clear reason and keeps such files away from the deserializer.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read(_CONFIG_NAME))
    except KeyError:
        raise ModelError(f"{path}: cannot be loaded (not a Keras model file: it has no {_CONFIG_NAME})") from None
    except (zipfile.BadZipFile, json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
        raise ModelError(f"{path}: cannot be loaded (its {_CONFIG_NAME} is unreadable: {first_line(exc)})") from None
    if isinstance(config, dict):
        # Models load with compile=False, so the training setup is never deserialized
        # (and a loss function may be recorded under "builtins").
        config.pop("compile_config", None)
    stack = [config]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            if node.get("class_name") in _CODE_CLASSES:
                raise ModelError(f"{path}: refused, the file contains serialized code ({node['class_name']})")
            module = node.get("module")
            if isinstance(module, str) and module != "keras" and not module.startswith("keras."):
                raise ModelError(f"{path}: refused, the file refers to the Python module {module!r}; "
                                 "vidderain loads only Keras layers")
            stack.extend(node.values())
