"""Public ids: Shopify-style global ids, ``gid://cartwheel/<Type>/<n>``.

Database keys stay integers; only these strings cross the API. The type in the id is
checked on the way in, so a `Product` id can never be used to fetch a `Customer`.
"""

from __future__ import annotations

import re

from cartwheel.errors import InvalidIdError

GID_PREFIX = "gid://cartwheel/"
"""Every public id starts with this."""

_GID = re.compile(r"^gid://cartwheel/([A-Z][A-Za-z]{0,63})/([1-9][0-9]{0,18})$")
_TYPE = re.compile(r"^[A-Z][A-Za-z]{0,63}$")
_MAX_ID = 2**63 - 1
_VALID_TYPES: set[str] = set()
"""Type names already checked (encoding is on the snapshot hot path)."""


def encode_gid(type_name: str, id: int) -> str:
    """The global id of record `id` of `type_name` (e.g. ``"Product"``, 7).

    Raises `ValueError` for a non-positive id or a type name that is not CamelCase.
    """
    if not 0 < id <= _MAX_ID:
        raise ValueError(f"a global id needs a positive 64-bit integer, got {id}")
    if type_name not in _VALID_TYPES:
        if _TYPE.match(type_name) is None:
            raise ValueError(f"{type_name!r} is not a valid global id type name")
        _VALID_TYPES.add(type_name)
    return f"{GID_PREFIX}{type_name}/{id}"


def parse_gid(gid: str) -> tuple[str, int]:
    """Split a global id into ``(type_name, id)``.

    Raises `InvalidIdError` (code INVALID_ID) when `gid` is not a Cartwheel global id.
    """
    match = _GID.match(gid)
    if match is None:
        raise InvalidIdError(
            f"{gid!r} is not a Cartwheel global id; expected the form "
            f"'{GID_PREFIX}<Type>/<number>', e.g. '{GID_PREFIX}Product/1'.",
            id=gid,
        )
    number = int(match.group(2))
    if number > _MAX_ID:
        raise InvalidIdError(f"{gid!r} is out of range.", id=gid)
    return match.group(1), number


def decode_gid(gid: str, *types: str) -> int:
    """The integer key of `gid`, which must name one of `types`.

    Raises `InvalidIdError` (code INVALID_ID) when `gid` does not parse or names
    another type than expected.
    """
    type_name, number = parse_gid(gid)
    if types and type_name not in types:
        expected = " or ".join(repr(t) for t in types)
        raise InvalidIdError(
            f"{gid!r} is a {type_name} id; this field expects a {expected} id.",
            id=gid,
        )
    return number
