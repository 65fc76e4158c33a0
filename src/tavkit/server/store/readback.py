"""Reading back JSON that rows hold: what an earlier version stored must still be served.

Every JSON value tavkit stores today was checked at the door
(:func:`~tavkit.protocol.json_problem`: valid Unicode text, finite numbers, at most
:data:`~tavkit.protocol.MAX_JSON_DEPTH` deep). Rows written before those checks may
hold what no answer can carry: ``"\\ud800"`` decodes to a lone surrogate that no UTF-8
encoder writes again, ``NaN`` is not JSON, and a value nested hundreds deep breaks the
serialiser of the answer that reads it (thousands deep, the decoder itself). Such a
row must not turn a history read into a 500 for every member, for as long as it is
kept, so the readers (:mod:`tavkit.server.im.service`, :mod:`tavkit.server.logs.service`)
decode through :func:`read_json`, which mends rather than refuses:

* a lone surrogate, in a string or an object key, becomes U+FFFD (the replacement
  character, as a UTF-8 decoder would show a broken byte);
* a number that is not finite becomes ``null``;
* an array or object nested past the bound becomes the string :data:`TOO_DEEP`;
* text that does not decode at all becomes the string :data:`UNREADABLE`.

A clean value (every row stored since the checks) is returned as decoded, after one
iterative scan; only a poisoned one is copied.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Final

from tavkit.protocol import MAX_JSON_DEPTH, json_problem

__all__ = ["TOO_DEEP", "UNREADABLE", "mend", "read_json"]

TOO_DEEP: Final = "[tavkit: nested too deep]"
"""What stands in for an array or object nested deeper than the bound."""
UNREADABLE: Final = "[tavkit: unreadable]"
"""What stands in for stored text that is not JSON at all."""

_LONE_SURROGATE: Final = re.compile("[\ud800-\udfff]")


def read_json(text: str, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Decode ``text`` from a row, mending what could not be served (module docstring).

    ``max_depth`` bounds the decoded value as :func:`~tavkit.protocol.json_problem`
    counts it (a scalar is 0 deep): give the depth the value could have had when it
    was accepted, so a mended value nests no deeper than a clean one.
    """
    try:
        value = json.loads(text)
    except RecursionError:
        return TOO_DEEP
    except ValueError:  # not JSON, or integers too long to convert
        return UNREADABLE
    if json_problem(value, "stored", max_depth=max_depth) is None:
        return value
    return mend(value, max_depth=max_depth)


def mend(value: Any, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """A copy of ``value`` that :func:`~tavkit.protocol.json_problem` accepts.

    Iterative, so a value nested past the interpreter's stack is mended too.
    """
    if type(value) is not dict and type(value) is not list:
        return _scalar(value)
    if max_depth < 1:
        return TOO_DEEP
    root: Any = {} if type(value) is dict else []
    stack: list[tuple[Any, Any, int]] = [(value, root, 0)]
    while stack:
        source, target, depth = stack.pop()
        members: Any = source.items() if type(source) is dict else enumerate(source)
        for key, member in members:
            if type(member) is dict or type(member) is list:
                if depth + 1 >= max_depth:
                    mended: Any = TOO_DEEP
                else:
                    mended = {} if type(member) is dict else []
                    stack.append((member, mended, depth + 1))
            else:
                mended = _scalar(member)
            if type(target) is dict:
                target[_text(key)] = mended
            else:
                target.append(mended)
    return root


def _scalar(value: Any) -> Any:
    if type(value) is str:
        return _text(value)
    if type(value) is float and not math.isfinite(value):
        return None
    return value


def _text(value: str) -> str:
    return value if value.isascii() else _LONE_SURROGATE.sub("\ufffd", value)
