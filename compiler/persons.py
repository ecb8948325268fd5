"""Persons as SQL: the person rule of `domain.consent` decides every path to a
person (`pupil`, `person`, a licence's holder, a filter by ECK iD), with the
conditions of `db/access.py` (`person_scope`: may read it; `person_related`: may
hear that consent is missing) compiled into the statement, as the resolvers ask
them (`db.access.persons_access`). A person's own lists are filtered as the
request's loaders filter them (`resolvers/loaders.py`).
"""

from __future__ import annotations

from typing import Any

from compiler.arguments import Replay, Root, _drive, invalid_answer, organisation_ids
from compiler.objects import FIELDS, Compiler, Details, column, enum, gid, organisation
from compiler.sql import quote
from db.access import (
    entitlement_scope,
    licence_scope,
    person_related,
    person_scope,
    visible_identifiers,
    visible_schools,
)
from db.models import (
    Enrolment,
    Entitlement,
    Licence,
    Person,
    PersonIdentifier,
    SchoolSubject,
    TeachingGroup,
)
from db.persons import by_identifier_statement
from domain.identifiers import PersonIdScheme, is_school_scoped
from domain.roles import DataType
from settings import Settings

#: `access_` of a person row: what `domain.consent.person_access` answers.
SHOWN, CONSENT_REQUIRED, NOT_INVOLVED = 1, 2, 3


def access(c: Compiler) -> str:
    """SQL on a row of `person` (named so): the person rule's answer about it
    (SHOWN, CONSENT_REQUIRED or NOT_INVOLVED)."""
    allowed = c.st.condition(Person.__table__, person_scope(Person.id, c.caller, c.today))
    related = c.st.condition(Person.__table__, person_related(Person.id, c.caller))
    return (
        f"(CASE WHEN {allowed} THEN {SHOWN} WHEN {related} THEN {CONSENT_REQUIRED} "
        f"ELSE {NOT_INVOLVED} END)"
    )


def _holder(c: Compiler, a: str, details: Details) -> str:
    """`Licence.person` (`schema.types.load_person`): shown with an audit read for the
    licence's school, CONSENT_REQUIRED at the field's path, else null."""
    from schema.errors import person_consent_required

    b = c.st.alias()
    read = c.read("read.persons", "person")
    shown = c.object("Person", b, details, extra=[(read, f"{a}.school_id")])
    refused = c.refusal(details, person_consent_required)
    return (
        f"(SELECT CASE {b}.access_ WHEN {SHOWN} THEN {shown} WHEN {CONSENT_REQUIRED} "
        f"THEN {refused} END FROM (SELECT person.*, {access(c)} AS access_ "
        f"FROM person WHERE person.id = {a}.person_id) AS {b})"
    )


# --- a person's fields ----------------------------------------------------------------------


def _identifiers_source(c: Compiler, a: str, b: str) -> str:
    visible = c.st.condition(PersonIdentifier.__table__, visible_identifiers(c.caller, c.today))
    return (
        f"(SELECT person_identifier.* FROM person_identifier "
        f"WHERE person_identifier.person_id = {a}.id AND {visible}) AS {b}"
    )


def _eck_id(c: Compiler, a: str, details: Details) -> str:
    b = c.st.alias()
    eck = quote(PersonIdScheme.ECK_ID.value)
    return (
        f"(SELECT {b}.value FROM {_identifiers_source(c, a, b)} WHERE {b}.scheme = {eck} "
        f"ORDER BY {b}.id LIMIT 1)"
    )


def _identifiers(c: Compiler, a: str, details: Details) -> str:
    b = c.st.alias()
    source = _identifiers_source(c, a, b)
    return c.many("PersonIdentifier", source, b, f"{b}.scheme, {b}.id", details)


def _at_visible_school(c: Compiler, table: Any, school: Any) -> str:
    """The loaders' `schools()`: rows of schools whose school organisation data the
    caller may read."""
    return c.st.condition(
        table, school.in_(visible_schools(c.caller, c.today, DataType.SCHOOL_ORGANISATION))
    )


def _enrolments(c: Compiler, a: str, details: Details) -> str:
    b = c.st.alias()
    visible = _at_visible_school(c, Enrolment.__table__, Enrolment.school_id)
    source = (
        f"(SELECT enrolment.id, enrolment.school_id, p.code, p.start_date, p.end_date "
        f"FROM enrolment JOIN school_period AS p ON p.id = enrolment.period_id "
        f"WHERE enrolment.person_id = {a}.id AND {visible}) AS {b}"
    )
    return c.many("Enrolment", source, b, f"{b}.start_date DESC, {b}.id", details)


def _groups(c: Compiler, a: str, details: Details) -> str:
    b = c.st.alias()
    visible = _at_visible_school(c, TeachingGroup.__table__, TeachingGroup.school_id)
    source = (
        f"(SELECT teaching_group.* FROM group_membership AS m JOIN teaching_group "
        f"ON teaching_group.id = m.group_id WHERE m.person_id = {a}.id AND {visible}) AS {b}"
    )
    return c.many("Group", source, b, f"{b}.code", details)


def _subjects(c: Compiler, a: str, details: Details) -> str:
    b = c.st.alias()
    visible = _at_visible_school(c, SchoolSubject.__table__, SchoolSubject.school_id)
    source = (
        f"(SELECT school_subject.* FROM school_subject WHERE school_subject.id IN "
        f"(SELECT s.subject_id FROM subject_enrolment AS s WHERE s.person_id = {a}.id) "
        f"AND {visible}) AS {b}"
    )
    return c.many("SchoolSubject", source, b, f"{b}.code", details)


def _entitlements(c: Compiler, a: str, details: Details) -> str:
    b = c.st.alias()
    visible = c.st.condition(Entitlement.__table__, entitlement_scope(c.caller, c.today))
    source = (
        f"(SELECT entitlement.* FROM entitlee JOIN entitlement ON entitlement.id = "
        f"entitlee.entitlement_id WHERE entitlee.person_id = {a}.id AND {visible}) AS {b}"
    )
    return c.many("Entitlement", source, b, f"{b}.id", details)


def _licences(c: Compiler, a: str, details: Details) -> str:
    b = c.st.alias()
    visible = c.st.condition(Licence.__table__, licence_scope(c.caller, c.today))
    source = (
        f"(SELECT licence.* FROM licence WHERE licence.person_id = {a}.id AND {visible}) AS {b}"
    )
    return c.many("Licence", source, b, f"{b}.id", details)


def _period(c: Compiler, a: str, details: Details) -> str:
    return c.object("SchoolPeriod", a, details)


FIELDS.update(
    {
        "Person": {
            "id": gid,
            "kind": enum("kind", "PersonKind"),
            "sector": enum("sector", "Sector"),
            "eckId": _eck_id,
            "identifiers": _identifiers,
            "enrolments": _enrolments,
            "groups": _groups,
            "subjects": _subjects,
            "entitlements": _entitlements,
            "licences": _licences,
        },
        "PersonIdentifier": {
            "scheme": enum("scheme", "PersonIdScheme"),
            "value": column("value"),
        },
        "Enrolment": {"period": _period, "school": organisation("school_id")},
        "SchoolPeriod": {
            "code": column("code"),
            "startDate": column("start_date"),
            "endDate": column("end_date"),
        },
        # A lookup that found no person, over a row of the answer's values.
        "PersonNotFound": {
            "scheme": enum("scheme", "PersonIdScheme"),
            "value": column("value"),
            "message": column("message"),
        },
    }
)
FIELDS["Licence"]["person"] = _holder


# --- the lookups ----------------------------------------------------------------------------


class _NoRow:
    """A database that finds no row, for `person_answer`."""

    async def run(self, work: Any) -> None:
        return None


def person_answer(scheme: PersonIdScheme, value: str, school_given: bool) -> dict[str, Any]:
    """What `resolvers.lookup.find_person` and `resolvers.queries.person_lookup_result`
    answer for this identifier when no person has it, asked of them with a database
    that finds nothing: `kind` "invalid" (malformed), "missing" (nothing to look up:
    a school-scoped scheme without a school) or "lookup" (the `PersonNotFound` to
    give if the statement finds no person it may show), with `scheme` (the stored
    value), the checked `value`, `problem` and `message`."""
    from resolvers import lookup
    from resolvers.queries import person_lookup_result
    from schema.lookups import InvalidIdentifier

    found = _drive(lookup.find_person(_NoRow(), scheme, value))  # type: ignore[arg-type]
    answer = person_lookup_result(found)
    if isinstance(answer, InvalidIdentifier):
        return invalid_answer(answer)
    assert isinstance(found, lookup.PersonMissing)
    if is_school_scoped(scheme) and not school_given:
        kind, message = "missing", found.message
    else:
        kind, message = "lookup", lookup.person_missing(scheme, found.value).message
    return {
        "kind": kind,
        "scheme": scheme.value,
        "value": found.value,
        "problem": None,
        "message": message,
    }


def _found(c: Compiler, key: str, school: bool) -> tuple[str, str]:
    """SQL: the person id the prepared identifier names (NULL when none, or nothing
    to look up), and the problem of a named school that is not exactly one."""
    st = c.st
    scope = quote("")
    problem = "NULL::text"
    if school:
        ids = organisation_ids(c, key, "school_", level="PROVIDER")
        scoped = st.value(key, "scoped", "boolean")
        scope = (
            f"(CASE WHEN {scoped} THEN (SELECT CASE WHEN cardinality(s.ids) = 1 THEN "
            f"s.ids[1]::text END FROM (SELECT {ids} AS ids) AS s) ELSE '' END)"
        )
        problem = (
            f"(CASE WHEN {scoped} AND NOT coalesce((SELECT cardinality(s.ids) = 1 FROM "
            f"(SELECT {ids} AS ids) AS s), FALSE) THEN 'school not one' END)"
        )
    found = st.embed(
        by_identifier_statement(
            _param("p_scheme"), _param("p_value"), _param("p_scope")
        ).with_only_columns(Person.id),
        {
            "p_scheme": st.value(key, "answer_scheme", "text"),
            "p_value": st.value(key, "answer_value", "text"),
            "p_scope": scope,
        },
    )
    kind = st.value(key, "answer_kind", "text")
    person = f"(CASE WHEN {kind} = 'lookup' THEN (SELECT x.id FROM {found} AS x LIMIT 1) END)"
    return person, problem


def _param(name: str) -> Any:
    from sqlalchemy import String, bindparam

    return bindparam(name, value="", type_=String())


def _lookup(scheme_of: Any) -> Any:
    """`pupil(eckId)` and `person(identifier)` (`resolvers.queries._visible_person`):
    the person if the rule shows it (an audit read per school it is enrolled at),
    CONSENT_REQUIRED for a related caller, else what an unknown identifier gets."""

    def compile_root(
        c: Compiler, key: str, details: Details, args: dict[str, Any], settings: Settings
    ) -> Root:
        from schema.errors import person_consent_required

        st = c.st
        school = bool((args.get("identifier") or {}).get("school"))
        person_id, school_problem = _found(c, key, school)
        b, n, v = st.alias(), st.alias(), st.alias()
        shown = c.object("Person", b, details)
        missing = c.object("PersonNotFound", n, details)
        invalid = c.object("InvalidIdentifier", v, details)

        def answer(name: str) -> str:
            return st.value(key, f"answer_{name}", "text")

        sql = (
            f"(SELECT CASE WHEN {answer('kind')} = 'invalid' THEN (SELECT {invalid} FROM "
            f"(SELECT {answer('scheme')} AS scheme, {answer('value')} AS value, "
            f"{answer('problem')} AS problem, {answer('message')} AS message) AS {v}) "
            f"WHEN f.access_ = {SHOWN} THEN (SELECT {shown} FROM person AS {b} "
            f"WHERE {b}.id = f.person_id) "
            f"ELSE (SELECT {missing} FROM (SELECT {answer('scheme')} AS scheme, "
            f"{answer('value')} AS value, {answer('message')} AS message) AS {n}) END AS data, "
            f"coalesce({school_problem}, CASE WHEN f.access_ = {CONSENT_REQUIRED} "
            "THEN 'consent required' END) AS problem, "
            f"CASE WHEN f.access_ = {SHOWN} THEN coalesce((SELECT json_agg(json_build_array("
            "e.school_id, f.person_id)) FROM (SELECT DISTINCT school_id FROM enrolment "
            "WHERE enrolment.person_id = f.person_id) AS e), "
            "json_build_array(json_build_array(NULL, f.person_id))) END AS reads "
            f"FROM (SELECT p.person_id, (SELECT {access(c)} FROM person WHERE person.id = "
            f"p.person_id) AS access_ FROM (SELECT {person_id} AS person_id) AS p) AS f)"
        )

        def prepare(args: dict[str, Any], caller: Any) -> dict[str, Any]:
            scheme, value, school = scheme_of(args)
            answer = person_answer(scheme, value, school is not None)
            values: dict[str, Any] = {f"answer_{k}": v for k, v in answer.items()}
            if school is not None:
                from compiler.arguments import organisation_search

                values["scoped"] = is_school_scoped(scheme)
                if values["scoped"]:
                    search = organisation_search(school)  # malformed: the resolvers answer
                    values.update({f"school_{k}": v for k, v in search.items()})
                else:
                    values.update({f"school_{k}": None for k in _SEARCH})
            return values

        return Root(
            key,
            sql,
            prepare,
            "read.person",
            "person",
            {"consent required": lambda values: person_consent_required()},
        )

    return compile_root


_SEARCH = ("rio", "level", "sec", "sec_scheme", "upper")


def _pupil_args(args: dict[str, Any]) -> tuple[PersonIdScheme, str, None]:
    return PersonIdScheme.ECK_ID, args["eckId"], None


def _person_args(args: dict[str, Any]) -> tuple[PersonIdScheme, str, Any]:
    identifier = args["identifier"]
    return PersonIdScheme(identifier["scheme"]), identifier["value"], identifier.get("school")


PERSON_ROOTS = {"pupil": _lookup(_pupil_args), "person": _lookup(_person_args)}


def eck_filter(c: Compiler, key: str) -> tuple[str, str]:
    """A list filtered by a pupil's ECK iD (`resolvers.queries.licences_list`): the
    `person_filter_` CTE naming the person the rule shows (else no person: the
    unknown and the not-the-caller's list the same nothing), and the problem
    "person consent" for a caller told CONSENT_REQUIRED."""
    st = c.st
    found = st.embed(
        by_identifier_statement(
            _param("p_scheme"), _param("p_value"), _param("p_scope")
        ).with_only_columns(Person.id),
        {
            "p_scheme": quote(PersonIdScheme.ECK_ID.value),
            "p_value": st.value(key, "eck_id", "text"),
            "p_scope": quote(""),
        },
    )
    setup = (
        f"person_filter_ AS (SELECT CASE WHEN y.access_ = {SHOWN} THEN y.id ELSE 0 END "
        "AS person_id, y.access_ FROM (SELECT x.id, (SELECT "
        f"{access(c)} FROM person WHERE person.id = x.id) AS access_ FROM "
        f"(SELECT (SELECT z.id FROM {found} AS z LIMIT 1) AS id) AS x) AS y), "
    )
    problem = (
        f"(SELECT CASE WHEN access_ = {CONSENT_REQUIRED} THEN 'person consent' END "
        "FROM person_filter_)"
    )
    return setup, problem


def prepare_eck_filter(values: dict[str, Any], eck_id: str) -> None:
    from domain.identifiers import IdentifierError, validate_person_identifier

    try:
        values["eck_id"] = validate_person_identifier(PersonIdScheme.ECK_ID, eck_id)
    except IdentifierError as exc:
        raise Replay("malformed eckId") from exc


def person_refusals() -> dict[str, Any]:
    from schema.errors import person_consent_required

    return {"person consent": lambda values: person_consent_required()}
