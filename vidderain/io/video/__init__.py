"""Reading and writing videos through the ffmpeg binary that imageio-ffmpeg ships, by stage.

Frames cross this package as RGB arrays, HxWx3 (uint8, or uint16 for a source of more
than 8 bits per sample, which is written back at its depth), **upright as displayed**: the
reader lets ffmpeg apply the display rotation (autorotation) and the writer stores
upright frames with no rotation flag. Upright frames matter to the network, which
learnt rain falling down the picture, and an upright file plays the same way up in
every player, including those that ignore rotation flags.

Timing is kept frame for frame. The reader gives each frame with its presentation
time (read from ffmpeg's `showinfo` filter), the frame's time travels with it, and
the writer hands frames to ffmpeg inside a small Matroska stream that carries those
times, so constant-rate sources keep their exact rational rate (30000/1001 stays
30000/1001 in MP4 and MOV), variable-rate sources keep their irregular timing, and
the audio, copied from the source, stays in sync either way.

The stages, in the order a frame meets them:

- `probe`: what a file holds (`probe_video` -> `VideoInfo`) and the stretch of it used (`Clip`);
- `reader`: decoding (`VideoReader`), each frame with its time; `frames`: a folder of image frames instead;
- `encoding`: the encoder settings for an output path (`encoder_for`, `EncoderSettings`);
- `writer`: encoding and muxing (`VideoWriter`), with `mkv` framing the frames for ffmpeg;
- `segments`: joining the segments a long video is written in (`join_segments`), without re-encoding;
- `ffmpeg`: running ffmpeg itself, its processes and its logs, for all of the above.
"""

from vidderain.io.video.encoding import (
    VIDEO_FORMATS,
    VIDEO_SUFFIXES,
    EncoderChoice,
    EncoderSettings,
    check_container_codec,
    container_for,
    encoder_for,
    is_video_path,
)
from vidderain.io.video.ffmpeg import ffmpeg_exe
from vidderain.io.video.frames import read_frame_folder, read_frames
from vidderain.io.video.probe import Clip, HdrMetadata, VideoInfo, probe_video
from vidderain.io.video.reader import FrameMark, TimedFrame, VideoReader
from vidderain.io.video.segments import Segment, join_segments
from vidderain.io.video.writer import VideoWriter

__all__ = [
    "VIDEO_FORMATS",
    "VIDEO_SUFFIXES",
    "Clip",
    "EncoderChoice",
    "EncoderSettings",
    "FrameMark",
    "HdrMetadata",
    "Segment",
    "TimedFrame",
    "VideoInfo",
    "VideoReader",
    "VideoWriter",
    "check_container_codec",
    "container_for",
    "encoder_for",
    "ffmpeg_exe",
    "is_video_path",
    "join_segments",
    "probe_video",
    "read_frame_folder",
    "read_frames",
]
