"""Identifiers (schemas, tables, columns) that reach check SQL: validated, then quoted.

dlt's snake_case naming only ever produces lower-case ASCII letters, digits and `_`, so
anything else — a quote, a dot, a space, upper case — is a configuration error, rejected
with the name and the fix before any SQL is built. Quoting is the dialect's job
(`dialects.Dialect.quote`); validation is the same for every dialect.
"""

from __future__ import annotations

import re

# Postgres truncates identifiers at 63 bytes (NAMEDATALEN - 1); dlt shortens to the same.
MAX_IDENTIFIER_LENGTH = 63
_IDENTIFIER = re.compile(r"\A[a-z_][a-z0-9_]*\Z")


class InvalidIdentifier(ValueError):
    """A dataset, table or column name that cannot be used in check SQL."""


def validate_identifier(value: object, what: str) -> str:
    """Return `value` if it is a plain dlt-style identifier, else raise naming `what` and the fix."""
    if not isinstance(value, str) or not _IDENTIFIER.match(value):
        raise InvalidIdentifier(
            f"{what} {value!r} is not a valid identifier for the health checks: use lower-case "
            "letters, digits and '_' only, starting with a letter or '_' (dlt's snake_case "
            "naming), e.g. 'daily_stats'. Fix the name in include/signalroom/registry.py."
        )
    if len(value.encode()) > MAX_IDENTIFIER_LENGTH:
        raise InvalidIdentifier(
            f"{what} {value!r} is {len(value.encode())} bytes long, over the "
            f"{MAX_IDENTIFIER_LENGTH}-byte limit of Postgres identifiers: shorten it in the registry"
        )
    return value


# Postgres' reserved key words (DuckDB's are a subset that matters here): a column named like
# one of these cannot appear unquoted, and SQLColumnCheckOperator splices column names
# unquoted (into a string literal and an alias), so such a key column is refused up front.
_RESERVED = frozenset(
    """all analyse analyze and any array as asc asymmetric both case cast check collate column
    constraint create current_catalog current_date current_role current_time current_timestamp
    current_user default deferrable desc distinct do else end except false fetch for foreign from
    grant group having in initially intersect into lateral leading limit localtime localtimestamp
    not null offset on only or order placing primary references returning select session_user
    some symmetric table then to trailing true union unique user using variadic when where window
    with""".split()
)


def validate_unquoted_column(value: object, what: str) -> str:
    """A column name that may stand unquoted in SQL (valid identifier, not a reserved word)."""
    name = validate_identifier(value, what)
    if name in _RESERVED:
        raise InvalidIdentifier(
            f"{what} {name!r} is an SQL reserved word, which SQLColumnCheckOperator cannot use "
            "unquoted: rename the column (e.g. with a dlt column hint) or drop it from the key"
        )
    return name
