"""tavkit: self-hosted audio/video calls for Python applications.

The room server (``tavkit serve``), the ``<tavkit-call>`` browser component and a
Python client share one error model (:mod:`tavkit.errors`) and one signature scheme
(:mod:`tavkit.auth`), compatible with the cloud vendor's TLS-sig v2.
"""

from tavkit.errors import (
    AvkitError,
    ErrorModule,
    HttpError,
    ServerError,
    TAvKitError,
    TrtcError,
)

__version__ = "0.1.0"

__all__ = [
    "AvkitError",
    "ErrorModule",
    "HttpError",
    "ServerError",
    "TAvKitError",
    "TrtcError",
    "__version__",
]
