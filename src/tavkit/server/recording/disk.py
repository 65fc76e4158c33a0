"""The recordings disk: how much room is left on it, and the floor recording stops at.

:func:`free_bytes` is a real file-system check (``statvfs`` through
:func:`shutil.disk_usage`) of the file system holding ``<data_dir>/recordings``;
:class:`~tavkit.server.recording.service.RecordingService` takes it as a seam
(``free_space=``) so a test can fake a full disk.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from tavkit.errors import ServerCode, ServerError

__all__ = ["DiskFloorError", "DiskState", "free_bytes"]


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer may still use on the file system holding ``path``.

    ``path`` need not exist yet (the recordings directory is made with the first file):
    its nearest existing parent is asked.
    """
    probe = path
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    return shutil.disk_usage(probe).free


@dataclass(frozen=True)
class DiskState:
    """Free space under the recordings directory against the floor."""

    free: int
    floor: int

    @property
    def below_floor(self) -> bool:
        """Whether recording must stop (and new recordings be refused)."""
        return self.floor > 0 and self.free < self.floor

    def describe(self) -> str:
        """One line for an error message or a log."""
        return (
            f"{_gib(self.free)} free on the recordings disk, below the floor of "
            f"{_gib(self.floor)} (--recording-min-free)"
        )


class DiskFloorError(ServerError):
    """A recording refused because the recordings disk is below its free-space floor.

    Server 14008; the REST layer answers it with HTTP 507 (Insufficient Storage).
    """

    def __init__(self, state: DiskState) -> None:
        super().__init__(ServerCode.RECORDING_FAILED, f"recording refused: {state.describe()}")
        self.state = state


def _gib(size: int) -> str:
    return f"{size / 1024**3:.2f} GiB" if size >= 1024**3 // 10 else f"{size / 1024**2:.1f} MiB"
