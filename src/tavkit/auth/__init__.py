"""Signatures: userSig (who you are) and privateMapKey (which room, doing what).

Both are TLS-sig v2, byte-compatible with the cloud vendor's tools; see
:mod:`tavkit.auth.signature` for the format and for how each refusal maps to the
seed's error codes, and :mod:`tavkit.auth.grants` for the privilege bits.
"""

from tavkit.auth.grants import Privilege, parse_privilege, privilege_names
from tavkit.auth.signature import (
    DEFAULT_EXPIRE,
    PrivateMapKey,
    SigDocument,
    SigFailure,
    SignatureError,
    decode_sig,
    gen_private_map_key,
    gen_user_sig,
    verify_private_map_key,
    verify_user_sig,
)

__all__ = [
    "DEFAULT_EXPIRE",
    "PrivateMapKey",
    "Privilege",
    "SigDocument",
    "SigFailure",
    "SignatureError",
    "decode_sig",
    "gen_private_map_key",
    "gen_user_sig",
    "parse_privilege",
    "privilege_names",
    "verify_private_map_key",
    "verify_user_sig",
]
