"""How many of a 10-bit source's luma codes survive `vidderain video`.

Run from the repository root: `python benchmarks/ten_bit_ramp.py [VIDDERAIN OPTIONS ...]`.
It draws a 10-bit HLG clip whose luma climbs one code per column through all 877 codes
of a limited-range 10-bit stream (64 ... 940), stores it losslessly (HEVC Main 10), runs
`vidderain video` on it with the bundled `default` model (plus the options given, e.g.
`--precision bfloat16` or `--codec libx265 --pix-fmt yuv420p10le`), and counts the luma
codes of the result that lie in 64 ... 940. Frames decoded to 8 bits keep about 220 of
them, whatever the output's depth.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from vidderain.io.video import ffmpeg_exe, probe_video

WIDTH, HEIGHT, FRAMES = 880, 64, 4
CODES = np.arange(64, 941)


def luma_codes(path: Path) -> np.ndarray:
    info = probe_video(path)
    raw = subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt",
                          "yuv420p10le", "pipe:1"], capture_output=True, check=True).stdout
    planes = np.frombuffer(raw, "<u2").reshape(-1, info.width * info.height * 3 // 2)[:, : info.width * info.height]
    return np.intersect1d(np.unique(planes), CODES)


def main(options: list[str]) -> None:
    luma = np.tile(np.minimum(64 + np.arange(WIDTH), 940).astype("<u2"), (HEIGHT, 1))
    chroma = np.full((HEIGHT // 2, WIDTH // 2), 512, "<u2")
    with tempfile.TemporaryDirectory(prefix="vidderain-ramp-") as folder:
        ramp, out = Path(folder) / "ramp.mp4", Path(folder) / "out.mp4"
        subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "yuv420p10le",
                        "-s", f"{WIDTH}x{HEIGHT}", "-r", "25", "-i", "pipe:0", "-vf",
                        "setparams=range=tv:colorspace=bt2020nc:color_primaries=bt2020:color_trc=arib-std-b67",
                        "-c:v", "libx265", "-x265-params", "lossless=1:log-level=error", "-pix_fmt", "yuv420p10le",
                        "-tag:v", "hvc1", str(ramp)],
                       input=(luma.tobytes() + chroma.tobytes() * 2) * FRAMES, check=True)
        print(f"source: {len(luma_codes(ramp))} of {len(CODES)} luma codes", flush=True)
        command = [sys.executable, "-m", "vidderain", "video", str(ramp), str(out), "--model", "default"]
        subprocess.run([*command, *options], check=True)  # a --model among the options comes later and wins
        info = probe_video(out)
        print(f"vidderain video {' '.join(options)}: {info.codec} {info.pix_fmt}, "
              f"{len(luma_codes(out))} of {len(CODES)} luma codes kept")


if __name__ == "__main__":
    main(sys.argv[1:])
