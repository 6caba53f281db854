"""The windows a video job feeds a temporal model: one per frame, edges replicated, a ring buffer."""

from __future__ import annotations

import numpy as np
import pytest

from vidderain.engine import Engine
from vidderain.jobs.windows import check_window, model_inputs, read_ahead, stack_windows
from vidderain.nets import ARCHITECTURES
from vidderain.temporal import WindowSpec, WindowStacker, window_indices


def flat_frames(count: int) -> list[np.ndarray]:
    """Frames that say which they are: frame i is filled with i / 100."""
    return [np.full((8, 16, 3), i / 100, np.float32) for i in range(count)]


@pytest.mark.parametrize("count", [1, 2, 3, 4, 5, 9])
def test_every_frame_gets_its_window_with_replicated_edges(count):
    spec = WindowSpec(5)
    windows = list(stack_windows(enumerate(flat_frames(count)), spec))
    assert [key for key, _ in windows] == list(range(count))
    for centre, (_, window) in enumerate(windows):
        assert window.shape == (8, 16, 15) and window.dtype == np.float32
        shown = [round(float(window[0, 0, 3 * slot]) * 100) for slot in range(5)]
        assert shown == window_indices(centre, count, 2), f"window of frame {centre} of {count}"


def test_a_window_is_stacked_as_soon_as_its_last_neighbour_is_read():
    read = []

    def frames():
        for index, frame in enumerate(flat_frames(8)):
            read.append(index)
            yield index, frame

    for centre, _ in stack_windows(frames(), WindowSpec(5)):
        # Never more than K frames ahead of the centre: the ring holds 2K+1 frames however long the video.
        assert len(read) == min(centre + 3, 8), centre


@pytest.mark.parametrize("begin", [1, 2, 5, 8])
def test_a_stream_that_starts_with_skipped_neighbours_gives_the_windows_of_a_run_from_the_first_frame(begin):
    spec = WindowSpec(5)
    frames = list(enumerate(flat_frames(9)))
    whole = list(stack_windows(frames, spec))
    start = max(0, begin - spec.radius)  # the neighbours a resumed job reads before its first frame
    resumed = list(stack_windows(frames[start:], spec, skip=begin - start))
    assert [key for key, _ in resumed] == list(range(begin, 9))
    for (key, window), (_, expected) in zip(resumed, whole[begin:]):
        np.testing.assert_array_equal(window, expected, f"frame {key}")
    assert [key for key, _ in model_inputs(frames[begin:], WindowSpec(1), skip=0)] == list(range(begin, 9))
    assert [key for key, _ in model_inputs(frames, WindowSpec(1), skip=begin)] == list(range(begin, 9))


def test_aligned_windows_equal_the_stacker_on_the_whole_clip(make_natural_image):
    scene = make_natural_image(72, 120, seed=5)
    clip = [np.ascontiguousarray(scene[:, 3 * i : 3 * i + 96]) for i in range(6)]  # a camera panning 3 px a frame
    spec = WindowSpec(5, align="camera")
    stacker = WindowStacker(spec)
    prepared = [stacker.prepare(frame) for frame in clip]
    for centre, window in stack_windows(enumerate(clip), spec):
        expected = stacker.stack([prepared[i] for i in window_indices(centre, len(clip), 2)])
        np.testing.assert_allclose(window, expected, atol=1e-6, err_msg=f"frame {centre}")


def test_a_single_frame_model_reads_the_frames_as_they_are():
    frames = list(enumerate(flat_frames(3)))
    assert model_inputs(frames, WindowSpec(1)) is frames
    assert read_ahead(WindowSpec(1)) == 4 and read_ahead(WindowSpec(5, align="camera")) == 2


def test_a_window_that_does_not_fit_the_model_is_refused():
    engine = Engine(ARCHITECTURES["temporal-3"].build(), 8)
    check_window(engine, WindowSpec(3, align="camera"))
    with pytest.raises(ValueError, match="reads 9 channels, not a window of 1"):
        check_window(engine, WindowSpec(1))
