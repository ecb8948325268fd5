"""Inputs and typed results for looking things up by identifier.

A lookup never crashes on a bad identifier: it answers with a result type that
says what happened (found, not found, ambiguous, malformed), so a supplier's
integration can branch on `__typename`.
"""

from __future__ import annotations

from typing import Annotated

import strawberry

from domain.identifiers import OrgIdScheme, PersonIdScheme
from schema.types import Organisation, Person


@strawberry.input(
    description="Any identifier of an organisation. Leave `scheme` out to search every "
    "scheme (a VE_CODE (BRIN6) such as 09QQ00 then finds the provider and any location with it)."
)
class OrganisationIdentifierInput:
    value: str = strawberry.field(description="The identifier, e.g. 104A158, 09QQ or 09QQ00.")
    scheme: OrgIdScheme | None = strawberry.field(
        default=None, description="Scheme of the value; null means any scheme."
    )


@strawberry.input(
    description="A person identifier. ASI (administration system key) is only unique within "
    "a school, so it needs `school`."
)
class PersonIdentifierInput:
    scheme: PersonIdScheme = strawberry.field(description="Identifier scheme.")
    value: str = strawberry.field(description="The identifier.")
    school: OrganisationIdentifierInput | None = strawberry.field(
        default=None, description="The school, for school-scoped schemes (ASI)."
    )


@strawberry.type(description="No organisation has this identifier.")
class OrganisationNotFound:
    value: str = strawberry.field(description="The identifier that was looked up.")
    scheme: OrgIdScheme | None = strawberry.field(description="The scheme, if one was given.")
    message: str = strawberry.field(description="Human-readable explanation.")


@strawberry.type(
    description="The identifier points at several organisations (e.g. a VE_CODE (BRIN6) of a "
    "provider and of a location). Repeat the lookup with a primary id or a scheme."
)
class OrganisationAmbiguous:
    value: str = strawberry.field(description="The identifier that was looked up.")
    candidates: list[Organisation] = strawberry.field(
        description="Every organisation it points at."
    )
    message: str = strawberry.field(description="Human-readable explanation.")


@strawberry.type(description="The identifier is malformed; `problem` says which part.")
class InvalidIdentifier:
    scheme: str | None = strawberry.field(description="The scheme it was checked against.")
    value: str = strawberry.field(description="The value as given.")
    problem: str = strawberry.field(
        description="prefix, length, alphabet, format, check_digit or forbidden."
    )
    message: str = strawberry.field(description="What is wrong, in words.")


@strawberry.type(description="No person has this identifier (or the person was erased).")
class PersonNotFound:
    scheme: PersonIdScheme = strawberry.field(description="The scheme looked up.")
    value: str = strawberry.field(description="The identifier that was looked up.")
    message: str = strawberry.field(description="Human-readable explanation.")


OrganisationLookup = Annotated[
    Organisation | OrganisationNotFound | OrganisationAmbiguous | InvalidIdentifier,
    strawberry.union(
        "OrganisationLookup", description="Result of looking up an organisation by identifier."
    ),
]

PersonLookup = Annotated[
    Person | PersonNotFound | InvalidIdentifier,
    strawberry.union("PersonLookup", description="Result of looking up a person by identifier."),
]
