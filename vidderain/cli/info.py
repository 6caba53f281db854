"""`vidderain eval` and `vidderain models`: scores of results, and what the bundled models are."""

from __future__ import annotations

import json
from pathlib import Path, PurePath
from typing import Annotated, Any

import typer
from rich.table import Table

from vidderain.cli.application import command, out
from vidderain.jobs.evaluate import evaluate_folders
from vidderain.models import VIDEO_MODEL, bundled_models, read_metadata


@command(name="eval")
def evaluate(
    pred_dir: Annotated[Path, typer.Argument(metavar="PRED_DIR", help="Folder of derained images.", show_default=False)],
    clean_dir: Annotated[
        Path, typer.Argument(metavar="CLEAN_DIR", help="Folder of clean ground-truth images, paired by name.",
                             show_default=False)
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON object instead of a table.")] = False,
) -> None:
    """Score derained images against clean ones: mean PSNR and SSIM on MATLAB luma.

    This is the deraining literature's protocol (Y of rgb2ycbcr, data range 1, SSIM with an
    11x11 Gaussian window), so the numbers compare with published tables.
    """
    report = evaluate_folders(pred_dir, clean_dir)
    if as_json:
        out.print_json(json.dumps(report))
        return
    out.print(f"{report['count']} pairs: PSNR {report['psnr']:.3f} dB, SSIM {report['ssim']:.4f} (MATLAB luma)")


def training_data(metadata: dict[str, Any]) -> str:
    """The data a model was trained on, by the data set's name and size: never the folder's path.

    The record reads `RainTrainL: 180 training pairs, 20 validation pairs`, shown as
    `RainTrainL (180 training pairs, 20 validation pairs)`. Models trained before the
    name was recorded name the folder by its path; only its last part, the data set's
    name, is shown.
    """
    text = str(metadata.get("data", "?"))
    where, _, size = text.partition(": ")
    return f"{PurePath(where).name} ({size})" if size else PurePath(text).name


def _is_temporal(meta: dict[str, Any]) -> bool:
    """Whether a model reads a window of video frames (its validation is then on synthetic clips)."""
    return int(meta.get("frames", 1)) > 1


def _which_to_use(found: dict[str, dict[str, Any]]) -> str:
    """One line saying which model to use, from what the files record.

    Single-frame models are ranked by validation score; a temporal model's score is on
    synthetic clips, not comparable, so it is named for videos instead.
    """
    single = {name: meta for name, meta in found.items() if not _is_temporal(meta)}
    videos = [name + (" (what `vidderain video` runs)" if name == VIDEO_MODEL else "")
              for name, meta in found.items() if _is_temporal(meta)]
    for_videos = ""
    if videos:
        for_videos = (f" For videos and folders of a clip's frames: {', '.join(videos)}, which also reads each "
                      "frame's neighbours (its validation score is on synthetic rainy clips, not comparable).")
    scored = {name: meta["val_psnr"] for name, meta in single.items() if meta.get("val_psnr")}
    if not scored:
        return "Which to use: none records a validation score; try each on a few of your frames." + for_videos
    best = max(scored, key=scored.get)
    costs = {name: meta["macs_per_pixel"] for name, meta in single.items() if meta.get("macs_per_pixel")}
    cheapest = best in costs and costs[best] == min(costs.values())
    others = [name for name in single if name != best]
    line = f"Which to use: {best}, the best validation score" + (" at the least compute" if cheapest else "")
    if others:
        line += f"; {', '.join(others)} {'is' if len(others) == 1 else 'are'} bundled to compare against"
    return line + "." + for_videos


def _precisions(meta: dict) -> str:
    """How the training legs computed, from the model's metadata ("" for models that predate the record)."""
    legs = meta.get("legs") or []
    if not legs:
        return ""
    spans = []
    for i, leg in enumerate(legs):
        end = legs[i + 1]["from_step"] if i + 1 < len(legs) else meta.get("step", "?")
        spans.append(f"steps {leg['from_step']}-{end} in {leg['precision']}")
    return f" ({', '.join(spans)})"


@command()
def models(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the bundled models with what their files record about them, and which to use."""
    found = {name: read_metadata(path) for name, path in bundled_models().items()}
    if as_json:
        out.print_json(json.dumps({name: {**meta, "data": training_data(meta)} if "data" in meta else meta
                                   for name, meta in found.items()}))
        return
    if not found:
        out.print("No bundled models are installed; train one with `vidderain train` and pass it with --model.")
        return
    table = Table(title="bundled models")
    for column in ("name", "architecture", "parameters", "MACs/pixel", "stride", "val PSNR", "val SSIM", "steps"):
        table.add_column(column, no_wrap=True)
    for name, meta in found.items():
        table.add_row(
            name,
            meta.get("arch", "?"),
            f"{meta['parameters']:,}" if "parameters" in meta else "?",
            f"{meta['macs_per_pixel'] / 1000:.0f} k" if "macs_per_pixel" in meta else "?",
            str(meta.get("stride", "?")),
            (f"{meta['val_psnr']:.2f} dB" + (" (clips)" if _is_temporal(meta) else "")) if meta.get("val_psnr") else "-",
            f"{meta['val_ssim']:.4f}" if meta.get("val_ssim") else "-",
            str(meta.get("step", "?")),
        )
    out.print(table)
    out.print("MACs/pixel: multiply-adds the network spends on each pixel, its cost (the time per frame grows "
              "with it). stride: frames are padded to a multiple of it, and --tile must be one."
              + (" (clips): scored on synthetic rainy clips, not on the image pairs."
                 if any(map(_is_temporal, found.values())) else ""), markup=False)
    for name, meta in found.items():
        veil = "; with a whole-frame veil estimate (`vidderain train-veil`)" if "veil" in meta else ""
        out.print(f"{name}: {meta.get('description', meta.get('arch', '?'))}; trained on {training_data(meta)}"
                  f"{_precisions(meta)}{veil}", markup=False)
    out.print(_which_to_use(found), markup=False)
