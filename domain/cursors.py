"""Cursors: opaque to callers, a list's kind and key (`encode_cursor`), or an
event's position in the stream (`event_cursor`)."""

from __future__ import annotations

import base64


class InvalidCursor(ValueError):
    pass


def encode_cursor(kind: str, key: int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{key}".encode()).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str) -> int:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        prefix, _, key = base64.urlsafe_b64decode(padded.encode()).decode().partition(":")
        if prefix != kind:
            raise InvalidCursor(f"this cursor belongs to a {prefix!r} list, not {kind!r}")
        return int(key)
    except (ValueError, UnicodeDecodeError) as exc:
        if isinstance(exc, InvalidCursor):
            raise
        raise InvalidCursor(f"malformed cursor {cursor!r}") from exc


def event_cursor(tx_id: int, event_id: int) -> str:
    """The position of an event in the stream: (transaction id, event id); see
    `db.models.Event` for why the transaction id comes first."""
    return base64.urlsafe_b64encode(f"ev:{tx_id}:{event_id}".encode()).decode().rstrip("=")


def decode_event_cursor(cursor: str) -> tuple[int, int]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        prefix, tx_id, event_id = base64.urlsafe_b64decode(padded.encode()).decode().split(":")
        if prefix != "ev":
            raise ValueError(prefix)
        return int(tx_id), int(event_id)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidCursor(f"malformed event cursor {cursor!r}") from exc
