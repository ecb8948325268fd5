"""Input values checked at the door, in one place, before any resolver or SQL runs.

Every input string of a request, in the document and in the variables, nested
input objects and lists included, is checked for:

- length: at most `KETENPOORT_MAX_INPUT_STRING_LENGTH` characters (default 4,096),
  or the natural size of the argument or input field it is given for
  (`STRING_CAPS`: a name filter 200, a url 2,048, a cursor 16,384). A 4 MiB
  `nameContains` would otherwise be scanned by the database row by row;
- NUL characters: PostgreSQL refuses `\\x00` in text, so one would end as an
  unexpected database error; the other C0 control characters but tab, line feed
  and carriage return: no name, code or message of the chain holds one, and the
  compiled reads mark refusals in their JSON with one (compiler/marks.py);
- range: an id (the ID type) or a cursor (`after`) holding a number beyond 64 bits
  cannot be a row of ours, and would overflow the database's integer.

Then the variables are coerced to their declared types (as graphql-core will), so
a wrong type, a missing required variable or an unknown enum value is answered
with its message as BAD_USER_INPUT instead of a masked unexpected error.

A refusal is BAD_USER_INPUT naming the argument (`filter.nameContains`,
`$input.orderLines.0.eckIds.3`) and what is wrong, never the value. Every check
is linear in the size of the request (each node and value once, with stacks).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from typing import Any

from graphql import (
    ArgumentNode,
    DocumentNode,
    GraphQLError,
    GraphQLInputObjectType,
    GraphQLSchema,
    IntValueNode,
    ObjectFieldNode,
    OperationDefinitionNode,
    StringValueNode,
    TypeInfo,
    TypeInfoVisitor,
    Visitor,
    get_named_type,
    get_operation_ast,
    is_input_object_type,
    is_list_type,
    is_non_null_type,
    type_from_ast,
    visit,
)
from graphql.execution.values import get_variable_values
from strawberry.extensions import SchemaExtension

from schema.errors import BadInput

#: The natural size of arguments and input fields by name (anywhere in the schema);
#: every other string has the default cap (a setting).
STRING_CAPS = {
    # Free-text filters: a name is at most 200 characters (organisation.name).
    "nameContains": 200,
    "publisherCode": 64,
    # Push endpoints (push/rules.py refuses a longer one with a typed problem).
    "url": 2048,
    "tokenUrl": 2048,
    # An event cursor may name up to 1,000 reflected events (db/events.py).
    "after": 16_384,
}
# Values the store holds in shorter columns (referenceId, codes, identifiers) are
# refused by the domain with a typed problem naming the field; the default cap keeps
# what reaches it small.

#: Arguments and input fields holding one of our cursors (base64 of `kind:number`).
CURSORS = {"after"}

_MAX_KEY = (1 << 63) - 1


def _beyond_64_bits(digits: str) -> bool:
    """Whether a decimal number as written is beyond a signed 64-bit integer (never
    converting a long one)."""
    if digits[:1] in "+-":
        digits = digits[1:]
    if not (digits.isascii() and digits.isdigit()):
        return False
    digits = digits.lstrip("0")
    return len(digits) > 19 or (len(digits) == 19 and int(digits) > _MAX_KEY)


def cursor_beyond_64_bits(cursor: str) -> bool:
    """Whether one of our cursors carries a number beyond 64 bits (a cursor that
    does not decode is the resolver's to refuse as malformed)."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return False
    return any(_beyond_64_bits(part) for chunk in text.split(":") for part in chunk.split("."))


#: A position as a linked list, (parent, name), built in O(1) per step and spelled
#: out only for a refusal: dotted strings per value would cost the depth each.
Path = tuple[Any, str] | None


def dotted(path: Path) -> str:
    names: list[str] = []
    while path is not None:
        path, name = path
        names.append(name)
    return ".".join(reversed(names))


class InputRefused(Exception):
    def __init__(self, where: Path | str, problem: str, reason: str) -> None:
        super().__init__(problem)
        self.where = where
        self.problem = problem
        self.reason = reason

    def error(self) -> GraphQLError:
        where = self.where if isinstance(self.where, str) else dotted(self.where)
        where = where or "the query"
        return BadInput(f"the input at {where} {self.problem}", field=where, reason=self.reason)


#: C0 control characters but NUL (its own refusal), tab, line feed and carriage return.
_CONTROL = re.compile("[\x01-\x08\x0b\x0c\x0e-\x1f]")


class Checker:
    """The string, NUL and range checks for one request."""

    def __init__(self, default_cap: int) -> None:
        self.default_cap = default_cap

    def cap(self, name: str | None) -> int:
        return STRING_CAPS.get(name or "", self.default_cap)

    def string(self, value: str, where: Any, name: str | None, is_id: bool) -> None:
        cap = self.cap(name)
        if len(value) > cap:
            raise InputRefused(where, f"is longer than {cap} characters", "too_long")
        if "\x00" in value:
            raise InputRefused(where, "holds a NUL character (\\u0000)", "nul")
        if _CONTROL.search(value):
            raise InputRefused(where, "holds a control character", "control")
        if is_id and _beyond_64_bits(value):
            raise InputRefused(where, "is not an id of ours: beyond 64 bits", "out_of_range")
        if name in CURSORS and cursor_beyond_64_bits(value):
            raise InputRefused(where, "is not a cursor of ours: beyond 64 bits", "out_of_range")

    def key(self, key: Any, where: Any) -> None:
        if isinstance(key, str) and (len(key) > self.default_cap or "\x00" in key):
            raise InputRefused(where, "holds an over-long or NUL field name", "bad_name")

    # --- the document's literals ------------------------------------------------------------

    def document(self, schema: GraphQLSchema, document: DocumentNode) -> dict[str, Path]:
        """Check every string and id literal of the document (each node once); answer
        where each variable is used (the argument or input field it stands for,
        which gives its cap)."""
        at: list[Path] = [None]  # the argument / input field position, innermost last
        usages: dict[str, Path] = {}  # variable: the position it stands at
        checker = self
        type_info = TypeInfo(schema)

        def named_id() -> bool:
            return getattr(get_named_type(type_info.get_input_type()), "name", None) == "ID"

        class Literals(Visitor):
            def enter_argument(self, node: ArgumentNode, *_: Any) -> None:
                at.append((at[-1], node.name.value))

            def leave_argument(self, *_: Any) -> None:
                at.pop()

            def enter_object_field(self, node: ObjectFieldNode, *_: Any) -> None:
                at.append((at[-1], node.name.value))

            def leave_object_field(self, *_: Any) -> None:
                at.pop()

            def enter_variable(self, node: Any, *_: Any) -> None:
                here = at[-1]
                if here is not None:
                    used = usages.get(node.name.value)
                    if used is None or checker.cap(here[1]) < checker.cap(used[1]):
                        usages[node.name.value] = here

            def enter_string_value(self, node: StringValueNode, *_: Any) -> None:
                here = at[-1]
                checker.string(node.value, here, here[1] if here else None, named_id())

            def enter_int_value(self, node: IntValueNode, *_: Any) -> None:
                if named_id() and _beyond_64_bits(node.value):
                    raise InputRefused(at[-1], "is not an id of ours: beyond 64 bits",
                                       "out_of_range")

        visit(document, TypeInfoVisitor(type_info, Literals()))
        return usages

    # --- the variables ------------------------------------------------------------------------

    def variables(
        self,
        schema: GraphQLSchema,
        operation: OperationDefinitionNode,
        values: dict[str, Any],
        usages: dict[str, Path],
        types: dict[str, Any] | None = None,
    ) -> None:
        """Check every string of the variables along their declared types (values of
        a custom scalar such as JSON: every string inside); each value once. `types`:
        the declared types when the caller has them already (else found here)."""
        # (value, its type, where in the variables, the name of the argument or input
        # field it is given for); a refusal also names the argument the variable
        # stands for (`$f.nameContains (filter.nameContains)`).
        stack: list[tuple[Any, Any, Path, str | None]] = []
        for definition in operation.variable_definitions or ():
            variable = definition.variable.name.value
            if variable in values:
                declared = (
                    types[variable] if types is not None else type_from_ast(schema, definition.type)
                )
                used = usages.get(variable)
                stack.append((values[variable], declared, (None, f"${variable}"),
                              used[1] if used else None))

        def where(path: Path) -> str:
            spelled = dotted(path)
            variable, _, rest = spelled.partition(".")
            used = usages.get(variable[1:])
            if used is None:
                return spelled
            return f"{spelled} ({dotted(used)}{'.' + rest if rest else ''})"

        try:
            while stack:
                value, of, at, name = stack.pop()
                if of is not None and is_non_null_type(of):
                    of = of.of_type
                if of is not None and is_list_type(of) and not isinstance(value, list | tuple):
                    of = of.of_type  # one value given for a list: coerced as a list of one
                    if is_non_null_type(of):
                        of = of.of_type
                if isinstance(value, str):
                    self.string(value, at, name, getattr(of, "name", None) == "ID")
                elif isinstance(value, int) and not isinstance(value, bool):
                    if getattr(of, "name", None) == "ID" and value.bit_length() > 63:
                        raise InputRefused(at, "is not an id of ours: beyond 64 bits",
                                           "out_of_range")
                elif isinstance(value, list | tuple):
                    item = of.of_type if of is not None and is_list_type(of) else of
                    stack.extend(
                        (entry, item, (at, str(index)), name) for index, entry in enumerate(value)
                    )
                elif isinstance(value, dict):
                    fields = of.fields if isinstance(of, GraphQLInputObjectType) else {}
                    for key, entry in value.items():
                        self.key(key, at)
                        found = fields.get(key)
                        if of is not None and is_input_object_type(of) and found is None:
                            continue  # graphql-core refuses an unknown field
                        stack.append((entry, found.type if found else None, (at, str(key)),
                                      str(key)))
        except InputRefused as refused:
            if not isinstance(refused.where, str):
                refused.where = where(refused.where)
            raise


def coercion_refusals(
    schema: GraphQLSchema, operation: OperationDefinitionNode, values: dict[str, Any]
) -> list[GraphQLError]:
    """graphql-core's own coercion of the variables (as execution will do it): its
    errors, made BAD_USER_INPUT with their message (no variable value is repeated
    beyond graphql-core's short excerpt)."""
    coerced = get_variable_values(schema, operation.variable_definitions or (), values)
    if not isinstance(coerced, list):
        return []
    refusals: list[GraphQLError] = []
    for error in coerced:
        refusal = BadInput(error.message, reason="variables")
        refusal.nodes = error.nodes
        refusal.source = error.source
        refusal.positions = error.positions
        refusal.locations = error.locations
        refusals.append(refusal)
    return refusals


def check_request(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    variables: dict[str, Any] | None,
    default_cap: int,
) -> list[GraphQLError]:
    """Every input check on a valid document and its variables: the refusals, or []."""
    checker = Checker(default_cap)
    try:
        usages = checker.document(schema, document)
        operation = get_operation_ast(document, operation_name)
        if operation is None:
            return []  # no single operation: execution answers that
        if variables is not None and not isinstance(variables, dict):
            return [BadInput("variables must be a JSON object", reason="variables")]
        checker.variables(schema, operation, variables or {}, usages)
    except InputRefused as refused:
        return [refused.error()]
    return coercion_refusals(schema, operation, variables or {})


def validated(context: Any) -> bool:
    """Validate the document now unless that happened (strawberry's ValidationCache
    validates when validation begins; strawberry itself only after every
    extension's `on_validate` has begun, and decides on the errors before any has
    ended): True when it is valid, so a check may still refuse it."""
    if context.graphql_document is None:
        return False
    if context.pre_execution_errors is None:
        from strawberry.schema.schema import validate_document

        context.pre_execution_errors = validate_document(
            context.schema._schema, context.graphql_document, context.validation_rules
        )
    return not context.pre_execution_errors


def input_checks(default_cap: int) -> type[SchemaExtension]:
    """The schema extension for these checks: after validation, before execution,
    on every transport that runs the schema (HTTP, websockets)."""

    class CheckInputs(SchemaExtension):
        def on_validate(self) -> Iterator[None]:
            context = self.execution_context
            if validated(context) and context.graphql_document is not None:
                refusals = check_request(
                    context.schema._schema,
                    context.graphql_document,
                    context.operation_name,
                    context.variables,
                    default_cap,
                )
                if refusals:
                    context.pre_execution_errors = refusals
            yield

    return CheckInputs
