"""Recordings: one Matroska file per participant, and an offline composite of a session.

:class:`ParticipantRecorder` stores what one participant sends, as received where the
codec allows; :func:`probe` describes a file after the fact (a crash included);
:func:`compose` renders a session's files into one MP4 grid with mixed audio.
"""

from tavkit.recording.compose import ComposeInput, ComposeResult, compose
from tavkit.recording.info import RecordingInfo, probe
from tavkit.recording.writer import ParticipantRecorder

__all__ = [
    "ComposeInput",
    "ComposeResult",
    "ParticipantRecorder",
    "RecordingInfo",
    "compose",
    "probe",
]
