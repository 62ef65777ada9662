"""Image-folder source: sorted files, optional loop, fixed fps."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import Field

from agent.capture.base import Grab, SourceError
from agent.capture.sources.camera_options import CameraOptions
from agent.config.plugin import Plugin


class FolderCameraConfig(CameraOptions):
    type: Literal["folder"] = Field(description="Folder of images, read in sorted order.")
    path: str = Field(description="Folder path (relative paths are relative to the config file).")
    pattern: str = Field("*", description="Glob of files to read, e.g. '*.png'.")
    loop: bool = Field(False, description="Start again at the first image after the last.")


PLUGIN = Plugin("folder", FolderCameraConfig, "agent.capture.sources.folder_source:build_folder_source")


class FolderSource:
    """Reads the files of a folder in sorted name order. The listing is taken at open(),
    so files added later are seen after the next loop or reconnect. A file that cannot
    be decoded is a read error naming it; the next read moves on to the next file."""

    live = False

    def __init__(self, camera_id: str, folder: Path, pattern: str = "*", loop: bool = False) -> None:
        self.camera_id = camera_id
        self.folder = folder
        self.pattern = pattern
        self.loop = loop
        self.description = f"folder {folder} ({pattern})"
        self._files: list[Path] = []
        self._index = 0

    def open(self) -> None:
        if not self.folder.is_dir():
            raise SourceError(f"{self.description}: folder does not exist")
        self._files = self._list()
        self._index = 0
        if not self._files:
            raise SourceError(f"{self.description}: no files match")

    def read(self, clock: Callable[[], float]) -> Grab | None:
        import cv2

        if self._index >= len(self._files):
            if not self.loop or not self._files:
                return None
            self._files = self._list() or self._files
            self._index = 0
        path = self._files[self._index]
        self._index += 1
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        t_grab = clock()
        if image is None:
            raise SourceError(f"{self.description}: cannot read image {path.name}")
        return Grab(image=image, t_grab=t_grab)

    def close(self) -> None:
        self._files = []
        self._index = 0

    def _list(self) -> list[Path]:
        return sorted(p for p in self.folder.glob(self.pattern) if p.is_file())


def build_folder_source(name: str, cfg: FolderCameraConfig, base_dir: Path) -> FolderSource:
    folder = Path(cfg.path).expanduser()
    folder = folder if folder.is_absolute() else base_dir / folder
    return FolderSource(name, folder, cfg.pattern, cfg.loop)
