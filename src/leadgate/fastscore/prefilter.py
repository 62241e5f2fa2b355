"""A cheap SQL test that rules out texts a Python regex cannot match.

Free text is nearly unique per event (messages, form fields with email addresses), so
testing every distinct text with Python's ``re`` costs seconds per million. Most
patterns name words: every match of ``(?i)\\b(jobs?|cv|resume)\\b`` contains ``job``,
``cv`` or ``resume``. ``required_literals`` finds such a set from the parsed pattern;
SQL keeps only the texts that contain one of them (lower-cased), and Python still
decides every text that is kept. Texts that are not plain ASCII, or that hold a
backslash (a JSON escape), are always kept, so the filter never drops a real match:
for an ASCII text, a case-insensitive match of an ASCII literal is a lower-cased
substring, and non-ASCII pattern characters are left out of the literals.
"""

from __future__ import annotations

import re
from re import _constants as c  # type: ignore[attr-defined]
from re import _parser  # type: ignore[attr-defined]
from typing import Any

from leadgate.fastscore.sql import text

MAX_EXPANSION = 64  # strings a run of character classes may expand into
_REPEATS = {c.MAX_REPEAT, c.MIN_REPEAT, getattr(c, "POSSESSIVE_REPEAT", c.MAX_REPEAT)}


def required_literals(pattern: str) -> list[str] | None:
    """Lower-case ASCII strings at least one of which every match contains; None if unknown."""
    try:
        tree = _parser.parse(pattern)
    except (re.error, ValueError, TypeError):
        return None
    found = _sequence(list(tree))
    if not found or any(not s for s in found):
        return None
    return sorted(found)


def _sequence(items: list[tuple[Any, Any]]) -> set[str] | None:
    """The best literal set of a sequence: the one whose shortest member is longest.

    Runs of literal characters, and of small classes of them (``0[89]``), make
    candidates, as do the items that have a literal set of their own.
    """
    candidates: list[set[str]] = []
    run: set[str] = {""}
    for op, av in items:
        chars = _chars(op, av)
        if chars and len(run) * len(chars) <= MAX_EXPANSION:
            run = {r + ch for r in run for ch in chars}
            continue
        if run != {""}:
            candidates.append(run)
        run = {""}
        found = None if chars else _item(op, av)
        if found is not None:
            candidates.append(found)
    if run != {""}:
        candidates.append(run)
    return max(candidates, key=lambda s: min(len(x) for x in s), default=None)


def _chars(op: Any, av: Any) -> set[str] | None:
    """Lower-cased ASCII characters one item matches: a literal or a class of literals."""
    if op is c.LITERAL:
        return {chr(av).lower()} if av < 128 else None
    if op is c.IN and all(o is c.LITERAL and v < 128 for o, v in av):
        return {chr(v).lower() for _, v in av}
    return None


def _item(op: Any, av: Any) -> set[str] | None:
    if op is c.SUBPATTERN:
        return _sequence(list(av[3]))
    if op is getattr(c, "ATOMIC_GROUP", None):
        return _sequence(list(av))
    if op in _REPEATS:
        return _sequence(list(av[2])) if av[0] >= 1 else None
    if op is c.BRANCH:
        out: set[str] = set()
        for alternative in av[1]:
            found = _sequence(list(alternative))
            if found is None:
                return None
            out |= found
        return out
    return None


def _re2_literal(value: str) -> str:
    return "".join(ch if ch.isalnum() else f"\\x{{{ord(ch):02x}}}" for ch in value)


def could_match_sql(value: str, literals: list[str]) -> str:
    """SQL that is false only when the text ``value`` cannot contain any of ``literals``."""
    alternation = "|".join(_re2_literal(lit) for lit in literals)
    return (
        f"(strlen({value}) <> length({value}) OR contains({value}, '\\') "
        f"OR regexp_matches(lower({value}), {text(alternation)}))"
    )
