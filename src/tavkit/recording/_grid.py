"""The composite's picture: participants' frames letterboxed into the cells of a grid.

Plain byte work on yuv420p planes (PyAV without numpy): each frame is scaled once by
swscale to fit its cell, and its rows are copied into a canvas that starts black, so
the bars around a letterboxed picture and the cells of absent participants need no
work at all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from av import VideoFrame

__all__ = ["Canvas", "Cell", "Placed", "grid_cells", "grid_shape", "place"]

_BLACK: Final = (16, 128, 128)  # limited-range Y, U, V


@dataclass(frozen=True, slots=True)
class Cell:
    """A cell's rectangle on the canvas (even coordinates, for 4:2:0 chroma)."""

    x: int
    y: int
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class Placed:
    """A frame scaled into a cell: its rows per plane and where they start."""

    x: int
    y: int
    planes: tuple[list[bytes], list[bytes], list[bytes]]


def grid_shape(count: int) -> tuple[int, int]:
    """Columns and rows: 1 -> 1x1, 2 -> 2x1, 3-4 -> 2x2, 5-9 -> 3x3, then square."""
    if count <= 1:
        return 1, 1
    if count == 2:
        return 2, 1
    side = math.ceil(math.sqrt(count))
    return side, side


def grid_cells(count: int, width: int, height: int) -> list[Cell]:
    """The cells of ``count`` participants on a ``width`` x ``height`` canvas, row-major."""
    columns, rows = grid_shape(count)
    cell_w, cell_h = (width // columns) & ~1, (height // rows) & ~1
    left = ((width - columns * cell_w) // 2) & ~1
    top = ((height - rows * cell_h) // 2) & ~1
    return [
        Cell(left + (i % columns) * cell_w, top + (i // columns) * cell_h, cell_w, cell_h)
        for i in range(count)
    ]


def place(frame: VideoFrame, cell: Cell) -> Placed:
    """Scale ``frame`` to fit ``cell`` keeping its aspect ratio, centred (letterbox)."""
    scale = min(cell.width / frame.width, cell.height / frame.height)
    width = max(2, min(cell.width, round(frame.width * scale)) & ~1)
    height = max(2, min(cell.height, round(frame.height * scale)) & ~1)
    scaled = frame.reformat(width=width, height=height, format="yuv420p")
    planes: list[list[bytes]] = []
    for index, plane in enumerate(scaled.planes):
        div = 1 if index == 0 else 2
        row_bytes, stride, data = width // div, plane.line_size, bytes(plane)
        planes.append([data[y * stride : y * stride + row_bytes] for y in range(height // div)])
    x = cell.x + (((cell.width - width) // 2) & ~1)
    y = cell.y + (((cell.height - height) // 2) & ~1)
    return Placed(x, y, (planes[0], planes[1], planes[2]))


class Canvas:
    """Assembles one output frame from the placed pictures of every cell."""

    def __init__(self, width: int, height: int) -> None:
        if width < 2 or height < 2 or width % 2 or height % 2:
            raise ValueError("the canvas needs an even size of at least 2x2")
        self.width = width
        self.height = height
        probe = VideoFrame(width, height, "yuv420p")
        self._blank = [
            bytes([_BLACK[i]]) * plane.buffer_size for i, plane in enumerate(probe.planes)
        ]

    def render(self, pictures: list[Placed]) -> VideoFrame:
        """A black frame with every picture copied in (later ones on top)."""
        frame = VideoFrame(self.width, self.height, "yuv420p")
        for index, plane in enumerate(frame.planes):
            div = 1 if index == 0 else 2
            stride = plane.line_size
            out = bytearray(self._blank[index])
            for picture in pictures:
                x, y = picture.x // div, picture.y // div
                for row_index, row in enumerate(picture.planes[index]):
                    start = (y + row_index) * stride + x
                    out[start : start + len(row)] = row
            plane.update(bytes(out))
        return frame
