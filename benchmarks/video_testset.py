"""A synthetic rainy video test set with ground truth, and a model's score on it.

Run from the repository root:

    python benchmarks/video_testset.py make DIR [--clean ../shared/data/RainTrainL/norain]
    python benchmarks/video_testset.py score DIR --model NAME [--precision auto|float32|bfloat16] [--keep OUT]
    python benchmarks/video_testset.py bound DIR [--frames 5]
    python benchmarks/video_testset.py demo DIR [--seed 10]

`make` films 10 clips of 30 frames (320x240, 30 fps) from clean images held out of all
training: the clean sides of the 20 Rain100L validation pairs that `vidderain train
--val-split 0.1 --seed 0` holds out (listed in models/README.md), read from `--clean`
at run time, and the 4 photos in samples/clean. Each clip's camera looks at one of 10
landscape images (the 4 photos and 6 of the pairs) and moves as a training clip's does
(`vidderain.data.patches.synthesize_clip`, the camera here slower, over 30 frames: a
pan of at most 2 px a frame, a little zoom, turn and shake); every other clip keeps the
camera still, as a tripod or CCTV would. In 6 of the 10 (clips 1, 2, 5, 6, 9, 10) an
object cut from another held-out image crosses the view on its own, which no camera
motion explains: where ghosting would show. Rain is the
`mixed` preset of `vidderain.data.synth.RAIN_PRESETS`, falling afresh in every frame.
`make --parallax` films the hard variant, for ghosting: every camera moves (a pan of at most
4 px a frame) and a near layer (a bar or everything beyond an edge, cut from another
held-out image) passes in front of the scene 1.5 to 5 times faster, as poles, signs and
parked cars do in hand-held footage; the objects move at up to 12 px a frame. The
views are 320x320 and keep their middle 240 rows, which the camera's vertical motion
never takes past the image's edge; sideways, a camera near the edge sees the image
mirrored there, as in training clips. Everything is drawn from `--seed`, so DIR is the
same on every machine. DIR gets, per clip, `clipNN/rainy.mkv` (FFV1, RGB without loss)
and `clipNN/clean/0001.png ...`, and `testset.json` saying how each clip was made.
DIR may not lie inside this repository: its frames are cut from the data set's images,
which are not ours to commit.

`score` runs `vidderain video` on each clip (FFV1 output, RGB without loss; one process
per clip, as a user runs it), decodes the output and scores every frame against its clean
frame with `vidderain eval`'s metric (PSNR and SSIM on MATLAB luma, `vidderain.metrics`),
and prints the mean per clip and over all frames, beside the rainy input's own score and
the seconds `vidderain video` took for each clip (its start, loading TensorFlow and the
model, included).

`demo` films one clip like the hard variant's from the sample photos alone (`coffee`, with
a near layer and an object cut from `chelsea`), into `DIR/rainy.mkv` and `DIR/clean/`: its
frames are the project's own, so pictures of it may go into the model card.

`bound` asks what the neighbouring frames hold before any network is trained: for every
frame, its window of `--frames` frames (edges replicated) is stacked as a temporal model
stacks it, with each of `vidderain.temporal`'s alignments (none, the optical flow, the
camera's motion fitted to it, and that motion with the flow's smoothed remainder), and
the per-pixel median and minimum over the window are scored against the clean frame. Rain adds light, so where a pixel is dry in some frame of the window the minimum finds it;
where it is wet in every frame, or under haze that lasts the whole clip, no fusion of the
frames can.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from vidderain.data.patches import CameraMotion, synthesize_clip
from vidderain.data.synth import RAIN_PRESETS
from vidderain.io.images import read_image, write_image
from vidderain.io.video import EncoderSettings, VideoReader, VideoWriter
from vidderain.metrics import psnr, ssim
from vidderain.pixels import split_rgb, to_float, to_integer
from vidderain.temporal import ALIGNMENTS, WindowSpec, WindowStacker, window_indices

REPOSITORY = Path(__file__).resolve().parent.parent
SAMPLES = REPOSITORY / "samples" / "clean"
# The 20 pairs `vidderain train --val-split 0.1 --seed 0` holds out of Rain100L's 200 (models/README.md).
VALIDATION_NAMES = (
    "norain-2", "norain-32", "norain-37", "norain-47", "norain-56", "norain-60", "norain-62", "norain-68",
    "norain-70", "norain-73", "norain-80", "norain-104", "norain-148", "norain-158", "norain-163", "norain-164",
    "norain-180", "norain-181", "norain-182", "norain-194",
)
CLIPS, FRAMES, FPS = 10, 30, 30
VIEW, HEIGHT = 320, 240  # square views of 320, their middle 240 rows kept: 320x240 frames
RAIN = "mixed"
MOVING = CameraMotion(still_probability=0.0, speed=2.0, zoom=0.003, rotation=0.15, shake=0.5,
                      object_probability=1.0, object_speed=4.0, parallax_probability=0.0)
STILL = dataclasses.replace(MOVING, still_probability=1.0)
# `make --parallax`: a faster camera with a near layer passing in front of the scene in every clip,
# and a faster object in clips 1, 2, 5, 6, 9, 10: where one motion per frame cannot align it all.
PARALLAX = dataclasses.replace(MOVING, speed=4.0, object_speed=12.0, parallax_probability=1.0, parallax=5.0)
DEMO_SEED = 10
LOSSLESS = EncoderSettings(codec="ffv1", crf=None, preset=None, pix_fmt="bgr0")
LOSSLESS_FLAGS = ["--codec", "ffv1", "--pix-fmt", "bgr0"]


def held_out_images(clean_dir: Path) -> tuple[list[tuple[str, np.ndarray]], list[tuple[str, np.ndarray]]]:
    """(scenes, sprites): 10 landscape images to film, and the other held-out images to cut moving objects from.

    Scenes are the 4 sample photos and the first 6 landscape validation images; sprites the rest.
    """
    missing = [name for name in VALIDATION_NAMES if not (clean_dir / f"{name}.png").is_file()]
    if missing:
        raise SystemExit(f"{clean_dir}: lacks the clean validation images {', '.join(missing)} "
                         "(Rain100L's RainTrainL/norain; --clean names the folder)")
    photos = [(path.stem, _read_rgb(path)) for path in sorted(SAMPLES.glob("*.png"))]
    pairs = [(name, _read_rgb(clean_dir / f"{name}.png")) for name in VALIDATION_NAMES]
    landscape = [item for item in pairs if item[1].shape[1] > item[1].shape[0]]
    scenes = (photos + landscape)[:CLIPS]
    chosen = {name for name, _ in scenes}
    return scenes, [item for item in pairs if item[0] not in chosen]


def _read_rgb(path: Path) -> np.ndarray:
    """A float32 RGB image in [0, 1], decoded as `vidderain eval` decodes it."""
    return split_rgb(read_image(path))[0]


def make(folder: Path, clean_dir: Path, seed: int = 0, clips: int = CLIPS, frames: int = FRAMES,
         parallax: bool = False) -> None:
    """Write the test set into `folder` (see the module's docstring); with `parallax`, its hard variant."""
    if folder.resolve().is_relative_to(REPOSITORY):
        raise SystemExit(f"{folder}: inside the repository; the clips are cut from a data set's images, "
                         "which must not be committed: choose a folder outside it")
    scenes, sprites = held_out_images(clean_dir)
    rain = RAIN_PRESETS[RAIN]
    manifest = {"made_by": "benchmarks/video_testset.py make" + (" --parallax" if parallax else ""), "seed": seed,
                "rain": RAIN, "fps": FPS, "width": VIEW, "height": HEIGHT, "frames": frames, "clips": []}
    for index in range(clips):
        name = f"clip{index + 1:02d}"
        scene_name, scene = scenes[index % len(scenes)]
        sprite_name, sprite = sprites[index % len(sprites)]
        camera = "near" if parallax else "still" if index % 2 else "moving"
        motion = {"still": STILL, "moving": MOVING, "near": PARALLAX}[camera]
        crossed = index % 4 < 2  # an object crosses the view in clips 1, 2, 5, 6, 9, 10
        if not crossed:
            motion = dataclasses.replace(motion, object_probability=0.0)
        rng = np.random.default_rng([seed, index])
        # The sprite gives the object and the near layer; motions without either leave it unused.
        rainy, clean = synthesize_clip(scene, rng, frames, VIEW, rain, motion, sprite if crossed or parallax else None)
        _write_clip(folder / name, rainy, clean)
        manifest["clips"].append({"name": name, "scene": scene_name, "camera": camera,
                                  "moving_object_from": sprite_name if crossed else None,
                                  "near_layer_from": sprite_name if parallax else None})
        print(f"{name}: {scene_name}, camera {camera}" + (f", a near layer from {sprite_name}" if parallax else "")
              + (f", an object from {sprite_name} crossing" if crossed else ""), flush=True)
    (folder / "testset.json").write_text(json.dumps(manifest, indent=2) + "\n")


def demo(folder: Path, seed: int = DEMO_SEED, frames: int = FRAMES) -> None:
    """Film the demo clip into `folder`: the hard variant's motion, from the sample photos alone.

    The camera pans across `coffee`; a near layer and an object, both cut from `chelsea`,
    pass in front of it faster than the scene. Made only of the project's own photographs,
    its frames may go into the model card.
    """
    photos = {path.stem: _read_rgb(path) for path in sorted(SAMPLES.glob("*.png"))}
    rng = np.random.default_rng([seed, 0])
    rainy, clean = synthesize_clip(photos["coffee"], rng, frames, VIEW, RAIN_PRESETS[RAIN], PARALLAX, photos["chelsea"])
    _write_clip(folder, rainy, clean)
    print(f"{folder / 'rainy.mkv'}: {frames} frames of coffee filmed by a moving camera, a near layer and an object "
          "from chelsea passing", flush=True)


def _write_clip(folder: Path, rainy: list[np.ndarray], clean: list[np.ndarray]) -> None:
    """`folder/rainy.mkv` (FFV1, RGB without loss) and `folder/clean/0001.png ...`: the views' middle HEIGHT rows."""
    top = (VIEW - HEIGHT) // 2
    (folder / "clean").mkdir(parents=True, exist_ok=True)
    with VideoWriter(folder / "rainy.mkv", VIEW, HEIGHT, FPS, settings=LOSSLESS) as writer:
        for number, (rainy_frame, clean_frame) in enumerate(zip(rainy, clean), 1):
            writer.write(to_integer(rainy_frame[top : top + HEIGHT]))
            write_image(folder / "clean" / f"{number:04d}.png", to_integer(clean_frame[top : top + HEIGHT]))


def score_frames(frames: list[np.ndarray], clean_dir: Path) -> list[tuple[float, float]]:
    """(PSNR, SSIM) of each RGB uint8 frame against `clean_dir`'s PNG of the same number, as `vidderain eval` scores."""
    clean_paths = sorted(clean_dir.glob("*.png"))
    if len(frames) != len(clean_paths):
        raise SystemExit(f"{clean_dir}: {len(clean_paths)} clean frames, but the video has {len(frames)}")
    scores = []
    for frame, path in zip(frames, clean_paths):
        derained, clean = split_rgb(frame)[0], _read_rgb(path)
        scores.append((psnr(derained, clean), ssim(derained, clean)))
    return scores


def _decode(path: Path) -> list[np.ndarray]:
    with VideoReader(path) as reader:
        return list(reader)


def score(folder: Path, model: str, precision: str = "auto", keep: Path | None = None) -> None:
    """Derain every clip of `folder` with `vidderain video` and print the scores (see the module's docstring)."""
    manifest = json.loads((folder / "testset.json").read_text())
    print(f"model {model}, precision {precision}: {len(manifest['clips'])} clips of {manifest['frames']} frames, "
          f"{manifest['width']}x{manifest['height']}, rain {manifest['rain']}", flush=True)
    print(f"{'clip':<8} {'camera':<7} {'rainy PSNR / SSIM':>18} {'derained PSNR / SSIM':>21} {'seconds':>8}", flush=True)
    rainy_all, derained_all, started = [], [], time.monotonic()
    with tempfile.TemporaryDirectory(prefix="vidderain-testset-") as scratch:
        out_dir = keep or Path(scratch)
        out_dir.mkdir(parents=True, exist_ok=True)
        for clip in manifest["clips"]:
            source, out = folder / clip["name"] / "rainy.mkv", out_dir / f"{clip['name']}.mkv"
            command = [sys.executable, "-m", "vidderain", "video", str(source), str(out), "--model", model,
                       "--precision", precision, "--overwrite", *LOSSLESS_FLAGS]
            clip_started = time.monotonic()
            run = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True)
            seconds = time.monotonic() - clip_started
            if run.returncode != 0:
                lines = run.stderr.strip().splitlines()
                raise SystemExit(f"{clip['name']}: `vidderain video` exited with {run.returncode}: "
                                 f"{lines[-1] if lines else ''}")
            rainy = score_frames(_decode(source), folder / clip["name"] / "clean")
            derained = score_frames(_decode(out), folder / clip["name"] / "clean")
            rainy_all += rainy
            derained_all += derained
            (rp, rs), (dp, ds) = np.mean(rainy, axis=0), np.mean(derained, axis=0)
            print(f"{clip['name']:<8} {clip['camera']:<7} {rp:>9.2f} / {rs:.4f} {dp:>12.2f} / {ds:.4f} {seconds:>8.1f}",
                  flush=True)
    (rp, rs), (dp, ds) = np.mean(rainy_all, axis=0), np.mean(derained_all, axis=0)
    print(f"{'all':<8} {'':<7} {rp:>9.2f} / {rs:.4f} {dp:>12.2f} / {ds:.4f} {time.monotonic() - started:>8.1f}")
    print(f"mean over {len(derained_all)} frames: rainy {rp:.2f} dB / {rs:.4f}, {model} {dp:.2f} dB / {ds:.4f} "
          f"({dp - rp:+.2f} dB)")


BOUND_CAP_DB = 60.0


def bound(folder: Path, frames: int = 5) -> None:
    """Score the median and minimum of each frame's window, aligned and not (see the module's docstring)."""
    manifest = json.loads((folder / "testset.json").read_text())
    fusions = {"median": lambda w: np.median(w, axis=2), "minimum": lambda w: w.min(axis=2)}
    stackers = {align: WindowStacker(WindowSpec(frames, align=align)) for align in ALIGNMENTS}
    scores: dict[str, list[tuple[str, float, float]]] = {"rainy": []}
    for clip in manifest["clips"]:
        clean_dir = folder / clip["name"] / "clean"
        rainy = _decode(folder / clip["name"] / "rainy.mkv")
        scores["rainy"] += [(clip["camera"], p, q) for p, q in score_frames(rainy, clean_dir)]
        for alignment, stacker in stackers.items():
            prepared = [stacker.prepare(to_float(frame)) for frame in rainy]
            fused: dict[str, list[np.ndarray]] = {name: [] for name in fusions}
            for centre in range(len(rainy)):
                window = stacker.stack([prepared[i] for i in window_indices(centre, len(rainy), frames // 2)])
                window = window.reshape(*window.shape[:2], frames, 3)
                for name, fuse in fusions.items():
                    fused[name].append(to_integer(fuse(window)))
            for name, result in fused.items():
                scores.setdefault(f"{name}, align {alignment}", []).extend(
                    (clip["camera"], p, q) for p, q in score_frames(result, clean_dir))
    print(f"windows of {frames} frames, {len(scores['rainy'])} frames in {len(manifest['clips'])} clips, "
          f"rain {manifest['rain']}")
    # A fused frame equal to its clean frame (a still camera, a pixel dry in some frame of the
    # window) has an infinite PSNR; it counts as BOUND_CAP_DB so that the means stay finite.
    cameras = sorted({clip["camera"] for clip in manifest["clips"]}, key=["still", "moving", "near"].index)
    print(f"{'':<22} {'all':>16} " + " ".join(f"{camera + ' camera':>16}" for camera in cameras)
          + f"   (PSNR capped at {BOUND_CAP_DB:g} dB)")
    for key, values in scores.items():
        columns = []
        for camera in (None, *cameras):
            chosen = [(min(p, BOUND_CAP_DB), q) for c, p, q in values if camera in (None, c)]
            p, q = np.mean(chosen, axis=0)
            columns.append(f"{p:6.2f} / {q:.4f}")
        print(f"{key:<22} " + " ".join(f"{c:>16}" for c in columns))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    make_parser = commands.add_parser("make", help="Film the test set's clips into DIR.")
    make_parser.add_argument("dir", type=Path, metavar="DIR")
    make_parser.add_argument("--clean", type=Path, default=Path("../shared/data/RainTrainL/norain"),
                             help="Rain100L's clean training images (RainTrainL/norain). [default: %(default)s]")
    make_parser.add_argument("--seed", type=int, default=0, help="Seeds every clip. [default: %(default)s]")
    make_parser.add_argument("--clips", type=int, default=CLIPS, help=argparse.SUPPRESS)  # smaller sets for tests
    make_parser.add_argument("--frames", type=int, default=FRAMES, help=argparse.SUPPRESS)
    make_parser.add_argument("--parallax", action="store_true",
                             help="The hard variant: every camera moves, a near layer passes faster than the scene.")
    score_parser = commands.add_parser("score", help="Derain DIR's clips with a model and score every frame.")
    score_parser.add_argument("dir", type=Path, metavar="DIR")
    score_parser.add_argument("--model", required=True, help="A bundled model name or a .keras file.")
    score_parser.add_argument("--precision", default="auto", help="auto, float32 or bfloat16. [default: auto]")
    score_parser.add_argument("--keep", type=Path, metavar="OUT", help="Keep the derained clips in OUT.")
    demo_parser = commands.add_parser("demo", help="Film a clip like the hard variant's from the sample photos "
                                      "alone, for pictures.")
    demo_parser.add_argument("dir", type=Path, metavar="DIR")
    demo_parser.add_argument("--seed", type=int, default=DEMO_SEED, help="Seeds the clip. [default: %(default)s]")
    bound_parser = commands.add_parser("bound", help="Score the median and minimum of each frame's window of "
                                       "frames: what the neighbours hold.")
    bound_parser.add_argument("dir", type=Path, metavar="DIR")
    bound_parser.add_argument("--frames", type=int, default=5, help="Frames in a window, odd. [default: 5]")
    args = parser.parse_args(argv)
    if args.command == "make":
        make(args.dir, args.clean, args.seed, args.clips, args.frames, args.parallax)
    elif args.command == "demo":
        demo(args.dir, args.seed)
    elif args.command == "bound":
        bound(args.dir, args.frames)
    else:
        score(args.dir, args.model, args.precision, args.keep)


if __name__ == "__main__":
    main()
