"""tavkit's side of the SFU: Janus's VideoRoom moves the media, tavkit stays the control plane.

* :mod:`tavkit.server.sfu.janus`: the Janus API client (sessions, VideoRoom handles,
  typed events).
* :mod:`tavkit.server.sfu.bridge`: rooms and handles on members' behalf
  (``--media-mode sfu``, ``ServerContext.sfu``).
* :mod:`tavkit.server.sfu.recorder`: recording an SFU session from Janus (one
  subscription per publisher, the mesh recorder's files).
* :mod:`tavkit.server.sfu.config`: the Janus configuration folder
  (``tavkit janus config``, :mod:`tavkit.server.sfu.cli`).

What exists and what is planned is in ``docs/sfu.md``.
"""

from typing import Final

__all__ = ["MESH_SIGNAL_REFUSED"]

MESH_SIGNAL_REFUSED: Final = (
    "signal: this room's media goes through the SFU (mediaMode sfu), not the mesh; "
    "this client cannot join it (media-signal frames are the way in)"
)
"""The refusal of a mesh ``signal`` in an SFU room: a mesh-only client (today's browser
component) is told why, instead of a call that half works."""
