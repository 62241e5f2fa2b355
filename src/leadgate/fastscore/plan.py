"""What a scoring model reads from each event and each lead, and the per-row predicates.

Every predicate (rule matches, intent actions, disqualifiers, fit rules) is evaluated
here in Python, with the reference evaluator's own code, over the distinct values of
what it reads. Those are few (the distinct page paths, form names, messages, titles,
email domains) however many events and leads there are, and the semantics stay exactly
the reference's: Python regexes, globs, number parsing. SQL joins the results back and
does the counting.

Three kinds of per-event predicate, by what they read:

- *slots* read a few property paths (``path``, ``form``, ``fields.website_url``): each
  event type has a *signature*, the JSON texts at the paths its slots read, and each
  distinct signature becomes a bit mask, one bit per slot;
- text disqualifiers read every message-like property of an event; they are evaluated
  on the distinct values of each such property (see ``events``), since the rule hits
  when any text matches;
- slots that read nothing depend on the event type alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from leadgate.domain.conditions import Condition
from leadgate.domain.events import Event, derived_attributes
from leadgate.domain.model import (
    Disqualifier,
    EventRule,
    Match,
    RatioRule,
    ScoringModel,
)
from leadgate.domain.scoring import EPOCH, _disqualifier_hit

BITS_PER_WORD = 62  # slots per BIGINT mask word; the sign bit stays clear
EMAIL_AT = "@email"  # pseudo attribute: the raw text after the last '@' of ``email``
Path = tuple[str, ...]  # a property path: ("fields", "company")


def path_of(dotted: str) -> Path:
    return tuple(dotted.split("."))


def loads(text: str | None) -> Any:
    """The Python value of a JSON text; None for SQL NULL or the empty string."""
    return None if not text else orjson.loads(text)


def nest(paths: Sequence[Path], values: Sequence[Any]) -> dict[str, Any]:
    """Properties holding ``values`` at ``paths``; a path under another one is skipped."""
    props: dict[str, Any] = {}
    for path, value in sorted(zip(paths, values, strict=True), key=lambda pv: len(pv[0])):
        if any(path[:i] in paths for i in range(1, len(path))):
            continue
        node = props
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return props


def _match_key(match: Match) -> tuple[Any, ...]:
    return (match.event, tuple((c.field, c.op, repr(c.value)) for c in match.where))


def _paths(conditions: Iterable[Condition]) -> set[Path]:
    return {path_of(c.field) for c in conditions}


@dataclass
class Slot:
    """One bit of the per-event mask: a test of events of some types (None: every type)."""

    types: frozenset[str] | None
    test: Callable[[Event], bool]
    paths: frozenset[Path]

    def applies(self, event_type: str) -> bool:
        return self.types is None or event_type in self.types


@dataclass
class TextSlot:
    """A text disqualifier: hits an event when one of its texts matches."""

    types: frozenset[str] | None
    test: Callable[[Any], bool]
    pattern: str


@dataclass
class EventPlan:
    """The event predicates of a model, as mask bits, and the properties they read."""

    slots: list[Slot | TextSlot] = field(default_factory=list)
    match_slot: dict[tuple[Any, ...], int] = field(default_factory=dict)
    intent_slot: int | None = None
    dq_slots: dict[str, list[int]] = field(default_factory=dict)
    key_paths: list[Path] = field(default_factory=list)  # once_per / distinct properties
    key_types: dict[Path, set[str]] = field(default_factory=dict)

    @property
    def words(self) -> int:
        return max(1, -(-len(self.slots) // BITS_PER_WORD))

    def slot_of(self, match: Match) -> int:
        return self.match_slot[_match_key(match)]

    def sig_slots(self) -> list[tuple[int, Slot]]:
        return [(i, s) for i, s in enumerate(self.slots) if isinstance(s, Slot)]

    def text_slots(self) -> list[tuple[int, TextSlot]]:
        return [(i, s) for i, s in enumerate(self.slots) if isinstance(s, TextSlot)]

    def named_types(self) -> list[str]:
        found: set[str] = set()
        for _, slot in self.sig_slots():
            found |= slot.types or frozenset()
        return sorted(found)

    def paths_for(self, event_type: str | None) -> tuple[Path, ...]:
        """Paths read for events of a type (None: a type no slot names)."""
        paths: set[Path] = set()
        for _, slot in self.sig_slots():
            if slot.types is None or (event_type is not None and event_type in slot.types):
                paths |= slot.paths
        return tuple(sorted(paths))

    def masks(self, event_type: str, texts: Sequence[str | None]) -> list[int]:
        """Mask words for an event type and the JSON texts at ``paths_for(event_type)``."""
        paths = self.paths_for(event_type)
        event = Event("", "", event_type, EPOCH, nest(paths, [loads(t) for t in texts]))
        words = [0] * self.words
        for i, slot in self.sig_slots():
            if slot.applies(event_type) and slot.test(event):
                words[i // BITS_PER_WORD] |= 1 << (i % BITS_PER_WORD)
        return words

    def add_match(self, match: Match) -> None:
        key = _match_key(match)
        if key not in self.match_slot:
            self.match_slot[key] = len(self.slots)
            self.slots.append(
                Slot(frozenset({match.event}), match.matches, frozenset(_paths(match.where)))
            )

    def add_key(self, dotted: str, event_type: str) -> None:
        path = path_of(dotted)
        if path not in self.key_types:
            self.key_paths.append(path)
            self.key_types[path] = set()
        self.key_types[path].add(event_type)

    def add_disqualifier(self, dq: Disqualifier) -> None:
        bits: list[int] = []
        if dq.match is not None or dq.honeypot is not None:
            types: set[str] = set()
            paths: set[Path] = set()
            if dq.match is not None:
                types.add(dq.match.event)
                paths |= _paths(dq.match.where)
            if dq.honeypot is not None:
                types.add("form_submitted")
                paths |= {("fields", *path_of(dq.honeypot)), (dq.honeypot,)}
            event_only = Disqualifier(
                dq.id, dq.reason, dq.label, dq.line, match=dq.match, honeypot=dq.honeypot
            )

            def test(event: Event) -> bool:
                return _disqualifier_hit(event_only, {}, [event]) is not None

            bits.append(len(self.slots))
            self.slots.append(Slot(frozenset(types), test, frozenset(paths)))
        if dq.text is not None:
            bits.append(len(self.slots))
            kinds = frozenset(dq.text_events) or None
            self.slots.append(TextSlot(kinds, dq.text.test, str(dq.text.value)))
        self.dq_slots[dq.id] = bits


def event_plan(model: ScoringModel) -> EventPlan:
    plan = EventPlan()
    for rule in model.rules:
        if isinstance(rule, RatioRule):
            for side in (rule.numerator, rule.denominator):
                plan.add_match(side.match)
                plan.add_key(side.distinct, side.match.event)
        else:
            plan.add_match(rule.match)
            if isinstance(rule, EventRule) and rule.once_per is not None:
                plan.add_key(rule.once_per, rule.match.event)
    if model.intent_actions:
        actions = model.intent_actions
        plan.intent_slot = len(plan.slots)
        plan.slots.append(
            Slot(
                frozenset(m.event for m in actions),
                lambda e: any(m.matches(e) for m in actions),
                frozenset(p for m in actions for p in _paths(m.where)),
            )
        )
    for dq in model.disqualifiers:
        if not dq.where:
            plan.add_disqualifier(dq)
    return plan


# -- group keys ------------------------------------------------------------------------


def once_key(text: str | None) -> str:
    """The group of a ``once_per`` value: ``repr`` of the value, as the reference keys it."""
    return repr(loads(text))


def distinct_key(text: str | None) -> str | None:
    """The distinct value of a ratio side: None for missing or empty, else ``str``."""
    value = loads(text)
    return None if value is None or value == "" else str(value)


# -- lead attributes -------------------------------------------------------------------


@dataclass
class AttributeGroup:
    """Fit rules and attribute disqualifiers that read the same attribute keys."""

    keys: tuple[str, ...]
    fit: list[tuple[int, float, Callable[[Mapping[str, Any]], bool]]] = field(default_factory=list)
    dq: list[tuple[str, Callable[[Mapping[str, Any]], bool]]] = field(default_factory=list)

    def evaluate(self, texts: Sequence[str | None]) -> tuple[list[float], list[bool]]:
        """Fit points and disqualifier hits for one combination of attribute values.

        ``texts`` are JSON texts of the top-level attributes in ``keys``; for
        ``EMAIL_AT``, the raw text after the last '@' of a string ``email``.
        """
        attrs: dict[str, Any] = {}
        for key, value in zip(self.keys, texts, strict=True):
            if key != EMAIL_AT:
                attrs[key] = loads(value)
        if EMAIL_AT in self.keys and "email" not in attrs:
            raw = texts[self.keys.index(EMAIL_AT)]
            attrs["email"] = None if raw is None else "@" + raw
        derived = derived_attributes(attrs)
        points = [p if test(derived) else 0.0 for _, p, test in self.fit]
        return points, [test(derived) for _, test in self.dq]


def _attribute_keys(conditions: Iterable[Condition]) -> tuple[str, ...]:
    keys = {path_of(c.field)[0] for c in conditions}
    if "email_domain" in keys:
        keys.add(EMAIL_AT)
    return tuple(sorted(keys))


def _holds_all(where: tuple[Condition, ...]) -> Callable[[Mapping[str, Any]], bool]:
    return lambda attrs: all(c.holds(attrs) for c in where)


def attribute_groups(model: ScoringModel) -> list[AttributeGroup]:
    groups: dict[tuple[str, ...], AttributeGroup] = {}
    for i, rule in enumerate(model.fit):
        keys = _attribute_keys(rule.where)
        groups.setdefault(keys, AttributeGroup(keys)).fit.append(
            (i, rule.points, _holds_all(rule.where))
        )
    for dq in model.disqualifiers:
        if dq.where:
            keys = _attribute_keys(dq.where)
            groups.setdefault(keys, AttributeGroup(keys)).dq.append((dq.id, _holds_all(dq.where)))
    return list(groups.values())
