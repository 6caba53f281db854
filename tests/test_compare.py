"""Before/after pictures: side by side and split, in every image layout."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from vidderain.cli import app
from vidderain.jobs.compare import compose
from vidderain.io.images import read_image, write_image
from vidderain.pixels import to_integer


@pytest.mark.parametrize("shape,dtype", [((20, 30), np.uint8), ((20, 30, 3), np.uint16), ((20, 30, 4), np.uint8)])
def test_side_by_side_puts_input_left_and_result_right(shape, dtype):
    before = np.full(shape, 10, dtype)
    after = np.full(shape, 200, dtype)
    picture = compose(before, after, "side")
    assert picture.shape == (20, 60, *shape[2:]) and picture.dtype == dtype
    assert (picture[:, :30] == 10).all() and (picture[:, 30:] == 200).all()


def test_split_shows_input_left_of_a_bright_line_and_result_right():
    before = np.zeros((10, 100, 3), np.uint8)
    after = np.full((10, 100, 3), 100, np.uint8)
    picture = compose(before, after, "split", split=0.3)
    assert picture.shape == before.shape
    assert (picture[:, :29] == 0).all()
    assert (picture[:, 30] == 255).all()
    assert (picture[:, 31:] == 100).all()


def test_no_mode_returns_the_result():
    after = np.ones((4, 4), np.uint8)
    assert compose(np.zeros_like(after), after, None) is after


def test_folder_compare_side_writes_input_and_result_in_one_image(tmp_path, trained_model_path, make_natural_image):
    folder = tmp_path / "in"
    folder.mkdir()
    write_image(folder / "a.png", to_integer(make_natural_image(40, 56)))
    result = CliRunner().invoke(app, ["folder", str(folder), str(tmp_path / "out"), "--model", str(trained_model_path),
                                      "--compare", "side"])
    assert result.exit_code == 0, result.output
    picture = read_image(tmp_path / "out" / "a.png")
    assert picture.shape == (40, 112, 3)
    assert (picture[:, :56] == read_image(folder / "a.png")).all()
