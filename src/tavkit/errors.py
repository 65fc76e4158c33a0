"""The seed's error model: four modules, their codes, one wire shape.

Every failure a user of tavkit can see is one of the codes in the seed's tables.
Codes repeat across modules (10001 means "camera not authorised" in ``trtc``,
"bad URL or body" in ``server`` and "no permission" in ``avkit``), so an error is
identified by the pair ``(module, code)``, never by the number alone.

The exception tree::

    TAvKitError                 root; carries module, code and a message
    ├── TrtcError               media and device failures (module "trtc")
    ├── ServerError             the room server's answers (module "server")
    ├── HttpError               the network under the REST client (module "http")
    └── AvkitError              the component's own checks (module "avkit")

On every wire the shape is ``{"module": str, "errorCode": int, "errorMsg": str}``.
``errorCode`` is a JSON number; :meth:`TAvKitError.from_dict` also accepts the
seed's string form (``"10001"``) so documents written by the original kit parse.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum
from typing import Any, ClassVar, Literal

__all__ = [
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
]

Lang = Literal["en", "zh"]


class ErrorModule(StrEnum):
    """The seed's four error modules, spelled as they travel on the wire."""

    TRTC = "trtc"
    SERVER = "server"
    HTTP = "http"
    AVKIT = "avkit"


class _Code(IntEnum):
    """An error code whose member also carries its English and Chinese message.

    The member's value is the seed's number; :attr:`module` comes from the table
    the member belongs to.
    """

    en: str
    zh: str

    def __new__(cls, value: int, en: str, zh: str) -> _Code:
        obj = int.__new__(cls, value)
        obj._value_ = value
        obj.en = en
        obj.zh = zh
        return obj

    @property
    def module(self) -> ErrorModule:
        """The seed module this code belongs to."""
        return _MODULE_OF[type(self)]

    def message(self, lang: Lang = "en") -> str:
        """The table's message for this code in ``lang``."""
        return self.zh if lang == "zh" else self.en


class TrtcCode(_Code):
    """Media and device errors (seed table "trtc错误码")."""

    CAMERA_OPEN_FAILED = (-1301, "Failed to open the camera", "打开摄像头失败")
    MICROPHONE_OPEN_FAILED = (-1302, "Failed to open the microphone", "打开麦克风失败")
    PUSH_DISCONNECTED = (-1307, "The media connection was lost", "推流连接断开")
    ENTER_FAILED_OR_EXITED = (-1019, "Failed to enter the room, or left it", "进房失败或者退房成功")
    CAMERA_NOT_AUTHORISED = (
        10001,
        "Please allow access to the camera first",
        "请先对摄像头进行授权",
    )
    MICROPHONE_NOT_AUTHORISED = (
        10002,
        "Please allow access to the microphone first",
        "请先对麦克风进行授权",
    )
    CALL_ENDED = (5000, "The call was ended", "退出通话")


class ServerCode(_Code):
    """The room server's errors (seed table "server服务器错误")."""

    INTERNAL = (10000, "Server error", "服务器错误")
    BAD_REQUEST = (10001, "The URL or request body could not be parsed", "解析url或者请求body错误")
    JSON_ENCODE = (10002, "JSON serialisation failed", "json序列化失败")
    JSON_DECODE = (10003, "JSON deserialisation failed", "json反序列化失败")
    INVALID_PARAMETER = (10004, "Invalid parameter", "参数无效")
    UNAUTHORISED = (10005, "Unauthorised", "未授权")
    DATABASE = (10006, "Database request failed", "数据库请求错误")
    ENTER_FAILED = (14000, "Failed to enter the room", "进房失败")
    EXIT_FAILED = (14001, "Failed to leave the room", "退房失败")
    ROOM_MISMATCH = (
        14002,
        "The room in the request does not match the user's current room",
        "参数中的房间号与用户当前的房间号不匹配",
    )
    ROOM_CLOSED = (14003, "The room is closed", "房间已经关闭")
    USER_EXITED = (14004, "The user has already left the room", "用户已经退出房间")
    HEARTBEAT_FAILED = (14005, "Failed to update the heartbeat", "更新心跳错误")
    QUERY_MEMBERS_FAILED = (14006, "Failed to query the room's users", "查询房间内用户信息错误")
    SESSION_NOT_FOUND = (14007, "No room with that UUID", "没找到对应UUID的房间")
    RECORDING_FAILED = (14008, "Failed to get the recording file", "获取录制文件失败")


class HttpCode(_Code):
    """Network failures under the REST client (seed table "http错误")."""

    NETWORK = (10000, "Server or network error", "服务器或者网络错误")


class AvkitCode(_Code):
    """The component's own checks, including signature failures (seed table "avkit错误")."""

    NO_PERMISSION = (10001, "No permission to use the video component", "没有权限使用视频组件")
    MISSING_USER_ID = (10002, "The required parameter userId is missing", "缺少必要参数userId")
    MISSING_SDK_APP_ID = (
        10003,
        "The required parameter sdkAppId is missing",
        "缺少必要参数sdkAppId",
    )
    MISSING_USER_SIG = (10004, "The required parameter userSig is missing", "缺少必要参数userSig")
    MISSING_ROOM_ID = (10005, "The required parameter roomId is missing", "缺少必要参数roomId")
    USER_SIG_INVALID = (70346, "The userSig is missing or invalid", "缺少必要参数userSig")
    PRIVATE_MAP_KEY_MISSING = (
        80,
        "The privateMapKey must not be empty",
        "进房秘钥privateMapKey不能为空",
    )
    PARAMETER_CHECK_FAILED = (82, "Parameter check failed", "参数检测失败")
    PRIVATE_MAP_KEY_EXPIRED = (86, "The privateMapKey has expired", "进房秘钥privateMapKey已过期")
    PRIVATE_MAP_KEY_WRONG = (87, "The privateMapKey is not correct", "进房秘钥privateMapKey不正确")
    NO_PACKAGE = (
        88,
        "No real-time audio/video package has been purchased",
        "还没有购买实时音视频套餐包",
    )


ErrorCode = TrtcCode | ServerCode | HttpCode | AvkitCode

_MODULE_OF: dict[type[_Code], ErrorModule] = {
    TrtcCode: ErrorModule.TRTC,
    ServerCode: ErrorModule.SERVER,
    HttpCode: ErrorModule.HTTP,
    AvkitCode: ErrorModule.AVKIT,
}

_CODE_TABLES: dict[ErrorModule, type[_Code]] = {
    ErrorModule.TRTC: TrtcCode,
    ErrorModule.SERVER: ServerCode,
    ErrorModule.HTTP: HttpCode,
    ErrorModule.AVKIT: AvkitCode,
}


def lookup(module: ErrorModule | str, code: int | str) -> ErrorCode:
    """Find a code by ``(module, number)``; raise ``KeyError`` if the seed has no such code."""
    mod = ErrorModule(module)
    try:
        number = int(code)
    except (TypeError, ValueError):
        raise KeyError(f"{mod.value}:{code!r}") from None
    try:
        return _CODE_TABLES[mod](number)  # type: ignore[call-arg,return-value]
    except ValueError:
        raise KeyError(f"{mod.value}:{number}") from None


def all_codes() -> list[ErrorCode]:
    """Every code of the seed, module by module, in table order."""
    return [member for table in _CODE_TABLES.values() for member in table]  # type: ignore[misc]


class TAvKitError(Exception):
    """Root of every error tavkit reports; one subclass per seed module.

    ``message`` is the specific text (what exactly went wrong); it defaults to the
    table's message. Two errors are equal when module, code and message are.
    """

    module: ClassVar[ErrorModule]

    def __init__(self, code: ErrorCode, message: str | None = None) -> None:
        if type(self) is TAvKitError:
            raise TypeError("raise a module subclass (TrtcError, ServerError, ...) or use error()")
        if code.module is not self.module:
            raise TypeError(f"{code!r} belongs to module {code.module}, not {self.module}")
        self.code: ErrorCode = code
        self.message: str = message if message is not None else code.en
        super().__init__(f"[{self.module.value} {int(code)}] {self.message}")

    @property
    def error_code(self) -> int:
        """The seed's number for this error."""
        return int(self.code)

    def to_dict(self) -> dict[str, Any]:
        """The wire shape ``{"module", "errorCode", "errorMsg"}``."""
        return {"module": self.module.value, "errorCode": int(self.code), "errorMsg": self.message}

    @staticmethod
    def from_dict(data: dict[str, Any]) -> TAvKitError:
        """Rebuild an error from its wire shape; ``ValueError`` if it is not one of the seed's."""
        if not isinstance(data, dict):
            raise ValueError("an error must be a JSON object")
        try:
            code = lookup(data["module"], data["errorCode"])
        except (KeyError, ValueError) as exc:
            raise ValueError(f"not a seed error: {data!r}") from exc
        msg = data.get("errorMsg")
        return error(code, msg if isinstance(msg, str) else None)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TAvKitError):
            return NotImplemented
        return (self.module, int(self.code), self.message) == (
            other.module,
            int(other.code),
            other.message,
        )

    def __hash__(self) -> int:
        return hash((self.module, int(self.code), self.message))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code!r}, {self.message!r})"


class TrtcError(TAvKitError):
    """A media or device failure (module ``trtc``)."""

    module = ErrorModule.TRTC


class ServerError(TAvKitError):
    """An answer of the room server (module ``server``)."""

    module = ErrorModule.SERVER


class ServerUnavailable(ServerError):
    """Server 10000 from a replica that cannot serve the request now but another can,
    or it can shortly: it is draining, or its event bus (Redis) is away.

    A kind of its own so that the REST layer answers 503 with ``Retry-After`` (which
    HAProxy retries on another replica and the Python client retries itself) instead
    of the 500 of a bug; to a client reading the body it is still server 10000.
    """

    RETRY_AFTER_S: ClassVar[int] = 1

    def __init__(self, message: str) -> None:
        super().__init__(ServerCode.INTERNAL, message)


class HttpError(TAvKitError):
    """The server could not be reached or answered garbage (module ``http``)."""

    module = ErrorModule.HTTP


class AvkitError(TAvKitError):
    """A check of the component itself: options and signatures (module ``avkit``)."""

    module = ErrorModule.AVKIT


_EXCEPTIONS: dict[ErrorModule, type[TAvKitError]] = {
    ErrorModule.TRTC: TrtcError,
    ErrorModule.SERVER: ServerError,
    ErrorModule.HTTP: HttpError,
    ErrorModule.AVKIT: AvkitError,
}


def error(code: ErrorCode, message: str | None = None) -> TAvKitError:
    """Build the exception of the right module for ``code``."""
    return _EXCEPTIONS[code.module](code, message)


# HTTP statuses for errors the server returns. One table: the REST layer and the
# tests read it from here. Anything not listed answers 400.
_HTTP_STATUS: dict[tuple[ErrorModule, int], int] = {
    (ErrorModule.SERVER, ServerCode.INTERNAL): 500,
    (ErrorModule.SERVER, ServerCode.BAD_REQUEST): 400,
    (ErrorModule.SERVER, ServerCode.JSON_ENCODE): 500,
    (ErrorModule.SERVER, ServerCode.JSON_DECODE): 400,
    (ErrorModule.SERVER, ServerCode.INVALID_PARAMETER): 422,
    (ErrorModule.SERVER, ServerCode.UNAUTHORISED): 401,
    (ErrorModule.SERVER, ServerCode.DATABASE): 503,
    (ErrorModule.SERVER, ServerCode.ENTER_FAILED): 409,
    (ErrorModule.SERVER, ServerCode.EXIT_FAILED): 409,
    (ErrorModule.SERVER, ServerCode.ROOM_MISMATCH): 409,
    (ErrorModule.SERVER, ServerCode.ROOM_CLOSED): 410,
    (ErrorModule.SERVER, ServerCode.USER_EXITED): 410,
    (ErrorModule.SERVER, ServerCode.HEARTBEAT_FAILED): 409,
    (ErrorModule.SERVER, ServerCode.QUERY_MEMBERS_FAILED): 409,
    (ErrorModule.SERVER, ServerCode.SESSION_NOT_FOUND): 404,
    (ErrorModule.SERVER, ServerCode.RECORDING_FAILED): 404,
    (ErrorModule.AVKIT, AvkitCode.NO_PERMISSION): 403,
    (ErrorModule.AVKIT, AvkitCode.USER_SIG_INVALID): 401,
    (ErrorModule.AVKIT, AvkitCode.PRIVATE_MAP_KEY_MISSING): 403,
    (ErrorModule.AVKIT, AvkitCode.PARAMETER_CHECK_FAILED): 403,
    (ErrorModule.AVKIT, AvkitCode.PRIVATE_MAP_KEY_EXPIRED): 403,
    (ErrorModule.AVKIT, AvkitCode.PRIVATE_MAP_KEY_WRONG): 403,
    (ErrorModule.AVKIT, AvkitCode.NO_PACKAGE): 403,
}


def http_status(code: ErrorCode) -> int:
    """The HTTP status the server answers with for ``code``."""
    return _HTTP_STATUS.get((code.module, int(code)), 400)
