"""tavkit: self-hosted audio/video calls for Python applications.

The room server (``tavkit serve``), the ``<tavkit-call>`` browser component and a
Python client share one error model (:mod:`tavkit.errors`) and one signature scheme
(:mod:`tavkit.auth`), compatible with the cloud vendor's TLS-sig v2.
"""

from typing import TYPE_CHECKING, Any

from tavkit.errors import (
    AvkitError,
    ErrorModule,
    HttpError,
    ServerError,
    TAvKitError,
    TrtcError,
)

if TYPE_CHECKING:
    from tavkit.client.kit import TAvKit
    from tavkit.protocol import ChatMessage

__version__ = "0.1.0"

__all__ = [
    "AvkitError",
    "ChatMessage",
    "ErrorModule",
    "HttpError",
    "ServerError",
    "TAvKit",
    "TAvKitError",
    "TrtcError",
    "__version__",
]


def __getattr__(name: str) -> Any:
    # The call client pulls in aiortc and PyAV; load it only when someone asks for it.
    if name == "TAvKit":
        from tavkit.client.kit import TAvKit

        return TAvKit
    if name == "ChatMessage":
        from tavkit.protocol import ChatMessage

        return ChatMessage
    raise AttributeError(f"module 'tavkit' has no attribute {name!r}")
