"""Post-processing: activations, classification, YOLO v5/v8/end2end decoding with
class-aware NMS, anomaly maps and segmentation masks -> findings with exact boxes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.inference.errors import FrameError
from agent.inference.manifest import OutputSpec
from agent.inference.postprocess import check_finite, classify, sigmoid, softmax
from agent.inference.preprocess import Geometry
from agent.inference.regions import AnomalyDecoder, SegmentationDecoder, connected_regions
from agent.inference.yolo import YoloDecoder, batched_nms, nms
from agent.types import Finding

IDENTITY = Geometry(64, 64, 1.0, 1.0)
LETTERBOX = Geometry(frame_h=64, frame_w=128, sx=0.5, sy=0.5, pad_x=0.0, pad_y=16.0)


def test_softmax_and_sigmoid_are_stable() -> None:
    p = softmax(np.array([1000.0, 0.0, -1000.0]))
    np.testing.assert_allclose(p, [1.0, 0.0, 0.0])
    np.testing.assert_allclose(softmax(np.log(np.array([1.0, 3.0]))), [0.25, 0.75])
    np.testing.assert_allclose(sigmoid(np.array([-1000.0, 0.0, 1000.0])), [0.0, 0.5, 1.0])


def test_classify_returns_every_label_highest_first() -> None:
    logits = np.log(np.array([[0.1, 0.6, 0.1, 0.2]]))
    found = classify(logits, ["ok", "scratch", "spot", "crack"], "softmax")
    assert [f.label for f in found] == ["scratch", "crack", "ok", "spot"]  # tie keeps order
    np.testing.assert_allclose([f.score for f in found], [0.6, 0.2, 0.1, 0.1])
    assert all(f.box is None for f in found)


def test_classify_activations() -> None:
    assert classify(np.array([[0.0, 2.0]]), ["a", "b"], "sigmoid")[1] == Finding("a", 0.5)
    raw = classify(np.array([[0.3, 0.7]]), ["a", "b"], "none")
    assert raw == (Finding("b", pytest.approx(0.7)), Finding("a", pytest.approx(0.3)))


def _numpy_classify(logits: np.ndarray, labels: list[str], activation: str) -> list[Finding]:
    scores = {"softmax": softmax, "sigmoid": sigmoid}.get(activation, np.asarray)(logits[0])
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    return [Finding(labels[i], float(scores[i])) for i in order]


@settings(max_examples=300, deadline=None)
@given(values=st.lists(st.integers(-400, 400), min_size=1, max_size=70),
       activation=st.sampled_from(["softmax", "sigmoid", "none"]))
def test_classify_with_plain_floats_matches_numpy(values: list[int], activation: str) -> None:
    """Up to SMALL_OUTPUT labels classify works on Python floats: same ranking (ties in label
    order) and the same scores as the numpy functions; beyond, numpy itself."""
    logits = (np.array(values, dtype=np.float32) / 8)[None]  # multiples of 1/8: many ties
    labels = [f"c{i}" for i in range(len(values))]
    got = classify(logits, labels, activation)  # type: ignore[arg-type]
    want = _numpy_classify(logits, labels, activation)
    want_score = {f.label: f.score for f in want}
    assert sorted(f.label for f in got) == sorted(want_score)  # every label, once
    # float64 both ways; numpy's and libm's tanh/exp may differ in the last bit, so near
    # saturation (sigmoid(35.75) vs sigmoid(36.5)) one may tie where the other does not
    np.testing.assert_allclose([f.score for f in got], [want_score[f.label] for f in got],
                               rtol=1e-12, atol=1e-15)
    for a, b in zip(got, got[1:], strict=False):
        assert a.score > b.score or (a.score == b.score and int(a.label[1:]) < int(b.label[1:]))
        assert want_score[a.label] >= want_score[b.label] - 1e-12  # numpy's ranking, up to ulps
    assert all(type(f.score) is float for f in got)


def test_classify_names_a_label_count_mismatch() -> None:
    with pytest.raises(FrameError, match="5 values but the manifest has 4 labels"):
        classify(np.zeros((1, 5)), ["a", "b", "c", "d"], "softmax")
    with pytest.raises(FrameError, match="batch 2"):
        classify(np.zeros((2, 4)), ["a", "b", "c", "d"], "softmax")


def test_check_finite_counts_bad_values() -> None:
    check_finite([np.ones(3), np.array([1, 2])], ["a", "b"])
    with pytest.raises(FrameError, match="'b' holds 2 NaN/inf"):
        check_finite([np.ones(3), np.array([np.nan, 1.0, np.inf])], ["a", "b"])


def test_nms_keeps_the_best_of_overlapping_boxes() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], dtype=np.float64)
    scores = np.array([0.8, 0.9, 0.7])
    assert nms(boxes, scores, 0.5).tolist() == [1, 2]
    assert nms(boxes, scores, 0.7).tolist() == [1, 0, 2]  # IoU 81/119 = 0.68 is kept
    assert batched_nms(boxes, scores, np.array([0, 1, 0]), 0.5).tolist() == [1, 0, 2]
    assert batched_nms(np.zeros((0, 4)), np.zeros(0), np.zeros(0), 0.5).tolist() == []


def v8_output() -> np.ndarray:
    rows = np.array([  # cx cy w h score_a score_b
        [20, 20, 10, 10, 0.9, 0.1],
        [21, 20, 10, 10, 0.8, 0.0],  # same class, IoU 0.82 with the first: suppressed
        [21, 20, 10, 10, 0.1, 0.7],  # other class at the same place: kept
        [50, 50, 4, 6, 0.2, 0.0],  # below conf_threshold 0.25
    ], dtype=np.float32)
    return rows.T[None]  # (1, 4 + nc, N)


def test_yolo_v8_decodes_exact_boxes_with_class_aware_nms() -> None:
    dec = YoloDecoder(["a", "b"], "v8", "none", 0.25, 0.45, 300)
    dec.check([v8_output()])
    found = dec([v8_output()], IDENTITY)
    assert found == (Finding("a", pytest.approx(0.9), (15.0, 15.0, 25.0, 25.0)),
                     Finding("b", pytest.approx(0.7), (16.0, 15.0, 26.0, 25.0)))


def test_yolo_v11_is_v8_and_boxes_map_through_the_letterbox() -> None:
    found = YoloDecoder(["a", "b"], "v11", "none", 0.25, 0.45, 1)([v8_output()], LETTERBOX)
    # input box (15, 15, 25, 25); frame x = x / 0.5, y = (y - 16) / 0.5 clipped at 0
    assert found == (Finding("a", pytest.approx(0.9), (30.0, 0.0, 50.0, 18.0)),)


def test_yolo_v8_accepts_rows_first_and_applies_sigmoid() -> None:
    out = np.array([[[32, 32, 8, 4, 0.0, 2.0]]], dtype=np.float32)  # (1, N, 4 + nc)
    found = YoloDecoder(["a", "b"], "v8", "sigmoid", 0.25, 0.45, 300)([out], IDENTITY)
    # one box per anchor, with its best class
    assert found == (Finding("b", pytest.approx(float(sigmoid(np.array(2.0)))),
                             (28.0, 30.0, 36.0, 34.0)),)


def test_yolo_v5_multiplies_objectness() -> None:
    out = np.array([[  # cx cy w h obj a b
        [20, 20, 10, 10, 0.9, 1.0, 0.0],
        [21, 20, 10, 10, 0.5, 0.9, 0.0],  # 0.45, suppressed by the first
        [40, 40, 10, 10, 0.2, 0.0, 1.0],  # objectness below 0.25
        [50, 10, 4, 2, 0.6, 0.1, 0.5],  # 0.3, class b
    ]], dtype=np.float32)
    dec = YoloDecoder(["a", "b"], "v5", "none", 0.25, 0.45, 300)
    dec.check([out])
    assert dec([out], IDENTITY) == (
        Finding("a", pytest.approx(0.9), (15.0, 15.0, 25.0, 25.0)),
        Finding("b", pytest.approx(0.3), (48.0, 9.0, 52.0, 11.0)),
    )


def test_yolo_end2end_takes_boxes_as_they_are() -> None:
    out = np.array([[[1, 2, 3, 4, 0.9, 1], [5, 6, 7, 8, 0.1, 0], [0, 0, 10, 10, 0.5, 0]]],
                   dtype=np.float32)
    found = YoloDecoder(["a", "b"], "end2end", "none", 0.25, 0.45, 300)([out], IDENTITY)
    assert found == (Finding("b", pytest.approx(0.9), (1.0, 2.0, 3.0, 4.0)),
                     Finding("a", pytest.approx(0.5), (0.0, 0.0, 10.0, 10.0)))
    out[0, 0, 5] = 7
    with pytest.raises(FrameError, match="class index 7"):
        YoloDecoder(["a", "b"], "end2end", "none", 0.25, 0.45, 300)([out], IDENTITY)


def test_yolo_shape_mismatch_names_the_shape() -> None:
    dec = YoloDecoder(["a", "b", "c"], "v8", "none", 0.25, 0.45, 300)
    with pytest.raises(FrameError, match=r"\[1, 6, 4\] does not hold 7 values"):
        dec.check([v8_output()])
    with pytest.raises(FrameError, match="3-D"):
        dec([np.zeros((6, 4))], IDENTITY)


def test_connected_regions() -> None:
    mask = np.zeros((5, 6), bool)
    mask[0:2, 0:2] = True
    mask[4, 5] = True
    regions = connected_regions(mask)
    assert [r[0] for r in regions] == [(0.0, 0.0, 2.0, 2.0), (5.0, 4.0, 6.0, 5.0)]
    assert [r[0] for r in connected_regions(mask, min_px=2)] == [(0.0, 0.0, 2.0, 2.0)]


def anomaly_map() -> np.ndarray:
    amap = np.zeros((1, 1, 8, 8), np.float32)
    amap[0, 0, 1:3, 1:4] = 0.9
    amap[0, 0, 1, 1] = 0.95
    amap[0, 0, 6, 6] = 0.7
    return amap


def test_anomaly_score_and_regions_in_frame_pixels() -> None:
    geom = Geometry(64, 64, 0.5, 0.5)  # frame 64x64 -> input 32x32; map 8x8 -> x4
    dec = AnomalyDecoder(["pred_score", "anomaly_map"], OutputSpec(anomaly_threshold=0.5),
                         "none", (32, 32))
    outputs = [np.array([0.8], np.float32), anomaly_map()]
    dec.check(outputs)
    assert dec(outputs, geom) == (
        Finding("anomaly", pytest.approx(0.8)),
        Finding("anomaly", pytest.approx(0.95), (8.0, 8.0, 32.0, 24.0)),
        Finding("anomaly", pytest.approx(0.7), (48.0, 48.0, 56.0, 56.0)),
    )


def test_anomaly_outputs_found_by_shape_and_small_regions_dropped() -> None:
    spec = OutputSpec(anomaly_threshold=0.5, min_region_px=2)
    dec = AnomalyDecoder(["map", "score"], spec, "none", (8, 8))
    outputs = [anomaly_map(), np.array([[0.3]], np.float32)]
    dec.check(outputs)
    assert dec(outputs, IDENTITY) == (Finding("anomaly", pytest.approx(0.3)),
                                      Finding("anomaly", pytest.approx(0.95), (1.0, 1.0, 4.0, 3.0)))
    map_only = AnomalyDecoder(["map"], OutputSpec(map_threshold=0.92), "none", (8, 8))
    map_only.check([anomaly_map()])
    assert map_only([anomaly_map()], IDENTITY) == (
        Finding("anomaly", pytest.approx(0.95)),  # image score = map maximum
        Finding("anomaly", pytest.approx(0.95), (1.0, 1.0, 2.0, 2.0)),
    )


def test_anomaly_without_score_or_map_is_refused() -> None:
    dec = AnomalyDecoder(["a"], OutputSpec(), "none", (8, 8))
    with pytest.raises(FrameError, match="no anomaly score"):
        dec.check([np.zeros(5)])
    with pytest.raises(FrameError, match="'nope' named in the manifest"):
        AnomalyDecoder(["a"], OutputSpec(score_output="nope"), "none", (8, 8))


def test_segmentation_regions_per_class() -> None:
    logits = np.zeros((1, 3, 4, 4), np.float32)
    logits[0, 0] = 5.0
    logits[0, 1, 0, 0:2] = 10.0
    logits[0, 2, 3, 3] = 10.0
    dec = SegmentationDecoder(["background", "scratch", "dent"], "softmax", 1, (4, 4))
    dec.check([logits])
    p = float(softmax(np.array([5.0, 10.0, 0.0]))[1])
    assert dec([logits], Geometry(8, 8, 0.5, 0.5)) == (
        Finding("scratch", pytest.approx(p), (0.0, 0.0, 4.0, 2.0)),
        Finding("dent", pytest.approx(p), (6.0, 6.0, 8.0, 8.0)),
    )
    ids = np.zeros((1, 4, 4), np.int64)
    ids[0, 2:4, 0] = 2
    assert dec([ids], IDENTITY) == (Finding("dent", 1.0, (0.0, 2.0, 1.0, 4.0)),)
    with pytest.raises(FrameError, match=r"expected \(1, 3, h, w\)"):
        dec.check([np.zeros((1, 2, 4, 4), np.float32)])
