"""Record a live aiortc link until killed: ``python _crash_writer.py OUT.mkv SECONDS``.

Prints ``recording`` once ``SECONDS`` of media have been recorded, then keeps
recording; the test SIGKILLs it there, so the writer never gets to close the file.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from tavkit.recording import ParticipantRecorder

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.recording._peers import linked_peers


async def main(path: Path, seconds: float) -> None:
    """Record until the process dies; announce when enough is on disk."""
    async with linked_peers() as link:
        recorder = ParticipantRecorder(path, user_id="crash", passthrough=True)
        for receiver, track in link.received:
            recorder.add_receiver(receiver, track)
        await recorder.start()
        while recorder.started_at is None:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        await asyncio.sleep(seconds)
        print("recording", flush=True)
        await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), float(sys.argv[2])))
