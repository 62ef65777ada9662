"""Options every camera source shares."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field

from agent.config.base import Strict

_Start = Annotated[int, Field(ge=0)]
_Size = Annotated[int, Field(gt=0)]


class FreezeOptions(Strict):
    max_changed: float = Field(0.05, ge=0, le=0.5, description="A picture counts as the same (frozen) while at most this share of its grid cells changed; 0 = only an identical picture is frozen. The default tolerates a burned-in clock or frame counter.")
    ignore: list[tuple[_Start, _Start, _Size, _Size]] = Field(default_factory=list, description="Rectangles [x, y, width, height] in source pixels (before rotate and roi) left out of the freeze check, e.g. an on-screen clock.")


class CameraOptions(Strict):
    if TYPE_CHECKING:  # each camera plugin's config narrows it to its Literal
        type: str

    fps: float | None = Field(None, gt=0, le=1000, description="Target frames per second; None = as fast as the source delivers.")
    resolution: tuple[int, int] | None = Field(None, description="Requested [width, height]; the source may ignore it.")
    roi: tuple[int, int, int, int] | None = Field(None, description="Region of interest [x, y, width, height] in pixels, applied after rotation.")
    rotate: Literal[0, 90, 180, 270] = Field(0, description="Clockwise rotation applied to every frame.")
    open_timeout_ms: int = Field(5000, ge=100, description="Give up opening the source after this long.")
    read_timeout_ms: int = Field(2000, ge=50, description="A read that takes longer counts as a read error.")
    stall_after_ms: int = Field(2000, ge=50, description="No new frame for this long -> state 'stalled'.")
    frozen_after_s: float = Field(10.0, gt=0, description="The same picture for this long -> state 'stalled' (frozen stream); it holds across reconnects until the picture changes.")
    freeze: FreezeOptions = Field(default_factory=FreezeOptions, description="What counts as the same picture for frozen_after_s.")
    reconnect_initial_ms: int = Field(500, ge=10, description="First reconnect delay; doubles up to reconnect_max_ms, with jitter.")
    reconnect_max_ms: int = Field(30000, ge=100, description="Cap of the reconnect backoff.")
    max_reconnects: int | None = Field(None, ge=0, description="Give up (state 'failed') after this many failed reconnects; None = never.")
