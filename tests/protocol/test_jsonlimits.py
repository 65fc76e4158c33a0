"""The one rule for JSON that is taken in: depth, Unicode text, finite numbers."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tavkit.errors import ServerCode, ServerError
from tavkit.protocol import MAX_JSON_DEPTH, json_problem, load_json, parse_client_frame


def arrays(levels: int) -> str:
    """``levels`` nested arrays as JSON text."""
    return "[" * levels + "]" * levels


def refusal(text: str | bytes) -> ServerError:
    """The error ``load_json`` raises for ``text``."""
    with pytest.raises(ServerError) as caught:
        load_json(text)
    return caught.value


def test_a_document_may_nest_exactly_the_bound() -> None:
    """32 levels (the document itself counted) are accepted; 33 are refused with 10003."""
    assert load_json(arrays(MAX_JSON_DEPTH)) is not None
    too_deep = refusal(arrays(MAX_JSON_DEPTH + 1))
    assert too_deep.code is ServerCode.JSON_DECODE
    assert "nested more than 32 levels deep" in too_deep.message


@pytest.mark.parametrize("levels", [1000, 100_000])
def test_nesting_past_the_interpreter_stack_is_refused_not_crashed(levels: int) -> None:
    """1,000 or 100,000 ``[`` are 10003 like any document over the bound."""
    assert refusal("[" * levels).code is ServerCode.JSON_DECODE


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('{"a": ["ok", "\\ud800"]}', "body.a[1]"),
        ('{"a": {"\\udfff": 1}}', "body.a"),
        ('"\\udc00"', "body"),
        ('{"n": [1, 1e400]}', "body.n[1]"),
        ('{"weird key\\n": -1e400}', 'body["weird key\\n"]'),
    ],
)
def test_lone_surrogates_and_infinite_numbers_are_10004_naming_the_place(
    text: str, where: str
) -> None:
    """A lone surrogate (value or key) or a number out of range is 10004 at its path."""
    error = refusal(text)
    assert error.code is ServerCode.INVALID_PARAMETER
    assert error.message.startswith(f"{where}: "), error.message


def test_a_refusal_never_echoes_a_hostile_key_raw() -> None:
    """The place is quoted: a key with a newline or a surrogate stays ASCII in the message."""
    error = refusal('{"line\\nbreak \\ud800": {"k": NaN}}'.replace("NaN", "1e400"))
    assert error.message.isascii() and "\n" not in error.message


def test_valid_unicode_and_extreme_finite_numbers_are_accepted() -> None:
    """Astral characters, NUL, non-characters, 300-digit integers and float extremes pass."""
    value: Any = {
        "\U0001f600": ["\x00", "\ufffe\uffff\U0010ffff", 10**300, 1.7976931348623157e308, 5e-324],
    }
    assert load_json(json.dumps(value)) == value
    assert json_problem(value, "x") is None


def test_not_json_is_10003() -> None:
    """NaN, Infinity, bad UTF-8 and over-long integers are not JSON."""
    for raw in ("NaN", '{"a": -Infinity}', b"\xff\xfe{", "9" * 5000):
        assert refusal(raw).code is ServerCode.JSON_DECODE


def test_a_frame_refusal_keeps_the_frame_id_as_ref() -> None:
    """A refused message frame names its place after its type and carries its id."""
    with pytest.raises(ServerError) as caught:
        parse_client_frame(
            '{"type":"message","id":"m-1","clientMsgId":"c","kind":"text","text":"\\ud800"}'
        )
    assert caught.value.message.startswith("message.text: ")
    assert getattr(caught.value, "ref", None) == "m-1"
