"""Options several commands share, defined once, and what they turn into: encoder
choices, engine settings checked against the model, and the engine itself.

A model is checked in two steps: `check_model` reads the file's metadata without
Keras (seconds before TensorFlow would have started), so a bad name, an unsafe file or
a `--tile` that does not fit the model's stride is refused at once; `load_engine`
then loads the network.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from vidderain.cli.application import err, quiet_native_stderr
from vidderain.devices import describe_device
from vidderain.engine import Engine, TileSettings, check_settings
from vidderain.io.video import EncoderChoice
from vidderain.jobs.resume import NetworkIdentity
from vidderain.models import LoadedModel, ModelFile, file_sha256, inspect_model, load_model
from vidderain.precision import Precision, at_precision, check_precision, resolve_precision
from vidderain.temporal import WindowSpec

ModelOption = Annotated[
    str, typer.Option("--model", "-m", help="A bundled model name (see `vidderain models`) or a path to a .keras file.")
]
TileOption = Annotated[
    int,
    typer.Option(
        "--tile",
        min=0,
        help="Longest tile side in pixels, a multiple of the model's stride (8 for the bundled models); frames "
        "that fit run whole, larger ones are cut into the fewest equal tiles. 0 runs every frame whole.",
    ),
]
OverlapOption = Annotated[
    Optional[int],
    typer.Option("--overlap", min=0, help="Pixels shared by neighbouring tiles, blended smoothly. [default: the model's]"),
]
BatchOption = Annotated[int, typer.Option("--batch", min=1, help="Tiles per network call (tiles of several frames share a batch).")]
EnsembleOption = Annotated[
    bool,
    typer.Option("--ensemble", help="Also derain each frame mirrored left to right and average the two results: "
                 "cleaner, at twice the network time (measured in models/README.md)."),
]
CodecOption = Annotated[
    Optional[str],
    typer.Option("--codec", help="Video encoder: libx264, libx265, libvpx-vp9, libsvtav1, prores_ks ... "
                 "[default: libx264; libvpx-vp9 for .webm; for a 10-bit source libx265, or libvpx-vp9 for .webm]"),
]
CrfOption = Annotated[
    Optional[int],
    typer.Option("--crf", min=0, max=63, help="Video quality, lower is better; 0 is lossless. [default: 18; 32 for VP9]"),
]
PresetOption = Annotated[
    Optional[str],
    typer.Option("--preset", help="Video encoder speed/size preset. [default: medium for x264 and x265, else the encoder's]"),
]
PixFmtOption = Annotated[
    Optional[str],
    typer.Option("--pix-fmt", help="Stored video pixel format. [default: yuv420p; yuv420p10le for a 10-bit source]"),
]
SegmentOption = Annotated[
    float,
    typer.Option("--segment", min=0.001, help="Seconds of video per segment: a stopped video resumes after its last "
                 "finished segment, so at most one segment's work is lost."),
]
PRECISION_HELP = ("auto, float32 or bfloat16. auto runs the network in bfloat16 where the hardware has it natively "
                  "(a GPU of compute capability 8.0 or more; a CPU listing amx_bf16 or avx512_bf16 where a short "
                  "timing, done once per CPU, finds it faster), float32 elsewhere.")
PrecisionOption = Annotated[str, typer.Option("--precision", help=PRECISION_HELP)]
CompareOption = Annotated[
    Optional[str], typer.Option("--compare", help="'side' puts input and result side by side; 'split' shows the input left of a split line (moving, in videos).")
]


def encoder_choice(codec: Optional[str], crf: Optional[int], preset: Optional[str], pix_fmt: Optional[str]) -> EncoderChoice:
    """The encoder settings asked for; `encoder_for` gives each output the defaults of its container for the rest."""
    return EncoderChoice(codec=codec, crf=crf, preset=preset, pix_fmt=pix_fmt)


def check_model(name: str, tile: int, overlap: Optional[int], batch: int, ensemble: bool,
                precision: str = "float32") -> tuple[ModelFile, TileSettings]:
    """Check a model file, the engine settings against it and the precision's name, without loading Keras.

    Returns:
        The checked model file and the settings, its overlap filled in where none was given.

    Raises:
        ModelError: the model is missing, unsafe or without valid metadata.
        ParameterError: a setting does not fit the model (a tile off its stride names the nearest that
            fit), or the precision is not one vidderain knows.
    """
    checked = inspect_model(name)
    check_precision(precision)
    settings = TileSettings(tile=tile, overlap=checked.overlap if overlap is None else overlap, batch=batch,
                            ensemble=ensemble)
    check_settings(settings, checked.stride)
    return checked, settings


def load_checked(checked: ModelFile, precision: str = "float32") -> tuple[LoadedModel, str, Precision]:
    """Load a checked model (this starts Keras, quietly), describe the device it runs on and resolve the precision.

    Args:
        checked: ModelFile. What `check_model` returned.
        precision: str. "auto", "float32" or "bfloat16" (checked already). Defaults to "float32".
    """
    # Said at once: starting the ML backend and loading the network takes seconds.
    err.print(f"loading model {checked.path.name} ...", markup=False)
    with quiet_native_stderr():
        loaded = load_model(checked.path)
        device = describe_device()
        chosen = resolve_precision(precision)
    return loaded, device, chosen


def describe(settings: TileSettings) -> str:
    """The engine settings in a few words, for the line a command prints as it starts."""
    return (f"tile {settings.tile or 'whole frame'}, overlap {settings.overlap}, batch {settings.batch}"
            + (", mirrored ensemble" if settings.ensemble else ""))


def describe_window(window: WindowSpec) -> str:
    """A temporal model's window in a few words (empty for a single-frame model), for the same line."""
    if window.frames == 1:
        return ""
    return f", {window.describe()}"


def load_engine(name: str, tile: int, overlap: Optional[int], batch: int, ensemble: bool,
                precision: str) -> tuple[Engine, WindowSpec, NetworkIdentity]:
    """Check the model, settings and precision (`check_model`), load the network and say what runs where, in what.

    Returns:
        The engine; the window of frames its model reads for each output frame (one frame,
        or a temporal model's window), which the jobs take beside it; and what identifies
        the network it runs (the model file's SHA-256 and the precision), which a video job
        records to resume only the same.
    """
    checked, settings = check_model(name, tile, overlap, batch, ensemble, precision)
    loaded, device, chosen = load_checked(checked, precision)
    with quiet_native_stderr():
        network = at_precision(loaded.model, chosen)
    window = WindowSpec.from_metadata(loaded.metadata)
    veil = ", lifting heavy rain's veil" if loaded.veil is not None else ""
    err.print(f"model {loaded.path.name} ({loaded.metadata.get('arch', '?')}{veil}) on {device} in {chosen.describe()}, "
              f"{describe(settings)}{describe_window(window)}", markup=False)
    identity = NetworkIdentity(file_sha256(checked.path), chosen.name)
    return Engine(network, loaded.stride, settings, veil=loaded.veil), window, identity
