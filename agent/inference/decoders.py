"""Pick the output decoder for a manifest's task."""

from __future__ import annotations

from collections.abc import Sequence

from agent.inference.manifest import Manifest
from agent.inference.postprocess import ClassificationDecoder, Decoder
from agent.inference.regions import AnomalyDecoder, SegmentationDecoder
from agent.inference.yolo import YoloDecoder


def make_decoder(manifest: Manifest, output_names: Sequence[str],
                 input_size: tuple[int, int]) -> Decoder:
    """The decoder for the manifest's task. `input_size` is the model input (height, width)."""
    out = manifest.output
    if manifest.task == "classification":
        return ClassificationDecoder(manifest.labels, manifest.activation)
    if manifest.task == "detection":
        assert out.yolo_layout is not None  # the manifest validator guarantees it
        return YoloDecoder(manifest.labels, out.yolo_layout, manifest.activation,
                           out.conf_threshold, out.nms_iou, out.max_detections)
    if manifest.task == "anomaly":
        return AnomalyDecoder(output_names, out, manifest.activation, input_size)
    return SegmentationDecoder(manifest.labels, manifest.activation, out.min_region_px, input_size)
