"""The JSON tavkit takes in: nested at most 32 deep, valid Unicode text, finite numbers.

Whatever a member sends that the server stores (a chat message, ``custom`` data, a
client log line) must read back for every member, for as long as it is kept. Python's
``json`` decodes more than that: ``"\\ud800"`` becomes a lone surrogate that no UTF-8
encoder will write again, ``1e400`` becomes ``inf``, which JSON cannot carry, and
nesting is bounded only by the interpreter's stack, so a value stored 256 deep later
breaks the serialiser of the REST answer that reads it (and a body of 1,000 ``[``
breaks the parser itself). Every frame and every request body is therefore checked
at the door, by one definition:

* **depth**: a scalar is 0 deep, an array or object one more than its deepest member;
  a whole document (a frame, a request body) is at most :data:`MAX_JSON_DEPTH`;
* **text**: every string, object keys included, encodes to UTF-8 (no lone surrogate);
* **numbers**: every number is finite (``NaN`` and ``Infinity`` are not JSON at all).

Refusals are the seed's server codes and name the place (``message.data[3].x``): 10003
when the text is not JSON or nests deeper than the bound (the server refuses to
deserialise it, however deep Python could go), 10004 for a lone surrogate or a number
out of range.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Final

from tavkit.errors import ServerCode, ServerError

__all__ = ["MAX_JSON_DEPTH", "json_problem", "load_json"]

MAX_JSON_DEPTH: Final = 32
"""How deeply arrays and objects may nest in a frame or a request body (the document is 1)."""

_NAME_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_Path = tuple[Any, ...]
"""A place in a document, as a linked list: ``(parent, key)``; ``()`` is the root."""


def load_json(text: str | bytes, root: str = "body") -> Any:
    """Decode ``text`` and check it (module docstring); ``root`` names it in errors.

    Raises :class:`~tavkit.errors.ServerError` 10003 or 10004.
    """
    value = decode_json(text, root)
    problem = json_problem(value, root)
    if problem is not None:
        raise problem
    return value


def decode_json(text: str | bytes, root: str) -> Any:
    """Decode only: 10003 for what is not JSON or too deep for Python to decode.

    For callers that name the document after its content (a frame after its ``type``)
    and so run :func:`json_problem` themselves.
    """
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise _too_deep(root, MAX_JSON_DEPTH) from None
    except ValueError as exc:  # JSONDecodeError, bad UTF-8, NaN/Infinity, huge integers
        raise ServerError(ServerCode.JSON_DECODE, f"{root} is not JSON: {exc}") from None


def json_problem(value: Any, root: str, *, max_depth: int = MAX_JSON_DEPTH) -> ServerError | None:
    """Why ``value`` (as :func:`json.loads` gives it) could not be stored; None if it can.

    The error names the first bad place (``root.data[2].name: ...``) and is safe to
    send back: whatever the client sent is quoted, never echoed raw. Iterative, so a
    value nested past the interpreter's stack is refused rather than crashing here;
    scalars are checked in place by their exact type, so a 64 KiB flat array costs a
    few milliseconds.
    """
    if type(value) is not dict and type(value) is not list:
        problem = _scalar_problem(value)
        return None if problem is None else _invalid(root, problem)
    stack: list[tuple[Any, int, _Path]] = [(value, 0, ())]
    while stack:
        node, depth, path = stack.pop()
        if depth >= max_depth:
            return _too_deep(_where(root, path), max_depth)
        if type(node) is dict:
            for key in node:
                if not _is_text(key):
                    return _invalid(_where(root, path), "an object key is not valid Unicode text")
            members: Any = node.items()
        else:
            members = enumerate(node)
        for key, member in members:
            kind = type(member)
            if kind is dict or kind is list:
                stack.append((member, depth + 1, (path, key)))
            elif (kind is str or kind is float) and (problem := _scalar_problem(member)):
                return _invalid(_where(root, (path, key)), problem)
    return None


def _scalar_problem(value: Any) -> str | None:
    if type(value) is str:
        return None if _is_text(value) else "expected valid Unicode text (no lone surrogate)"
    if type(value) is float and not math.isfinite(value):
        return "expected a finite number"
    return None


def _is_text(value: str) -> bool:
    """Whether ``value`` encodes to UTF-8: it holds no lone surrogate."""
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _where(root: str, path: _Path) -> str:
    keys: list[Any] = []
    while path:
        path, key = path
        keys.append(key)
    parts = [root]
    for key in reversed(keys):
        if isinstance(key, int):
            parts.append(f"[{key}]")
        elif _NAME_RE.fullmatch(key):
            parts.append(f".{key}")
        else:  # quoted: ASCII only, so a hostile key cannot break the message or a log line
            parts.append(f"[{json.dumps(key[:32])}]")
    return "".join(parts)


def _too_deep(where: str, max_depth: int) -> ServerError:
    return ServerError(ServerCode.JSON_DECODE, f"{where}: nested more than {max_depth} levels deep")


def _invalid(where: str, problem: str) -> ServerError:
    return ServerError(ServerCode.INVALID_PARAMETER, f"{where}: {problem}")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
