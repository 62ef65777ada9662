"""Real video files (written with cv2.VideoWriter) and image folders, read through Camera."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.capture.base import SourceState
from agent.capture.camera import Camera
from agent.capture.slot import LatestFrame
from agent.capture.sources.opencv_source import OpenCVSource
from agent.capture.synthetic_scene import ConveyorScene
from agent.configfile.root import AgentConfig
from agent.runtime.build import build_camera
from agent.types import Frame
from tests.support.camera_events import Events

S = SourceState
FAST = dict(stall_after_ms=300, reconnect_initial_ms=30, reconnect_max_ms=200)


def _level(i: int) -> int:
    return 10 + 12 * (i % 20)  # distinct grey levels survive lossy compression


def _image(i: int, w: int = 160, h: int = 120) -> np.ndarray:
    img = np.full((h, w, 3), _level(i), np.uint8)
    img[: h // 4, : w // 4] = (0, 0, 255)  # a red block top-left: shows rotation
    return img


def write_video(path: Path, fourcc: str, n: int, w: int = 160, h: int = 120) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*fourcc), 25.0, (w, h))
    assert writer.isOpened(), f"VideoWriter {fourcc} cannot write {path}"
    for i in range(n):
        writer.write(_image(i, w, h))
    writer.release()
    return path


def _camera(name: str, cam_cfg: dict[str, object], base: Path) -> Camera:
    cfg = AgentConfig.model_validate(_agent_dict({name: cam_cfg})).cameras[name]
    return build_camera(name, cfg, base)


def _agent_dict(cameras: dict[str, dict[str, object]]) -> dict[str, object]:
    """The smallest valid AgentConfig around some cameras: validates them for real."""
    return {
        "site": "t", "agent_id": "t", "cameras": cameras, "models": {}, "plcs": {},
        "sinks": {}, "lines": {},
    }


def _drain(slot: LatestFrame, timeout: float = 10.0) -> list[Frame]:
    frames = []
    while (f := slot.get(timeout=timeout)) is not None:
        frames.append(f)
    return frames


def _read_to_end(name: str, cam_cfg: dict[str, object],
                 base: Path) -> tuple[Camera, LatestFrame, Events, list[Frame]]:
    """Start a camera on a finite source, drain its slot until the source ends, stop it."""
    cam = _camera(name, {**FAST, **cam_cfg}, base)
    slot = cam.subscribe()
    ev = Events()
    cam.add_listener(ev)
    cam.start()
    frames = _drain(slot)
    cam.stop()
    return cam, slot, ev, frames


def _mean_level(f: Frame) -> float:
    h, w = f.pixels.shape[:2]
    return float(f.pixels[h // 2 :, w // 2 :].mean())


@pytest.mark.parametrize(("fourcc", "ext"), [("MJPG", "avi"), ("mp4v", "mp4")])
def test_video_file_read_back_in_order_then_stopped(tmp_path: Path, fourcc: str, ext: str) -> None:
    write_video(tmp_path / f"clip.{ext}", fourcc, 12)
    cam, slot, ev, frames = _read_to_end("cam1", {"type": "opencv", "source": f"clip.{ext}",
                                                "fps": 200}, tmp_path)
    st = cam.stats()
    assert st.captured == 12 and slot.put_count == 12
    assert len(frames) + slot.dropped == 12
    assert [f.seq for f in frames] == sorted({f.seq for f in frames})
    last = frames[-1]
    assert last.seq == 12 and last.camera_id == "cam1" and last.pixels.shape == (120, 160, 3)
    assert abs(_mean_level(last) - _level(11)) < 6
    assert cam.state is S.STOPPED
    assert [(e.previous, e.state) for e in ev.items] == [
        (S.CONNECTING, S.STREAMING), (S.STREAMING, S.STOPPED)
    ]
    assert "end of source" in ev.items[-1].message


def test_looping_file_rotated_and_cropped(tmp_path: Path) -> None:
    write_video(tmp_path / "clip.avi", "MJPG", 5)
    cam = _camera("cam1", {
        "type": "opencv", "source": str(tmp_path / "clip.avi"), "loop": True, "fps": 200,
        "rotate": 90, "roi": [0, 0, 100, 150], **FAST,
    }, Path("/nonexistent"))
    slot = cam.subscribe()
    cam.start()
    got: list[Frame] = []
    while len(got) < 12:
        f = slot.get(timeout=10)
        assert f is not None
        got.append(f)
    cam.stop()
    assert cam.stats().captured >= 12  # more than the 5 frames in the file: it looped
    assert got[0].pixels.shape == (150, 100, 3)
    # rotated 90 clockwise: the red block (rows 0-29, cols 0-39 of 160x120) is now at
    # rows 0-39, cols 90-119; the roi keeps cols 0-99 of it
    px = got[0].pixels
    assert px[5, 95, 2] > 200 and px[5, 95, 0] < 60  # red
    assert px[5, 5, 2] < 200 and abs(int(px[5, 5, 0]) - int(px[5, 5, 2])) < 8  # grey




def _mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(int) - b.astype(int)).mean())


@pytest.mark.parametrize("decoder", ["libjpeg-turbo", "backend"])
def test_mjpeg_packets_decoded_by_libjpeg_turbo_match_ffmpeg(tmp_path: Path, decoder: str) -> None:
    scene = ConveyorScene(7, width=160, height=120, frames_per_part=2, defect_rate=0.5)
    writer = cv2.VideoWriter(str(tmp_path / "clip.avi"), cv2.VideoWriter.fourcc(*"MJPG"), 25.0,
                             (160, 120))
    textured = [scene.next_frame().image for _ in range(8)]
    for img in textured:
        writer.write(img)
    writer.release()
    write_video(tmp_path / "clip.mp4", "mp4v", 3)
    for name in ("clip.avi", "clip.mp4"):  # one slow reader: no frame replaced in the slot
        cam, _, _, got_frames = _read_to_end("cam1", {"type": "opencv", "source": name, "fps": 50,
                                                      "mjpeg_decoder": decoder}, tmp_path)
        frames = [f.pixels for f in got_frames]
        assert isinstance(cam.source, OpenCVSource)
        assert cam.source.decodes_jpeg is (decoder == "libjpeg-turbo" and name == "clip.avi")
        if name == "clip.avi":
            assert len(frames) == 8 and frames[0].shape == (120, 160, 3)
            ffmpeg = cv2.VideoCapture(str(tmp_path / name), cv2.CAP_FFMPEG)
            for got, want in zip(frames, textured, strict=True):
                ok, by_ffmpeg = ffmpeg.read()
                assert ok
                # the two decoders round and upsample chroma differently, and are as faithful
                assert _mad(got, by_ffmpeg) < 1.5
                assert _mad(got, want) < _mad(by_ffmpeg, want) + 0.3
            ffmpeg.release()


def _break_frame_5(path: Path, how: str) -> None:
    """Frame 5 of a 12-frame MJPG AVI loses its JPEG start marker, or declares half its height
    in its JPEG header (as one field of an interlaced frame would)."""
    data = bytearray(path.read_bytes())
    starts = [i for i in range(len(data) - 2) if data[i:i + 3] == b"\xff\xd8\xff"]
    assert len(starts) == 12
    if how == "no start marker":
        data[starts[4]:starts[4] + 3] = b"\x00\x00\x00"
    else:
        sof = data.index(b"\xff\xc0", starts[4])  # baseline frame header: length, precision,
        assert data[sof + 5:sof + 7] == (120).to_bytes(2, "big")  # then height, width
        data[sof + 5:sof + 7] = (60).to_bytes(2, "big")
    path.write_bytes(data)


@pytest.mark.parametrize(("how", "message"), [
    ("no start marker", "is not a JPEG libjpeg-turbo can decode"),
    ("half height", "decodes to 160x60 but the stream is 160x120"),
])
def test_mjpeg_frame_libjpeg_cannot_decode_whole_is_a_read_error_and_the_rest_stream(
        tmp_path: Path, how: str, message: str) -> None:
    _break_frame_5(write_video(tmp_path / "clip.avi", "MJPG", 12), how)
    cam, slot, ev, frames = _read_to_end("cam1", {"type": "opencv", "source": "clip.avi",
                                                "fps": 200}, tmp_path)
    assert cam.stats().captured == 11 and cam.stats().read_errors == 1
    assert len(frames) + slot.dropped == 11
    assert all(f.pixels.shape == (120, 160, 3) for f in frames)
    errors = [e.message for e in ev.items if e.error]
    assert len(errors) == 1
    assert "frame 5 of file" in errors[0] and message in errors[0]
    assert "mjpeg_decoder: backend" in errors[0]
    assert cam.state is S.STOPPED and "end of source" in ev.items[-1].message


def test_not_a_video_and_missing_file_are_error_events_and_capture_retries(tmp_path: Path) -> None:
    (tmp_path / "notes.avi").write_text("this is not a video")
    bad = _camera("bad", {"type": "opencv", "source": "notes.avi", **FAST}, tmp_path)
    gone = _camera("gone", {"type": "opencv", "source": "gone.mp4", **FAST}, tmp_path)
    write_video(tmp_path / "ok.avi", "MJPG", 30)
    good = _camera("good", {"type": "opencv", "source": "ok.avi", "loop": True, "fps": 100, **FAST},
                   tmp_path)
    evs = {c.name: Events() for c in (bad, gone, good)}
    for c in (bad, gone, good):
        c.add_listener(evs[c.name])
    good_slot = good.subscribe()
    for c in (bad, gone, good):
        c.start()
    for name in ("bad", "gone"):
        assert evs[name].wait(lambda items: sum(e.error for e in items) >= 2)
    assert good_slot.get(timeout=10) is not None
    assert good.state is S.STREAMING
    for c in (bad, gone, good):
        c.stop()
    bad_msg = evs["bad"].items[0].message
    assert "camera 'bad'" in bad_msg and str(tmp_path / "notes.avi") in bad_msg
    assert "not a video file" in bad_msg
    gone_msg = evs["gone"].items[0].message
    assert "camera 'gone'" in gone_msg and "gone.mp4 does not exist" in gone_msg
    assert bad.stats().reconnects >= 1 and bad.stats().open_errors >= 2
    assert not any(e.error for e in evs["good"].items)


def test_missing_device_is_an_error_event(tmp_path: Path) -> None:
    cam = _camera("usb", {"type": "opencv", "source": "/dev/video97", **FAST}, tmp_path)
    ev = Events()
    cam.add_listener(ev)
    cam.start()
    assert ev.wait(lambda items: any(e.error for e in items))
    cam.stop()
    assert "camera 'usb' (device /dev/video97)" in ev.items[0].message
    assert "does not exist" in ev.items[0].message


def _write_pngs(folder: Path, n: int) -> None:
    folder.mkdir()
    for i in range(n):
        cv2.imwrite(str(folder / f"img_{i:03d}.png"), _image(i))


def test_folder_sorted_with_unreadable_image_reported_and_skipped(tmp_path: Path) -> None:
    _write_pngs(tmp_path / "imgs", 5)
    (tmp_path / "imgs" / "img_002b.png").write_bytes(b"\x89PNG broken")
    cam, slot, ev, frames = _read_to_end(
        "cam2", {"type": "folder", "path": "imgs", "pattern": "*.png", "fps": 50}, tmp_path)
    levels = [round(_mean_level(f)) for f in frames]
    assert slot.dropped == 0  # paced at 50 fps, the consumer keeps up
    assert levels == [_level(i) for i in range(5)]
    errors = [e for e in ev.items if e.error]
    assert len(errors) == 1 and "cannot read image img_002b.png" in errors[0].message
    assert "camera 'cam2'" in errors[0].message
    st = cam.stats()
    assert (st.captured, st.read_errors, st.state) == (5, 1, S.STOPPED)


def test_empty_folder_is_an_error_and_files_appearing_later_are_picked_up(tmp_path: Path) -> None:
    (tmp_path / "imgs").mkdir()
    cam = _camera("cam3", {"type": "folder", "path": "imgs", "loop": True, "fps": 50, **FAST},
                  tmp_path)
    slot = cam.subscribe()
    ev = Events()
    cam.add_listener(ev)
    cam.start()
    assert ev.wait(lambda items: any(e.state is S.RECONNECTING for e in items))
    assert "no files match" in ev.items[0].message and "camera 'cam3'" in ev.items[0].message
    cv2.imwrite(str(tmp_path / "imgs" / "a.png"), _image(3))
    cv2.imwrite(str(tmp_path / "imgs" / "b.png"), _image(4))
    f = slot.get(timeout=10)
    cam.stop()
    assert f is not None and round(_mean_level(f)) in (_level(3), _level(4))


@pytest.mark.parametrize(("fps", "all_frames"), [(None, True), (200.0, False)])
def test_unpaced_recording_follows_a_slow_consumer_paced_one_drops(
        tmp_path: Path, fps: float | None, all_frames: bool) -> None:
    """Without fps a recording is read at its consumer's pace (nothing decoded only to be
    dropped); with fps it behaves like a live camera: the newest frame wins, drops counted."""
    import time

    path = write_video(tmp_path / "v.avi", "MJPG", 40)
    cfg: dict[str, object] = {"type": "opencv", "source": str(path)}
    if fps is not None:
        cfg["fps"] = fps
    cam = _camera("c", cfg, tmp_path)
    slot = cam.subscribe()
    cam.start()
    got = []
    try:
        while (f := slot.get(timeout=10)) is not None:
            got.append(f.seq)
            time.sleep(0.02)  # a slow consumer: 50 frames/s at most
    finally:
        cam.stop()
    if all_frames:
        assert len(got) == 40 and slot.dropped == 0
    else:
        assert len(got) < 40 and slot.dropped == 40 - len(got)
