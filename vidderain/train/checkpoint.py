"""The run folder beside a model in training (`MODEL.run/`), and the checkpoint kept in it.

`run_folder` is the one place that names the folder. It holds `checkpoint/` (the
weights with the optimizer's variables, and `state.json`: step, best scores, the
run's settings), `log.csv`, `curve.png` and `samples.png`. A checkpoint is written
into `checkpoint.new/` and swapped in, so a crash at any moment leaves one complete
checkpoint (`checkpoint/`, or `checkpoint.old/` during the swap).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import keras

RUN_SUFFIX = ".run"
_WEIGHTS = "model.weights.h5"
_STATE = "state.json"


def run_folder(out: str | os.PathLike) -> Path:
    """The run folder of a model file: `MODEL.run/` beside `MODEL.keras`."""
    out = Path(out)
    return out.with_name(out.stem + RUN_SUFFIX)


def save_checkpoint(model: keras.Model, state: dict[str, Any], run_dir: Path) -> None:
    """Write `model`'s weights (a compiled model's include the optimizer's) and `state` as the run's checkpoint."""
    current, new, old = run_dir / "checkpoint", run_dir / "checkpoint.new", run_dir / "checkpoint.old"
    shutil.rmtree(new, ignore_errors=True)
    new.mkdir(parents=True)
    model.save_weights(new / _WEIGHTS)
    (new / _STATE).write_text(json.dumps(state, indent=2))
    # Swap folders so a crash at any point leaves one complete checkpoint.
    shutil.rmtree(old, ignore_errors=True)
    if current.exists():
        current.rename(old)
    new.rename(current)
    shutil.rmtree(old, ignore_errors=True)


def find_checkpoint(run_dir: Path) -> Path | None:
    """The folder of the run's latest complete checkpoint, or None if it has none."""
    for folder in (run_dir / "checkpoint", run_dir / "checkpoint.old"):
        if (folder / _STATE).is_file():
            return folder
    return None


def read_state(folder: Path) -> dict[str, Any]:
    """The state a checkpoint recorded: step, best scores, wall time and the run's settings."""
    return json.loads((folder / _STATE).read_text())


def weights_path(folder: Path) -> Path:
    """The weights file of a checkpoint."""
    return folder / _WEIGHTS


def saved_state(out: str | os.PathLike) -> dict[str, Any] | None:
    """The state of the latest checkpoint of the run for the model file `out`, or None if there is none."""
    folder = find_checkpoint(run_folder(out))
    return None if folder is None else read_state(folder)
