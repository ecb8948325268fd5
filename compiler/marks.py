"""What a nested field answers beside its value: a refusal (an error at the field's
own path, the field null) or an audit read of the object shown. The statement
writes a mark into the JSON where it happens; the compiler reads the marks out of
the answer with their paths (decoding the JSON only when there are any) and
removes them. No stored text can pass for a mark: every mark carries a nonce drawn
when the process starts, which never leaves it (the marks are removed from every
answer); input holding the mark's control character is refused at the door
(gateway/inputs.py), and free text that holds one all the same is answered by the
resolvers (`objects.free_text`).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from graphql import located_error

#: The control character that opens every mark (JSON text writes it `\\u0001`).
MARK = "\u0001"
_PREFIX = MARK + "ketenpoort:" + secrets.token_hex(8) + ":"
REFUSED = _PREFIX + "refused:"  # a string value: REFUSED + index [+ ":" + detail] + MARK
READ = _PREFIX + "read:"  # an object key: READ + index; its value the school id
#: How the marks start in PostgreSQL's JSON text (control characters escaped).
MARKED_JSON = json.dumps(_PREFIX)[1:-1]


@dataclass(frozen=True)
class Refusal:
    nodes: list[Any]  # the field's nodes, for the error's locations
    error: Callable[..., Exception]  # called with the mark's detail when it has one


@dataclass(frozen=True)
class Read:
    action: str
    object_type: str


Mark = Refusal | Read


def unmark(
    text: str, root: str, marks: list[Mark]
) -> tuple[str, list[dict[str, Any]], list[tuple[Any, ...]]]:
    """The root field's JSON text without its marks, the errors they stand for
    (with paths from the root's response key) and the audit reads."""
    errors: list[dict[str, Any]] = []
    reads: list[tuple[Any, ...]] = []

    def walk(value: Any, path: list[Any]) -> Any:
        if isinstance(value, str) and value.startswith(REFUSED):
            index, has_detail, detail = value[len(REFUSED) : -1].partition(":")
            mark = marks[int(index)]
            assert isinstance(mark, Refusal)
            error = mark.error(detail) if has_detail else mark.error()
            errors.append(dict(located_error(error, mark.nodes, path).formatted))
            return None
        if isinstance(value, list):
            return [walk(item, [*path, i]) for i, item in enumerate(value)]
        if isinstance(value, dict):
            kept = {}
            for key, item in value.items():
                if key.startswith(READ):
                    mark = marks[int(key[len(READ) :])]
                    assert isinstance(mark, Read)
                    reads.append((item, mark.action, mark.object_type, None))
                else:
                    kept[key] = walk(item, [*path, key])
            return kept
        return value

    data = walk(json.loads(text), [root])
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")), errors, reads
