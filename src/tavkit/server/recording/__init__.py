"""Recording: the hidden in-process recorder, its rows, and the recordings routes.

The media side (writing a participant's packets into a file, composing) is the
top-level :mod:`tavkit.recording`; this package is the server's control of it.
"""
