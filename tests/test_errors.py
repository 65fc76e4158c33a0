"""The error model against the seed's tables: every code, its module, its wire shape."""

from __future__ import annotations

import inspect
import re
from typing import Any

import pytest

import tavkit.errors as errors_module
from tavkit.errors import (
    AvkitCode,
    AvkitError,
    ErrorModule,
    HttpCode,
    HttpError,
    ServerCode,
    ServerError,
    TAvKitError,
    TrtcCode,
    TrtcError,
    all_codes,
    error,
    http_status,
    lookup,
)

# Copied by hand from the seed (TAvKit-README.md, 3.8.6), in table order.
SEED: list[tuple[str, int, str]] = [
    ("trtc", -1301, "打开摄像头失败"),
    ("trtc", -1302, "打开麦克风失败"),
    ("trtc", -1307, "推流连接断开"),
    ("trtc", -1019, "进房失败或者退房成功"),
    ("trtc", 10001, "请先对摄像头进行授权"),
    ("trtc", 10002, "请先对麦克风进行授权"),
    ("trtc", 5000, "退出通话"),
    ("server", 10000, "服务器错误"),
    ("server", 10001, "解析url或者请求body错误"),
    ("server", 10002, "json序列列化失败"),
    ("server", 10003, "json反序列列化失败"),
    ("server", 10004, "参数无效"),
    ("server", 10005, "未授权"),
    ("server", 10006, "数据库请求错误"),
    ("server", 14000, "进房失败"),
    ("server", 14001, "退房失败"),
    ("server", 14002, "参数中的房间号与用户当前的房间号不不匹配"),
    ("server", 14003, "房间已经关闭"),
    ("server", 14004, "用户已经退出房间"),
    ("server", 14005, "更新心跳错误"),
    ("server", 14006, "查询房间内用户信息错误"),
    ("server", 14007, "没找到对应UUID的房间"),
    ("server", 14008, "获取录制文件失败"),
    ("http", 10000, "服务器或者网络错误"),
    ("avkit", 10001, "没有权限使用视频组件"),
    ("avkit", 10002, "缺少必要参数userId"),
    ("avkit", 10003, "缺少必要参数sdkAppId"),
    ("avkit", 10004, "缺少必要参数userSig"),
    ("avkit", 10005, "缺少必要参数roomId"),
    ("avkit", 70346, "缺少必要参数userSig"),
    ("avkit", 80, "进房秘钥privateMapKey不能为空"),
    ("avkit", 82, "参数检测失败"),
    ("avkit", 86, "进房秘钥privateMapKey已过期"),
    ("avkit", 87, "进房秘钥privateMapKey不正确"),
    ("avkit", 88, "还没有购买实时音视频套餐包"),
]

PUBLIC_API = {
    "AvkitCode",
    "AvkitError",
    "ErrorCode",
    "ErrorModule",
    "HttpCode",
    "HttpError",
    "ServerCode",
    "ServerError",
    "ServerUnavailable",
    "TAvKitError",
    "TrtcCode",
    "TrtcError",
    "all_codes",
    "error",
    "http_status",
    "lookup",
}

EXCEPTION_OF = {"trtc": TrtcError, "server": ServerError, "http": HttpError, "avkit": AvkitError}


def _without_seed_stutter(text: str) -> str:
    """The seed doubles a character twice ("序列列化", "不不匹配"); compare without that."""
    return re.sub(r"(列|不)\1", r"\1", text)


def test_every_seed_code_exists_in_its_module_in_table_order() -> None:
    """all_codes() is exactly the seed's (module, code) list, nothing more, nothing less."""
    assert [(code.module.value, int(code)) for code in all_codes()] == [
        (module, number) for module, number, _ in SEED
    ]


@pytest.mark.parametrize(("module", "number", "seed_zh"), SEED)
def test_chinese_messages_are_the_seeds(module: str, number: int, seed_zh: str) -> None:
    """Each code's Chinese message is the seed's description (its typos corrected)."""
    assert lookup(module, number).zh == _without_seed_stutter(seed_zh)


@pytest.mark.parametrize("code", all_codes(), ids=repr)
def test_every_code_has_english_and_chinese_messages(code: Any) -> None:
    """Both messages exist and ``message(lang)`` picks the right one."""
    assert code.en.strip() and code.zh.strip()
    assert code.message("en") == code.en
    assert code.message("zh") == code.zh


@pytest.mark.parametrize("code", all_codes(), ids=repr)
def test_wire_round_trip_preserves_every_error(code: Any) -> None:
    """from_dict(to_dict(e)) == e for every code, with default and specific messages."""
    for message in (None, "something specific went wrong"):
        exc = error(code, message)
        wire = exc.to_dict()
        assert wire == {
            "module": code.module.value,
            "errorCode": int(code),
            "errorMsg": message or code.en,
        }
        back = TAvKitError.from_dict(wire)
        assert back == exc
        assert type(back) is type(exc) is EXCEPTION_OF[code.module.value]


@pytest.mark.parametrize(("module", "number", "seed_zh"), SEED)
def test_lookup_by_module_and_number(module: str, number: int, seed_zh: str) -> None:
    """lookup((module, code)) finds the member of that module, from ints or strings."""
    code = lookup(module, number)
    assert (code.module.value, int(code)) == (module, number)
    assert lookup(ErrorModule(module), str(number)) is code


def test_same_number_means_different_things_per_module() -> None:
    """10001 is three different errors, told apart by their module."""
    found = {lookup(module, 10001) for module in ("trtc", "server", "avkit")}
    assert found == {
        TrtcCode.CAMERA_NOT_AUTHORISED,
        ServerCode.BAD_REQUEST,
        AvkitCode.NO_PERMISSION,
    }
    assert error(TrtcCode.CAMERA_NOT_AUTHORISED) != error(ServerCode.BAD_REQUEST)


@pytest.mark.parametrize(("module", "code"), [("http", 10001), ("avkit", 70001), ("trtc", "x")])
def test_lookup_of_unknown_codes_is_a_key_error(module: str, code: Any) -> None:
    """A number the module's table lacks, or no number at all, raises KeyError."""
    with pytest.raises(KeyError):
        lookup(module, code)


def test_from_dict_accepts_the_seeds_string_codes() -> None:
    """The seed documents errorCode as a String; "10005" parses as server 10005."""
    back = TAvKitError.from_dict({"module": "server", "errorCode": "10005", "errorMsg": "no"})
    assert back == ServerError(ServerCode.UNAUTHORISED, "no")


@pytest.mark.parametrize(
    "data",
    [
        {"module": "avkit", "errorCode": 1},
        {"module": "cloud", "errorCode": 10000},
        {"errorCode": 10000},
        {"module": "http"},
        ["http", 10000],
    ],
)
def test_from_dict_refuses_what_is_not_a_seed_error(data: Any) -> None:
    """Unknown modules or codes, missing fields or non-objects are ValueError."""
    with pytest.raises(ValueError):
        TAvKitError.from_dict(data)


def test_exceptions_belong_to_their_module() -> None:
    """The root cannot be raised directly and a code cannot go in another module's class."""
    with pytest.raises(TypeError):
        TAvKitError(ServerCode.INTERNAL)
    with pytest.raises(TypeError):
        AvkitError(ServerCode.INTERNAL)
    assert isinstance(error(HttpCode.NETWORK), HttpError)
    assert issubclass(AvkitError, TAvKitError) and issubclass(TAvKitError, Exception)


def test_errors_compare_and_hash_by_module_code_and_message() -> None:
    """Equal errors hash alike; a different message makes a different error."""
    one = error(AvkitCode.PRIVATE_MAP_KEY_WRONG, "room 1")
    assert one == error(AvkitCode.PRIVATE_MAP_KEY_WRONG, "room 1")
    assert len({one, error(AvkitCode.PRIVATE_MAP_KEY_WRONG, "room 1")}) == 1
    assert one != error(AvkitCode.PRIVATE_MAP_KEY_WRONG, "room 2")
    assert one.error_code == 87
    assert "[avkit 87] room 1" in str(one)


def test_http_statuses() -> None:
    """Unauthorised is 401, server faults 5xx, signature failures 401/403, the rest 400."""
    assert http_status(ServerCode.UNAUTHORISED) == 401
    assert http_status(ServerCode.INTERNAL) == 500
    assert http_status(ServerCode.SESSION_NOT_FOUND) == 404
    assert http_status(AvkitCode.USER_SIG_INVALID) == 401
    assert http_status(AvkitCode.PRIVATE_MAP_KEY_EXPIRED) == 403
    assert http_status(TrtcCode.CALL_ENDED) == 400
    assert http_status(AvkitCode.MISSING_USER_ID) == 400


def test_all_is_exactly_the_public_api() -> None:
    """__all__ lists exactly the public names, and every public class or function is in it."""
    assert set(errors_module.__all__) == PUBLIC_API
    assert len(errors_module.__all__) == len(PUBLIC_API)
    for name in errors_module.__all__:
        assert hasattr(errors_module, name)
    defined_here = {
        name
        for name, value in vars(errors_module).items()
        if not name.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and value.__module__ == errors_module.__name__
    }
    assert defined_here <= PUBLIC_API
