"""tavkit's side of the SFU: Janus's VideoRoom moves the media, tavkit stays the control plane.

* :mod:`tavkit.server.sfu.janus`: the Janus API client (sessions, VideoRoom handles,
  typed events).
* :mod:`tavkit.server.sfu.config`: the Janus configuration folder
  (``tavkit janus config``, :mod:`tavkit.server.sfu.cli`).

What exists and what is planned is in ``docs/sfu.md``.
"""
