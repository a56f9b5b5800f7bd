"""Tests of :mod:`cxrcore.data.images`: decoding untrusted bytes into (size, size) uint8 grayscale."""

from __future__ import annotations

import concurrent.futures as cf
import io
import pickle

import numpy as np
import pytest
from PIL import Image, ImageFile

from cxrcore.data.images import (
    REJECTION_REASONS,
    DecodedImage,
    ImageRejected,
    decode_image,
    encode_jpeg,
    encode_png,
)
from tests.fixtures_images import (
    BAD_IMAGE_CASES,
    DEFAULT_SIZE,
    VALID_IMAGE_CASES,
    exif_orientation_jpeg,
    gradient,
    image_bytes,
    jpeg_bytes,
    png_12bit_in_16bit,
    png_bomb,
    png_bytes,
)


def _png(img: Image.Image, **params) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format="PNG", **params)
    return buffer.getvalue()


# --------------------------------------------------------------------------------------------------- valid inputs
@pytest.mark.parametrize("size", [16, 64])
@pytest.mark.parametrize("case", sorted(VALID_IMAGE_CASES))
def test_every_mode_and_format_decodes_to_square_uint8(case: str, size: int) -> None:
    factory, expected_format, expected_mode = VALID_IMAGE_CASES[case]
    decoded = decode_image(factory(), size=size)
    assert isinstance(decoded, DecodedImage)
    assert decoded.pixels.dtype == np.uint8
    assert decoded.pixels.shape == (size, size)
    assert decoded.format == expected_format
    assert decoded.orig_mode == expected_mode
    assert (decoded.orig_width, decoded.orig_height) == DEFAULT_SIZE
    # The fixtures are gradients: the content must survive (not a constant or an all-black image).
    assert decoded.pixels.std() > 10


def test_grayscale_png_is_preserved_exactly_without_resizing() -> None:
    pixels = gradient(32, 32)
    decoded = decode_image(_png(Image.fromarray(pixels)), size=32)
    np.testing.assert_array_equal(decoded.pixels, pixels)


@pytest.mark.parametrize(
    ("low", "high"),
    [(0, 4095), (1000, 1100), (0, 65535), (30000, 30001)],
    ids=["12-bit", "narrow-window", "full-16-bit", "two-levels"],
)
def test_16_bit_images_are_scaled_by_their_own_range_to_the_full_8_bit_range(low: int, high: int) -> None:
    decoded = decode_image(png_12bit_in_16bit((64, 64), low=low, high=high), size=64)
    assert decoded.orig_mode == "I;16"
    assert decoded.pixels.min() == 0
    assert decoded.pixels.max() == 255


def test_16_bit_scaling_is_linear() -> None:
    values = np.array([[1000, 2000], [3000, 5000]], dtype=np.uint16).repeat(16, axis=0).repeat(16, axis=1)
    decoded = decode_image(_png(Image.fromarray(values)), size=32)
    expected = np.rint((values.astype(float) - 1000) * 255 / 4000).astype(np.uint8)
    np.testing.assert_array_equal(decoded.pixels, expected)


@pytest.mark.parametrize("mode", ["I;16", "F"])
def test_constant_high_bit_depth_image_becomes_zeros(mode: str) -> None:
    if mode == "I;16":
        img = Image.fromarray(np.full((20, 20), 1234, dtype=np.uint16))
        data = _png(img)
    else:
        img = Image.fromarray(np.full((20, 20), 0.5, dtype=np.float32))
        buffer = io.BytesIO()
        img.save(buffer, format="TIFF")
        data = buffer.getvalue()
    decoded = decode_image(data, size=16)
    assert decoded.orig_mode == mode
    assert not decoded.pixels.any()


def test_float_image_with_nan_and_inf_uses_the_finite_range() -> None:
    values = np.linspace(-1.0, 1.0, 400, dtype=np.float32).reshape(20, 20)
    values[0, 0] = np.nan
    values[0, 1] = np.inf
    buffer = io.BytesIO()
    Image.fromarray(values).save(buffer, format="TIFF")
    decoded = decode_image(buffer.getvalue(), size=20)
    assert decoded.pixels[0, 0] == 0
    assert decoded.pixels[-1, -1] == 255


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_alpha_is_composited_onto_black(mode: str) -> None:
    img = Image.new(mode, (20, 20), (255, 0) if mode == "LA" else (255, 255, 255, 0))
    img.paste((255, 255) if mode == "LA" else (255, 255, 255, 255), (0, 0, 20, 10))  # opaque top half
    decoded = decode_image(_png(img), size=20)
    assert (decoded.pixels[:8] == 255).all()
    assert (decoded.pixels[12:] == 0).all()


def test_palette_transparency_is_composited_onto_black() -> None:
    img = Image.new("P", (20, 20), 1)
    img.putpalette([255, 255, 255] * 2 + [0, 0, 0] * 254)
    decoded = decode_image(_png(img, transparency=1), size=16)
    assert not decoded.pixels.any()
    opaque = decode_image(_png(img), size=16)
    assert (opaque.pixels == 255).all()


def test_first_frame_of_an_animated_gif_is_used() -> None:
    frames = [Image.new("L", (20, 20), value) for value in (200, 10, 90)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    decoded = decode_image(buffer.getvalue(), size=16)
    assert decoded.format == "GIF"
    assert abs(int(decoded.pixels.mean()) - 200) <= 2


@pytest.mark.parametrize(
    ("orientation", "bright_side"),
    [(1, "top"), (3, "bottom"), (6, "right"), (8, "left")],
)
def test_exif_orientation_is_applied(orientation: int, bright_side: str) -> None:
    # Stored landscape with a white top half; orientation 6 displays it rotated 90 degrees clockwise.
    decoded = decode_image(exif_orientation_jpeg(orientation, size=(64, 32)), size=16)
    pixels = decoded.pixels.astype(float)
    sides = {
        "top": pixels[:4].mean(),
        "bottom": pixels[-4:].mean(),
        "left": pixels[:, :4].mean(),
        "right": pixels[:, -4:].mean(),
    }
    assert sides[bright_side] > 240
    assert min(sides.values()) < 15
    # orig_* are the stored (header) dimensions.
    assert (decoded.orig_width, decoded.orig_height) == (64, 32)


def test_large_jpeg_uses_draft_decoding_without_losing_quality() -> None:
    data = jpeg_bytes("RGB", size=(1600, 1200), quality=95)
    decoded = decode_image(data, size=128)
    assert (decoded.orig_width, decoded.orig_height, decoded.orig_mode) == (1600, 1200, "RGB")
    with Image.open(io.BytesIO(data)) as img:
        reference = np.asarray(img.convert("L").resize((128, 128), Image.Resampling.LANCZOS), dtype=float)
    assert np.abs(decoded.pixels.astype(float) - reference).mean() < 1.0


def test_upscaling_small_images_works() -> None:
    decoded = decode_image(png_bytes("L", size=(17, 23)), size=256)
    assert decoded.pixels.shape == (256, 256)
    assert decoded.pixels.std() > 10


def test_only_pixels_are_returned() -> None:
    exif = Image.Exif()
    exif[0x010E] = "patient: John Doe"  # ImageDescription
    buffer = io.BytesIO()
    Image.fromarray(gradient(32, 32)).save(buffer, format="JPEG", exif=exif.tobytes())
    decoded = decode_image(buffer.getvalue(), size=32)
    assert set(vars(decoded)) == {"pixels", "orig_width", "orig_height", "orig_mode", "format", "dicom"}
    assert decoded.dicom is None  # DICOM facts only for DICOM files (tests/test_dicom.py)
    with Image.open(io.BytesIO(encode_png(decoded.pixels))) as again:
        assert not again.getexif()
        assert "exif" not in again.info


def test_decoding_is_thread_safe_and_deterministic() -> None:
    inputs = [factory() for factory, _, _ in VALID_IMAGE_CASES.values()] + [f() for f, _ in BAD_IMAGE_CASES.values()]

    def outcome(data: bytes):
        try:
            return decode_image(data, size=32).pixels.tobytes()
        except ImageRejected as exc:
            return exc.reason

    serial = [outcome(data) for data in inputs]
    with cf.ThreadPoolExecutor(max_workers=8) as pool:
        for _ in range(3):
            assert list(pool.map(outcome, inputs)) == serial


# --------------------------------------------------------------------------------------------------- bad inputs
@pytest.mark.parametrize("case", sorted(BAD_IMAGE_CASES))
def test_bad_inputs_are_rejected_with_the_right_reason(case: str) -> None:
    factory, reason = BAD_IMAGE_CASES[case]
    with pytest.raises(ImageRejected) as caught:
        decode_image(factory(), size=64)
    assert caught.value.reason == reason
    assert caught.value.reason in REJECTION_REASONS
    assert caught.value.detail


def test_too_large_file_is_rejected_before_parsing() -> None:
    with pytest.raises(ImageRejected) as caught:
        decode_image(png_bytes("L"), size=64, max_bytes=100)
    assert caught.value.reason == "too-large-file"


def test_own_pixel_limit_applies_before_decoding() -> None:
    # 8000 x 8000 = 64 M pixels: under Pillow's own limit, over the default max_pixels of 50 M.
    with pytest.raises(ImageRejected) as caught:
        decode_image(png_bomb(8000, 8000), size=64)
    assert caught.value.reason == "decompression-bomb"
    assert "64000000" in caught.value.detail
    with pytest.raises(ImageRejected) as caught:
        decode_image(png_bytes("L", size=(48, 40)), size=64, max_pixels=48 * 40 - 1)
    assert caught.value.reason == "decompression-bomb"
    assert decode_image(png_bytes("L", size=(48, 40)), size=64, max_pixels=48 * 40).pixels.shape == (64, 64)


@pytest.mark.filterwarnings("error::PIL.Image.DecompressionBombWarning")
def test_pillow_bomb_warning_turned_error_is_a_rejection() -> None:
    with pytest.raises(ImageRejected) as caught:
        decode_image(png_bomb(10_000, 10_000), size=64, max_pixels=10**9)
    assert caught.value.reason == "decompression-bomb"


def test_global_pillow_settings_are_never_changed() -> None:
    max_pixels = Image.MAX_IMAGE_PIXELS
    for factory, _ in BAD_IMAGE_CASES.values():
        with pytest.raises(ImageRejected):
            decode_image(factory(), size=32)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    assert Image.MAX_IMAGE_PIXELS == max_pixels


def test_corrupt_image_data_is_rejected_as_corrupt() -> None:
    data = bytearray(image_bytes("RGB", "PNG", (64, 64)))
    idat = data.find(b"IDAT")
    data[idat + 8 : idat + 40] = b"\xff" * 32  # garbage inside the zlib stream, length unchanged
    with pytest.raises(ImageRejected) as caught:
        decode_image(bytes(data), size=32)
    assert caught.value.reason in {"corrupt", "truncated"}


def test_rejection_is_picklable() -> None:
    error = ImageRejected("truncated", "image file is truncated")
    again = pickle.loads(pickle.dumps(error))
    assert (again.reason, again.detail, str(again)) == (error.reason, error.detail, str(error))


# --------------------------------------------------------------------------------------------------- validation
@pytest.mark.parametrize("size", [0, 15, 2049, -128, 128.0, "128", True, None])
def test_size_is_validated(size) -> None:
    with pytest.raises(ValueError, match=r"Received: size="):
        decode_image(png_bytes("L"), size=size)


@pytest.mark.parametrize("size", [16, 2048])
def test_size_bounds_are_inclusive(size: int) -> None:
    assert decode_image(png_bytes("L"), size=size).pixels.shape == (size, size)


@pytest.mark.parametrize("name", ["max_pixels", "max_bytes"])
@pytest.mark.parametrize("value", [0, -1, 1.5, True])
def test_limits_are_validated(name: str, value) -> None:
    with pytest.raises(ValueError, match=rf"Received: {name}="):
        decode_image(png_bytes("L"), size=32, **{name: value})


def test_data_must_be_bytes() -> None:
    with pytest.raises(TypeError, match="Received: type"):
        decode_image("not bytes", size=32)  # type: ignore[arg-type]
    assert decode_image(bytearray(png_bytes("L")), size=32).pixels.shape == (32, 32)


# --------------------------------------------------------------------------------------------------- encoders
def test_encode_png_round_trips_exactly() -> None:
    pixels = gradient(40, 40)
    assert decode_image(encode_png(pixels), size=40).pixels.tolist() == pixels.tolist()
    rgb = np.stack([pixels] * 3, axis=-1)
    with Image.open(io.BytesIO(encode_png(rgb))) as img:
        assert (img.format, img.mode, img.size) == ("PNG", "RGB", (40, 40))


def test_encode_jpeg_round_trips_closely() -> None:
    pixels = gradient(64, 64)
    data = encode_jpeg(pixels, quality=95)
    with Image.open(io.BytesIO(data)) as img:
        assert (img.format, img.mode) == ("JPEG", "L")
    decoded = decode_image(data, size=64).pixels.astype(int)
    assert np.abs(decoded - pixels.astype(int)).max() <= 4


@pytest.mark.parametrize(
    "pixels",
    [np.zeros((8, 8), dtype=np.float32), np.zeros((8, 8, 4), dtype=np.uint8), np.zeros(8, dtype=np.uint8)],
    ids=["float", "rgba", "1d"],
)
@pytest.mark.parametrize("encoder", [encode_png, encode_jpeg])
def test_encoders_validate_pixels(encoder, pixels: np.ndarray) -> None:
    with pytest.raises(ValueError, match="Received: pixels"):
        encoder(pixels)


@pytest.mark.parametrize("quality", [0, 101, 95.0, True])
def test_encode_jpeg_validates_quality(quality) -> None:
    with pytest.raises(ValueError, match="Received: quality="):
        encode_jpeg(np.zeros((8, 8), dtype=np.uint8), quality=quality)
