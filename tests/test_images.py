"""Specification of vidderain.io.images and vidderain.io.files: every layout in and out."""

import os

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from vidderain.errors import InputError
from vidderain.io.files import atomic_output, is_partial
from vidderain.io.images import is_image_path, read_image, write_image
from vidderain.metrics import psnr
from vidderain.pixels import to_float, to_integer

EXIF_ORIENTATION = 0x0112


def random_pixels(shape, dtype, seed=0):
    return np.random.default_rng(seed).integers(0, np.iinfo(dtype).max + 1, shape, dtype=dtype)


@pytest.mark.parametrize(
    ("name", "shape", "dtype"),
    [
        ("gray8.png", (5, 7), np.uint8),
        ("rgb8.png", (5, 7, 3), np.uint8),
        ("rgba8.png", (5, 7, 4), np.uint8),
        ("gray16.png", (5, 7), np.uint16),
        ("rgb16.png", (5, 7, 3), np.uint16),
        ("rgba16.png", (5, 7, 4), np.uint16),
        ("gray8.tif", (5, 7), np.uint8),
        ("rgb8.tiff", (5, 7, 3), np.uint8),
        ("rgba8.tif", (5, 7, 4), np.uint8),
        ("gray16.tif", (5, 7), np.uint16),
        ("rgb16.tif", (5, 7, 3), np.uint16),
        ("rgba16.tif", (5, 7, 4), np.uint16),
        ("gray8.bmp", (5, 7), np.uint8),
        ("rgb8.bmp", (5, 7, 3), np.uint8),
    ],
)
def test_lossless_formats_round_trip_bit_for_bit(tmp_path, name, shape, dtype):
    image = random_pixels(shape, dtype)
    write_image(tmp_path / name, image)
    back = read_image(tmp_path / name)
    assert back.shape == shape and back.dtype == dtype
    np.testing.assert_array_equal(back, image)


def test_paths_with_spaces_and_non_ascii_characters_work(tmp_path):
    image = random_pixels((3, 4, 3), np.uint8)
    write_image(tmp_path / "pluie à 雨.png", image)
    np.testing.assert_array_equal(read_image(tmp_path / "pluie à 雨.png"), image)


def test_rgb_channel_order_is_kept(tmp_path):
    # A pure red image read back as blue would mean BGR leaked out of the OpenCV edge.
    red = np.zeros((2, 3, 3), np.uint8)
    red[:, :, 0] = 255
    write_image(tmp_path / "red.png", red)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "red.png").convert("RGB")), red)
    np.testing.assert_array_equal(read_image(tmp_path / "red.png"), red)


def test_reads_rgba_written_by_another_encoder_in_rgba_order(tmp_path):
    rgba = random_pixels((4, 5, 4), np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "pil.png")
    np.testing.assert_array_equal(read_image(tmp_path / "pil.png"), rgba)


@pytest.mark.parametrize("suffix", [".jpg", ".jpeg", ".webp"])
def test_lossy_formats_come_back_close(tmp_path, make_natural_image, suffix):
    image = to_integer(make_natural_image(48, 64, seed=3))
    write_image(tmp_path / f"image{suffix}", image)
    back = read_image(tmp_path / f"image{suffix}")
    assert back.shape == image.shape and back.dtype == np.uint8
    assert psnr(to_float(back), to_float(image)) > 40


def test_gray_jpeg_stays_gray(tmp_path, make_natural_image):
    gray = to_integer(make_natural_image(16, 24, seed=4)[:, :, 1])
    write_image(tmp_path / "gray.jpg", gray)
    back = read_image(tmp_path / "gray.jpg")
    assert back.shape == gray.shape and back.dtype == np.uint8
    assert np.abs(back.astype(int) - gray).mean() < 2


def test_webp_keeps_alpha_exactly(tmp_path, make_natural_image):
    rgba = np.concatenate([to_integer(make_natural_image(24, 32, seed=5)), random_pixels((24, 32, 1), np.uint8)], axis=2)
    write_image(tmp_path / "a.webp", rgba)
    back = read_image(tmp_path / "a.webp")
    assert back.shape == rgba.shape
    np.testing.assert_array_equal(back[:, :, 3], rgba[:, :, 3])


def write_oriented_jpeg(path, pixels, orientation):
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    Image.fromarray(pixels).save(path, exif=exif.tobytes(), quality=98)


def blocky_pixels(rows, cols, seed=0):
    # Flat 8x8 blocks aligned with JPEG's own blocks survive compression almost exactly.
    return np.kron(random_pixels((rows, cols, 3), np.uint8, seed), np.ones((8, 8, 1), np.uint8))


@pytest.mark.parametrize("suffix", [".jpg", ".jpeg", ".JPG"])
def test_exif_rotated_jpeg_comes_out_upright(tmp_path, suffix):
    write_oriented_jpeg(tmp_path / f"phone{suffix}", blocky_pixels(2, 4), orientation=6)
    stored = np.asarray(Image.open(tmp_path / f"phone{suffix}"))  # decoded, not turned: 16 rows x 32 columns
    image = read_image(tmp_path / f"phone{suffix}")
    # Orientation 6: the camera was turned; a viewer rotates the stored pixels 90 degrees clockwise.
    assert image.shape == (32, 16, 3)
    assert np.abs(image.astype(int) - np.rot90(stored, k=-1)).max() <= 1


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_matches_pillows_transpose(tmp_path, orientation):
    write_oriented_jpeg(tmp_path / "o.jpg", blocky_pixels(3, 5, seed=orientation), orientation)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "o.jpg")))
    image = read_image(tmp_path / "o.jpg")
    assert image.shape == expected.shape
    assert np.abs(image.astype(int) - expected).max() <= 1


def test_palette_png_reads_as_rgb(tmp_path):
    palette_image = Image.fromarray(random_pixels((6, 9, 3), np.uint8)).convert("P", palette=Image.Palette.ADAPTIVE)
    palette_image.save(tmp_path / "palette.png")
    image = read_image(tmp_path / "palette.png")
    assert image.dtype == np.uint8
    np.testing.assert_array_equal(image, np.asarray(palette_image.convert("RGB")))


def test_cmyk_jpeg_reads_as_rgb(tmp_path, make_natural_image):
    rgb = to_integer(make_natural_image(32, 40, seed=6))
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "print.jpg", quality=95)
    image = read_image(tmp_path / "print.jpg")
    assert image.shape == (32, 40, 3) and image.dtype == np.uint8
    assert psnr(to_float(image), to_float(rgb)) > 35


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("empty.png", b""),
        ("text.png", b"this is not an image"),
        ("text.jpg", b"this is not an image either"),
        ("noise.tif", bytes(range(256)) * 4),
    ],
)
def test_non_images_raise_input_error(tmp_path, name, content):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(InputError, match=name):
        read_image(tmp_path / name)


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_truncated_image_raises_input_error(tmp_path, make_natural_image, suffix):
    write_image(tmp_path / f"whole{suffix}", to_integer(make_natural_image(64, 64)))
    data = (tmp_path / f"whole{suffix}").read_bytes()
    (tmp_path / f"cut{suffix}").write_bytes(data[: len(data) // 3])
    with pytest.raises(InputError, match="cut"):
        read_image(tmp_path / f"cut{suffix}")


def test_float_pixels_raise_input_error(tmp_path):
    cv2.imwrite(str(tmp_path / "float.tif"), np.zeros((4, 4, 3), np.float32))
    with pytest.raises(InputError, match="float32"):
        read_image(tmp_path / "float.tif")


def test_missing_file_raises_input_error(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_image(tmp_path / "absent.png")


def test_folder_raises_input_error(tmp_path):
    (tmp_path / "folder.png").mkdir()
    with pytest.raises(InputError, match="folder"):
        read_image(tmp_path / "folder.png")


@pytest.mark.parametrize("suffix", [".jpg", ".jpeg", ".bmp", ".webp"])
def test_sixteen_bits_into_an_eight_bit_format_raise_input_error(tmp_path, suffix):
    with pytest.raises(InputError, match="16-bit"):
        write_image(tmp_path / f"deep{suffix}", np.zeros((4, 4, 3), np.uint16))
    assert list(tmp_path.iterdir()) == []


def test_alpha_into_jpeg_raises_input_error(tmp_path):
    with pytest.raises(InputError, match="alpha"):
        write_image(tmp_path / "clear.jpg", np.zeros((4, 4, 4), np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_unknown_suffix_raises_input_error(tmp_path):
    with pytest.raises(InputError, match=".gif"):
        write_image(tmp_path / "anim.gif", np.zeros((4, 4, 3), np.uint8))


def test_write_into_missing_folder_raises_input_error(tmp_path):
    with pytest.raises(InputError, match="cannot be written"):
        write_image(tmp_path / "absent" / "out.png", np.zeros((4, 4, 3), np.uint8))


def test_write_leaves_only_the_final_file(tmp_path):
    write_image(tmp_path / "out.png", np.zeros((4, 4, 3), np.uint8))
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_written_file_permissions_follow_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        write_image(tmp_path / "out.png", np.zeros((4, 4, 3), np.uint8))
    finally:
        os.umask(old)
    assert (tmp_path / "out.png").stat().st_mode & 0o777 == 0o640


def test_failed_block_leaves_previous_output_untouched_and_no_partial_file(tmp_path):
    final = tmp_path / "out.png"
    final.write_bytes(b"previous")
    with pytest.raises(KeyboardInterrupt):
        with atomic_output(final) as tmp:
            tmp.write_bytes(b"half")
            assert tmp.parent == tmp_path and tmp.suffix == ".png" and is_partial(tmp)
            raise KeyboardInterrupt
    assert final.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_successful_block_replaces_the_output(tmp_path):
    final = tmp_path / "out.png"
    final.write_bytes(b"previous")
    with atomic_output(final) as tmp:
        tmp.write_bytes(b"new")
    assert final.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_is_partial_tells_temporary_files_from_outputs(tmp_path):
    with atomic_output(tmp_path / "frame.png") as tmp:
        assert is_partial(tmp)
    assert not is_partial(tmp_path / "frame.png")


@pytest.mark.parametrize(("name", "expected"), [("a.PNG", True), ("b.jpeg", True), ("c.tiff", True), ("d.gif", False), ("e", False)])
def test_is_image_path_goes_by_suffix_in_any_case(name, expected):
    assert is_image_path(name) is expected
