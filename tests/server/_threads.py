"""A check that a test left no aiortc media thread behind, and a release for those it did.

aiortc gives every started receiver a *non-daemon* decoder thread (``audio-decoder``,
``video-decoder``) that ends only when its receiver stops. One peer connection left
open - a client whose close was cut short by a timeout, a recorder not stopped -
keeps that thread blocked on its queue forever, and the interpreter then hangs at
exit waiting for it, long after the test run has reported. Tests of recorders and
calls end with :func:`no_decoder_threads_left`, so the leak fails the test that caused
it, and the threads are released first, so the run can still exit.
"""

from __future__ import annotations

import queue
import threading
import time

from tavkit.client._decode import InlineDecoding

__all__ = ["media_threads", "no_decoder_threads_left", "release"]


def media_threads() -> list[threading.Thread]:
    """The live non-daemon decoder threads aiortc starts for received media."""
    return [
        thread
        for thread in threading.enumerate()
        if not thread.daemon and thread.name.endswith("-decoder")
    ]


def release(thread: threading.Thread) -> bool:
    """End a stranded decoder thread as its receiver's ``stop()`` would (a None on its queue).

    aiortc's ``decoder_worker(loop, input_q, output_q, decode_error)`` leaves its loop on
    None; the thread keeps its arguments in ``_args`` (the queue may be tavkit's
    :class:`InlineDecoding`, which ends the same way). False if there was no queue.
    """
    for argument in getattr(thread, "_args", ()):
        if isinstance(argument, queue.Queue | InlineDecoding):
            argument.put(None)
            return True
    return False


def no_decoder_threads_left(within: float = 10.0) -> None:
    """Assert every aiortc decoder thread has ended (they take a moment to see their stop)."""
    deadline = time.monotonic() + within
    while media_threads() and time.monotonic() < deadline:
        time.sleep(0.05)
    left = media_threads()
    for thread in left:
        release(thread)
    assert not left, f"peer connections left open: {[thread.name for thread in left]}"
