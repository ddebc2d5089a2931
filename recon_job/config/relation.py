"""The check of a DuckDB SQL source's ``relation``: one file-reading table function call.

A relation is written into the query after ``FROM`` as it is, so it is held to a small grammar
rather than trusted: a single call of a function of :data:`RELATION_FUNCTIONS` whose arguments
are literals — strings, numbers, ``true``/``false``/``null``, lists ``[...]`` and structs
``{'key': ...}`` of literals — positional or ``name = literal``. Anything else (a ``;``, a
subquery, a comment, an identifier or expression as a value, text after the call) is refused.
"""

from __future__ import annotations

import re

#: The table functions a relation may call: DuckDB's readers of Parquet, JSON and CSV files.
RELATION_FUNCTIONS = (
    "read_parquet",
    "read_json",
    "read_json_auto",
    "read_ndjson",
    "read_csv",
    "read_csv_auto",
)

_TOKEN = re.compile(
    r"\s*(?:"
    r"(?P<string>'(?:[^']|'')*')"
    r"|(?P<number>-?\d+(?:\.\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<punct>[()\[\]{},:=])"
    r")"
)
_WORDS = frozenset({"true", "false", "null"})


class _Refused(Exception):
    """The relation leaves the grammar; the message says where."""


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens: list[tuple[str, str]] = []
        position = 0
        while position < len(text):
            if not text[position:].strip():
                break
            match = _TOKEN.match(text, position)
            if match is None or match.end() == position:
                raise _Refused(f"unexpected {text[position:].strip()[:20]!r}")
            kind = match.lastgroup or ""
            self.tokens.append((kind, match.group(kind)))
            position = match.end()
        self.at = 0

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.at] if self.at < len(self.tokens) else ("end", "")

    def take(self, value: str | None = None, kind: str | None = None) -> str:
        found_kind, found = self.peek()
        if (value is not None and found != value) or (kind is not None and found_kind != kind):
            shown = repr(found) if found else "the end"
            raise _Refused(f"expected {value or kind!r}, found {shown}")
        self.at += 1
        return found

    def call(self) -> str:
        name = self.take(kind="name")
        if name.lower() not in RELATION_FUNCTIONS:
            raise _Refused(f"{name!r} is not one of {', '.join(RELATION_FUNCTIONS)}")
        self.take("(")
        if self.peek()[1] != ")":
            self.argument()
            while self.peek()[1] == ",":
                self.take(",")
                self.argument()
        self.take(")")
        if self.peek()[0] != "end":
            raise _Refused(f"nothing may follow the call, found {self.peek()[1]!r}")
        return name

    def argument(self) -> None:
        kind, value = self.peek()
        if kind == "name" and value.lower() not in _WORDS:
            self.take(kind="name")
            if self.peek()[1] != "=":
                raise _Refused(f"{value!r} is not a literal (a 'string', number, ...)")
            self.take("=")
        self.literal()

    def literal(self) -> None:
        kind, value = self.peek()
        if kind in ("string", "number") or (kind == "name" and value.lower() in _WORDS):
            self.at += 1
        elif value == "[":
            self.sequence("[", "]", keyed=False)
        elif value == "{":
            self.sequence("{", "}", keyed=True)
        else:
            raise _Refused(f"{value or 'the end'!r} is not a literal (a 'string', number, ...)")

    def sequence(self, opening: str, closing: str, *, keyed: bool) -> None:
        self.take(opening)
        while self.peek()[1] != closing:
            if keyed:
                self.take(kind="string")
                self.take(":")
            self.literal()
            if self.peek()[1] != ",":
                break
            self.take(",")
        self.take(closing)


def relation_problem(relation: str) -> str | None:
    """Why ``relation`` is refused (None when it is one allowed call of literals)."""
    try:
        _Parser(relation).call()
    except _Refused as e:
        return (
            f"SQL source relation {relation!r} is refused: {e} — write one call of "
            f"{', '.join(RELATION_FUNCTIONS)} with literal arguments, e.g. "
            "read_parquet('lake/*.parquet')"
        )
    return None
