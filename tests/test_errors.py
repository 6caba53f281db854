"""Errors a user can fix: a setting named by its parameter or by a flag, and the wording of path errors."""

from __future__ import annotations

import pytest

from vidderain.errors import (
    NAME,
    InputError,
    ParameterError,
    choose_another_output,
    no_such,
    not_a_file,
    not_a_folder,
    permission_denied,
)


def test_a_parameter_error_names_the_parameter_and_the_value():
    error = ParameterError("val_split", 1.5, "in [0, 1)")
    assert str(error) == "val_split must be in [0, 1). Received: val_split=1.5"
    assert (error.parameter, error.value) == ("val_split", 1.5)


def test_a_parameter_error_can_be_worded_with_a_flag():
    error = ParameterError("val_split", 1.5, "in [0, 1)")
    assert error.worded("--val-split") == "--val-split must be in [0, 1). Received: --val-split=1.5"


def test_a_parameter_error_can_name_the_setting_inside_the_sentence_and_the_path_it_was_for(tmp_path):
    error = ParameterError("fps", sentence=f"a folder of frames needs {NAME}", path=tmp_path)
    assert str(error) == f"{tmp_path}: a folder of frames needs fps"
    assert error.worded("--fps") == f"{tmp_path}: a folder of frames needs --fps"


def test_a_parameter_error_is_an_input_error_and_a_value_error():
    with pytest.raises(InputError):
        raise ParameterError("tile", -1, "at least 0")
    with pytest.raises(ValueError):
        raise ParameterError("tile", -1, "at least 0")


def test_path_errors_are_worded_one_way(tmp_path):
    assert no_such(tmp_path / "a.mp4") == f"{tmp_path / 'a.mp4'}: no such file"
    assert no_such(tmp_path, "folder") == f"{tmp_path}: no such folder"
    assert not_a_folder(tmp_path, "a folder of frames") == f"{tmp_path}: is a file, not a folder of frames"
    assert not_a_file(tmp_path, "an image") == f"{tmp_path}: is a folder, not an image"
    assert permission_denied(tmp_path, "the folder cannot be read") == f"{tmp_path}: permission denied; the folder cannot be read"
    assert choose_another_output(tmp_path, "the output is the input") == \
        f"{tmp_path}: the output is the input; choose another output path"
