"""Matroska framing: the writer feeds ffmpeg a minimal live Matroska stream.

One track of uncompressed RGB frames (RGB24, or RGB48LE for more than 8 bits per
sample), one cluster per frame holding the frame's time in nanoseconds: the simplest
input ffmpeg reads that carries a time per raw frame.
"""

from __future__ import annotations

import struct

_SEGMENT_UNKNOWN_SIZE = bytes.fromhex("18538067") + bytes.fromhex("01FFFFFFFFFFFFFF")


def _ebml_size(size: int) -> bytes:
    for length in range(1, 9):
        if size < (1 << (7 * length)) - 1:
            return ((1 << (7 * length)) | size).to_bytes(length, "big")
    raise ValueError(f"EBML element too large: {size} bytes")


def _ebml_uint(value: int) -> bytes:
    return value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")


def _element(element_id: str, payload: bytes) -> bytes:
    return bytes.fromhex(element_id) + _ebml_size(len(payload)) + payload


def mkv_header(width: int, height: int, default_duration_ns: int, deep: bool = False) -> bytes:
    """The EBML header, segment, info and the one track of `width` x `height` RGB frames.

    Args:
        deep: bool. 16 bits per sample (RGB48LE) instead of 8 (RGB24). Defaults to False.
    """
    ebml = _element(
        "1A45DFA3",
        _element("4286", _ebml_uint(1))  # EBMLVersion
        + _element("42F7", _ebml_uint(1))  # EBMLReadVersion
        + _element("42F2", _ebml_uint(4))  # EBMLMaxIDLength
        + _element("42F3", _ebml_uint(8))  # EBMLMaxSizeLength
        + _element("4282", b"matroska")  # DocType
        + _element("4287", _ebml_uint(4))  # DocTypeVersion
        + _element("4285", _ebml_uint(2)),  # DocTypeReadVersion
    )
    info = _element(
        "1549A966",
        _element("2AD7B1", _ebml_uint(1))  # TimestampScale: 1 ns
        + _element("4D80", b"vidderain")  # MuxingApp
        + _element("5741", b"vidderain"),  # WritingApp
    )
    video = _element(
        "E0",
        _element("B0", _ebml_uint(width))  # PixelWidth
        + _element("BA", _ebml_uint(height))  # PixelHeight
        # ColourSpace: ffmpeg's raw FourCC of packed RGB24 ('RGB' 24) or RGB48LE ('RGB' 48).
        + _element("2EB524", b"RGB" + bytes([48 if deep else 24])),
    )
    track = _element(
        "AE",
        _element("D7", _ebml_uint(1))  # TrackNumber
        + _element("73C5", _ebml_uint(1))  # TrackUID
        + _element("83", _ebml_uint(1))  # TrackType: video
        + _element("9C", _ebml_uint(0))  # FlagLacing
        + _element("22B59C", b"und")  # Language: unknown (the default would be English)
        + _element("86", b"V_UNCOMPRESSED")  # CodecID
        + _element("23E383", _ebml_uint(max(default_duration_ns, 1)))  # DefaultDuration
        + video,
    )
    return ebml + _SEGMENT_UNKNOWN_SIZE + info + _element("1654AE6B", track)


def mkv_block_header(time_ns: int, frame_bytes: int, duration_ns: int | None) -> bytes:
    """Bytes of a cluster holding one frame, up to the frame data that follows them."""
    timestamp = _element("E7", _ebml_uint(time_ns))
    # Track 1, relative time 0; SimpleBlock flags: keyframe. Block (in a BlockGroup): no flags.
    if duration_ns is None:
        block_head = b"\x81" + struct.pack(">h", 0) + b"\x80"
        block = bytes.fromhex("A3") + _ebml_size(len(block_head) + frame_bytes) + block_head
        return bytes.fromhex("1F43B675") + _ebml_size(len(timestamp) + len(block) + frame_bytes) + timestamp + block
    block_head = b"\x81" + struct.pack(">h", 0) + b"\x00"
    block = bytes.fromhex("A1") + _ebml_size(len(block_head) + frame_bytes) + block_head
    # BlockDuration goes before the Block so the frame data can end the cluster.
    block_duration = _element("9B", _ebml_uint(max(duration_ns, 1)))
    group_size = len(block_duration) + len(block) + frame_bytes
    group = bytes.fromhex("A0") + _ebml_size(group_size) + block_duration + block
    cluster_size = len(timestamp) + len(group) + frame_bytes
    return bytes.fromhex("1F43B675") + _ebml_size(cluster_size) + timestamp + group
