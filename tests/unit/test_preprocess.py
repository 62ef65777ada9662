"""Pre-processing: frame checks, resize/letterbox with exact coordinate mapping, colour,
normalisation and layout."""

from __future__ import annotations

import numpy as np
import pytest

from agent.inference.errors import FrameError
from agent.inference.manifest import InputSpec
from agent.inference.preprocess import (
    Geometry,
    Preprocessor,
    check_frame,
    letterbox,
    normalize,
    resize,
    to_color,
    to_layout,
)


def test_mono_frames_become_three_channels() -> None:
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    for frame in (gray, gray[:, :, None]):
        out = check_frame(frame)
        assert out.shape == (3, 4, 3)
        assert (out[:, :, 0] == gray).all() and (out[:, :, 2] == gray).all()


@pytest.mark.parametrize(
    ("pixels", "words"),
    [
        (np.zeros((8, 8, 3), np.float64), ["dtype", "float64", "uint8"]),
        (np.zeros((8, 8, 3), np.uint16), ["dtype", "uint16"]),
        (np.zeros((8, 8, 4), np.uint8), ["shape", "(8, 8, 4)"]),
        (np.zeros((0, 8, 3), np.uint8), ["shape", "(0, 8, 3)"]),
        (np.zeros((2, 8, 8, 3), np.uint8), ["shape", "(2, 8, 8, 3)"]),
        ([[1, 2]], ["list", "numpy"]),
    ],
)
def test_bad_frames_are_named(pixels: object, words: list[str]) -> None:
    with pytest.raises(FrameError) as err:
        check_frame(pixels)
    for w in words:
        assert w in str(err.value)


def test_resize_maps_boxes_back_exactly() -> None:
    frame = np.zeros((60, 200, 3), np.uint8)
    out, geom = resize(frame, (30, 50))
    assert out.shape == (30, 50, 3)
    assert geom == Geometry(60, 200, 0.25, 0.5)
    back = geom.boxes_to_frame(np.array([[5.0, 3.0, 25.0, 15.0]]))
    np.testing.assert_allclose(back, [[20.0, 6.0, 100.0, 30.0]])


def test_resize_keeps_a_frame_of_the_right_size_untouched() -> None:
    frame = np.random.default_rng(0).integers(0, 255, (30, 50, 3), dtype=np.uint8)
    out, geom = resize(frame, (30, 50))
    assert out is frame and geom.sx == 1.0 and geom.sy == 1.0


def test_letterbox_pads_centred_with_grey() -> None:
    frame = np.full((64, 128, 3), 200, np.uint8)  # wide frame into a square input
    out, geom = letterbox(frame, (64, 64))
    assert out.shape == (64, 64, 3)
    assert geom.sx == geom.sy == 0.5 and geom.pad_x == 0 and geom.pad_y == 16
    assert (out[:16] == 114).all() and (out[48:] == 114).all()
    assert (out[16:48] == 200).all()


def test_letterbox_boxes_map_back_to_the_frame() -> None:
    frame = np.zeros((60, 100, 3), np.uint8)
    frame[20:40, 30:70] = 255  # a white box at x 30..70, y 20..40 (exclusive ends)
    out, geom = letterbox(frame, (64, 64), pad_value=0)
    ys, xs = np.nonzero(out[:, :, 0] > 127)
    found = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], dtype=np.float64)
    back = geom.boxes_to_frame(found)[0]
    np.testing.assert_allclose(back, [30, 20, 70, 40], atol=1.6)
    # a box at the padding maps outside the frame and is clipped to it
    clipped = geom.boxes_to_frame(np.array([[-10.0, 0.0, 80.0, 64.0]]))[0]
    np.testing.assert_allclose(clipped, [0, 0, 100, 60])


def test_letterbox_of_a_tall_frame_pads_left_and_right() -> None:
    frame = np.full((100, 50, 3), 7, np.uint8)
    out, geom = letterbox(frame, (32, 32))
    assert geom.pad_y == 0 and geom.pad_x == 8 and geom.sx == geom.sy == 0.32
    assert (out[:, :8] == 114).all() and (out[:, 24:] == 114).all() and (out[:, 8:24] == 7).all()
    np.testing.assert_allclose(geom.boxes_to_frame(np.array([[8.0, 0, 24, 32]]))[0], [0, 0, 50, 100])


def test_colour_orders() -> None:
    bgr = np.zeros((1, 1, 3), np.uint8)
    bgr[0, 0] = (10, 20, 30)
    assert to_color(bgr, "RGB")[0, 0].tolist() == [30, 20, 10]
    assert to_color(bgr, "BGR")[0, 0].tolist() == [10, 20, 30]
    gray = to_color(bgr, "GRAY")
    assert gray.shape == (1, 1, 1) and gray[0, 0, 0] == round(0.114 * 10 + 0.587 * 20 + 0.299 * 30)


def test_normalize_matches_the_formula() -> None:
    img = np.random.default_rng(1).integers(0, 256, (4, 5, 3), dtype=np.uint8)
    mean, std, scale = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 1 / 255
    got = normalize(img, scale, mean, std)
    want = (img.astype(np.float64) * scale - np.array(mean)) / np.array(std)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_layouts() -> None:
    x = np.arange(2 * 3 * 3, dtype=np.float32).reshape(2, 3, 3)  # H=2, W=3, C=3
    nchw = to_layout(x, "NCHW")
    assert nchw.shape == (1, 3, 2, 3) and nchw.flags.c_contiguous
    assert nchw[0, 1, 1, 2] == x[1, 2, 1]
    nhwc = to_layout(x, "NHWC")
    assert nhwc.shape == (1, 2, 3, 3) and nhwc[0, 1, 2, 1] == x[1, 2, 1]


def test_preprocessor_follows_the_spec() -> None:
    spec = InputSpec(layout="NCHW", size=(2, 2), color="RGB", scale=1 / 255,
                     mean=(0.5, 0.0, 0.0), std=(0.5, 1.0, 1.0))
    frame = np.zeros((4, 4, 3), np.uint8)
    frame[:, :] = (0, 0, 255)  # pure red in BGR
    x, geom = Preprocessor(spec, (2, 2), np.dtype(np.float32))(frame)
    assert x.shape == (1, 3, 2, 2) and x.dtype == np.float32
    np.testing.assert_allclose(x[0, 0], 1.0)  # red: (1 - 0.5) / 0.5
    np.testing.assert_allclose(x[0, 1:], 0.0)
    assert geom.sx == 0.5


def test_preprocessor_feeds_uint8_models_raw_and_fp16_models_half() -> None:
    spec = InputSpec(layout="NHWC", color="BGR", resize="letterbox")
    frame = np.full((10, 20, 3), 99, np.uint8)
    raw, _ = Preprocessor(spec, (20, 20), np.dtype(np.uint8))(frame)
    assert raw.dtype == np.uint8 and raw.shape == (1, 20, 20, 3)
    assert raw[0, 10, 10, 0] == 99 and raw[0, 0, 0, 0] == 114
    half, _ = Preprocessor(spec, (20, 20), np.dtype(np.float16))(frame)
    assert half.dtype == np.float16
    np.testing.assert_allclose(half[0, 10, 10], 99 / 255, rtol=1e-3)


def test_preprocessor_refuses_other_dtypes_and_makes_blank_inputs() -> None:
    with pytest.raises(ValueError, match="int64"):
        Preprocessor(InputSpec(), (8, 8), np.dtype(np.int64))
    blank = Preprocessor(InputSpec(color="GRAY", mean=(0.0,), std=(1.0,)), (8, 6),
                         np.dtype(np.float32)).blank()
    assert blank.shape == (1, 1, 8, 6)
    np.testing.assert_allclose(blank, 128 / 255, rtol=1e-6)


@pytest.mark.parametrize("color", ["RGB", "BGR", "GRAY"])
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("resize_mode", ["resize", "letterbox"])
def test_opencv_blob_path_equals_the_numpy_reference(color: str, layout: str,
                                                     resize_mode: str) -> None:
    n = 1 if color == "GRAY" else 3
    spec = InputSpec(layout=layout, color=color, resize=resize_mode, scale=1 / 255,
                     mean=(0.485, 0.456, 0.406)[:n], std=(0.229, 0.224, 0.225)[:n])
    frame = np.random.default_rng(3).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    fast = Preprocessor(spec, (24, 32), np.dtype(np.float32))
    assert fast._blob is not None  # the installed OpenCV has blobFromImageWithParams
    ref = Preprocessor(spec, (24, 32), np.dtype(np.float32), use_opencv_blob=False)
    (a, ga), (b, gb) = fast(frame), ref(frame)
    assert a.shape == b.shape and a.dtype == b.dtype == np.float32 and ga == gb
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
