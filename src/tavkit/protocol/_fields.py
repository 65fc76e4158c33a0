"""A strict reader over one JSON object: typed getters that name the failing field.

JSON gives us ``bool`` as a subclass of ``int`` and happily decodes ``1e400`` to
``inf``; every getter here rejects what the contract does not allow, and every
failure is a :class:`~tavkit.protocol.messages.FrameError` 10004 whose message is the
field's dotted path and what was expected, so a client developer can fix the frame
without reading server logs.
"""

from __future__ import annotations

import math
import re
from typing import Any, Final

from tavkit.errors import ServerCode
from tavkit.protocol.messages import FrameError

USER_ID_RE: Final = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
"""The contract's userId: 1-64 characters of ``[A-Za-z0-9_.@-]`` (use ``fullmatch``)."""


def utf8_len(text: str) -> int:
    """The size of ``text`` on the wire; the limits are in bytes, not characters."""
    return len(text.encode("utf-8", "surrogatepass"))


class Fields:
    """Typed access to the members of one JSON object, failing with the field's path."""

    def __init__(self, obj: object, path: str, *, ref: str | None = None) -> None:
        self.ref = ref
        self.path = path
        if not isinstance(obj, dict):
            raise self.fail("", "an object")
        self.obj: dict[str, Any] = obj

    def fail(self, name: str, expected: str) -> FrameError:
        """The error saying field ``name`` is not ``expected``."""
        where = f"{self.path}.{name}" if name else self.path
        return FrameError(
            ServerCode.INVALID_PARAMETER, f"{where}: expected {expected}", ref=self.ref
        )

    def has(self, name: str) -> bool:
        """Whether the object has ``name`` at all (``null`` counts as present)."""
        return name in self.obj

    def raw(self, name: str) -> Any:
        """The value of a required field, whatever its type."""
        if name not in self.obj:
            raise FrameError(
                ServerCode.INVALID_PARAMETER, f"{self.path}.{name}: missing", ref=self.ref
            )
        return self.obj[name]

    def sub(self, name: str) -> Fields:
        """A required nested object."""
        return Fields(self.raw(name), f"{self.path}.{name}", ref=self.ref)

    def string(self, name: str, *, max_bytes: int, min_len: int = 0) -> str:
        """A required string of ``min_len`` characters up to ``max_bytes`` UTF-8 bytes."""
        value = self.raw(name)
        if not isinstance(value, str):
            raise self.fail(name, "a string")
        if len(value) < min_len or utf8_len(value) > max_bytes:
            raise self.fail(name, f"a string of {min_len} to {max_bytes} bytes")
        return value

    def opt_string(self, name: str, *, max_bytes: int) -> str | None:
        """An optional string: absent or ``null`` give ``None``."""
        if self.obj.get(name) is None:
            return None
        return self.string(name, max_bytes=max_bytes)

    def user_id(self, name: str) -> str:
        """A required userId of the contract's alphabet."""
        value = self.raw(name)
        if not isinstance(value, str) or not USER_ID_RE.fullmatch(value):
            raise self.fail(name, "a userId (1-64 characters of A-Z a-z 0-9 _ . @ -)")
        return value

    def boolean(self, name: str) -> bool:
        """A required JSON ``true``/``false`` (not 0/1)."""
        value = self.raw(name)
        if not isinstance(value, bool):
            raise self.fail(name, "true or false")
        return value

    def number(self, name: str, *, minimum: float | None = None) -> float:
        """A required finite JSON number, at least ``minimum``."""
        value = self.raw(name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(name, "a number")
        try:
            result = float(value)
        except OverflowError:
            raise self.fail(name, "a finite number") from None
        if not math.isfinite(result) or (minimum is not None and result < minimum):
            bound = "" if minimum is None else f" >= {minimum:g}"
            raise self.fail(name, f"a finite number{bound}")
        return result

    def integer(self, name: str, *, minimum: int, maximum: int) -> int:
        """A required JSON integer within ``[minimum, maximum]``."""
        value = self.raw(name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(name, "an integer")
        if not minimum <= value <= maximum:
            raise self.fail(name, f"an integer from {minimum} to {maximum}")
        return value

    def opt_integer(self, name: str, *, minimum: int, maximum: int) -> int | None:
        """An optional integer: absent or ``null`` give ``None``."""
        if self.obj.get(name) is None:
            return None
        return self.integer(name, minimum=minimum, maximum=maximum)

    def choice(self, name: str, choices: frozenset[str]) -> str:
        """A required string out of ``choices``."""
        value = self.raw(name)
        if not isinstance(value, str) or value not in choices:
            raise self.fail(name, "one of " + ", ".join(sorted(choices)))
        return value

    def array(self, name: str, *, max_items: int) -> list[Any]:
        """A required JSON array of at most ``max_items`` elements."""
        value = self.raw(name)
        if not isinstance(value, list) or len(value) > max_items:
            raise self.fail(name, f"an array of at most {max_items} items")
        return value
