"""Read a scoring model from YAML text and check it.

Every problem is reported with file, line and rule id; all problems are
collected before failing, so one run shows everything to fix.
"""

from __future__ import annotations

import difflib
import hashlib
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import timedelta
from typing import Any

from leadgate.domain.conditions import (
    OPERATORS,
    Condition,
    build_condition,
    build_conditions,
    parse_duration,
)
from leadgate.domain.events import CANONICAL_EVENTS, KNOWN_ATTRIBUTES, canonical_event_type
from leadgate.domain.lists import BUILTIN_LISTS
from leadgate.domain.model import (
    DISQUALIFY_REASONS,
    INBOUND_TEXT_EVENTS,
    Calibration,
    Cap,
    CountRule,
    Disqualifier,
    Distinct,
    EventRule,
    FitRule,
    GapRule,
    Match,
    RatioRule,
    Rule,
    ScoringModel,
    Thresholds,
)
from leadgate.domain.yamldoc import Path, SpecError, YamlDoc, parse_yaml

TOP_KEYS = {
    "name",
    "version",
    "description",
    "thresholds",
    "handover",
    "intent_window",
    "decay",
    "attributes",
    "custom_events",
    "lists",
    "groups",
    "intent_actions",
    "rules",
    "fit",
    "disqualify",
    "calibration",
}
CALIBRATION_KEYS = {"method", "slope", "intercept", "points_to_double_odds", "fitted_on"}
COMMON_RULE_KEYS = {"id", "label", "kind", "points", "group", "window", "decay"}
RULE_KEYS = {
    "event": COMMON_RULE_KEYS | {"event", "where", "once_per", "cap"},
    "count": COMMON_RULE_KEYS | {"event", "where", "count_at_least", "within"},
    "ratio": COMMON_RULE_KEYS | {"numerator", "denominator", "at_least", "min_denominator"},
    "return_after_gap": COMMON_RULE_KEYS | {"event", "where", "gap", "cap"},
}
FIT_KEYS = {"id", "label", "points", "group", "field", "where"}
DISQUALIFY_KEYS = {"id", "label", "reason", "field", "where", "event", "text_matches", "honeypot"}


MAX_POINTS = 1e9
POINTS_RANGE = f"from {-MAX_POINTS:.0e} to {MAX_POINTS:.0e}".replace("e+0", "e").replace("e+", "e")
# Numbers with an exponent that YAML 1.1 (PyYAML) reads as text: `1e3`, `2.5E-2`, `1.0e5`.
EXPONENT_NUMBER = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)[eE][-+]?[0-9]+")


def _hint(word: str, known: Iterable[str]) -> str:
    """``; did you mean 'points'?`` when a known word is close."""
    close = difflib.get_close_matches(word, sorted(known), n=1, cutoff=0.75)
    return f"; did you mean '{close[0]}'?" if close else ""


def load_model(text: str, source: str = "<model>") -> ScoringModel:
    """Parse and check a model; raise SpecError listing every problem."""
    return _ModelReader(parse_yaml(text, source), text).read()


class _ModelReader:
    def __init__(self, doc: YamlDoc, text: str) -> None:
        self.doc = doc
        self.text = text
        self.problems: list[str] = []
        self.lists: dict[str, frozenset[str]] = dict(BUILTIN_LISTS)
        self.attributes: set[str] = set(KNOWN_ATTRIBUTES)
        self.custom_events: set[str] = set()
        self.groups: tuple[str, ...] = ()
        self.half_life: timedelta | None = None

    # -- reporting -----------------------------------------------------------
    def fail(self, path: Path, message: str, rule_id: str | None = None) -> None:
        who = f"rule '{rule_id}': " if rule_id else ""
        self.problems.append(f"{self.doc.where(path)}: {who}{message}")

    def check_keys(
        self,
        data: dict[str, Any],
        allowed: set[str],
        path: Path,
        what: str,
        rule_id: str | None = None,
    ) -> None:
        if rule_id is None and isinstance(data.get("id"), str):
            rule_id = data["id"]
        for key in data:
            if key not in allowed:
                known = ", ".join(sorted(allowed))
                self.fail(
                    (*path, key),
                    f"unknown key '{key}' in {what} (allowed: {known}){_hint(str(key), allowed)}",
                    rule_id,
                )

    def duration(self, value: Any, path: Path, rule_id: str | None = None) -> timedelta | None:
        try:
            return parse_duration(value)
        except ValueError as exc:
            self.fail(path, str(exc), rule_id)
            return None

    def number(self, value: Any, path: Path, rule_id: str | None, what: str) -> float | None:
        written = value.strip() if isinstance(value, str) else None
        if written is not None and EXPONENT_NUMBER.fullmatch(written):
            value = float(written)  # `1e3`: a number in YAML 1.2, text to YAML 1.1's parser
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(path, f"{what} must be a number, got {value!r}", rule_id)
            return None
        try:
            number = float(value)
        except OverflowError:  # an integer beyond any float
            number = math.inf
        if not math.isfinite(number) or abs(number) > MAX_POINTS:
            shown = f"{number:g}" if math.isfinite(number) or isinstance(value, float) else None
            got = written or shown or f"an integer of {len(str(abs(value)))} digits"
            self.fail(path, f"{what} must be a number {POINTS_RANGE}, got {got}", rule_id)
            return None
        return number

    # -- the whole file --------------------------------------------------------
    def read(self) -> ScoringModel:
        data = self.doc.data
        if not isinstance(data, dict):
            raise SpecError([f"{self.doc.where(())}: a model must be a mapping of keys"])
        self.check_keys(data, TOP_KEYS, (), "the model")
        self.read_declarations(data)
        thresholds = self.read_thresholds(data.get("thresholds"))
        intent_window = self.duration(data.get("intent_window", "30d"), ("intent_window",))
        handover = data.get("handover", "sql")
        if handover not in ("sql", "mql"):
            self.fail(("handover",), f"handover must be 'sql' or 'mql', got {handover!r}")
        intent = self.read_list(data, "intent_actions", self.read_intent)
        rules = self.read_list(data, "rules", self.read_rule)
        fit = self.read_list(data, "fit", self.read_fit)
        disqualifiers = self.read_list(data, "disqualify", self.read_disqualifier)
        self.check_unique_ids(data)
        calibration = self.read_calibration(data.get("calibration"))
        if self.problems:
            raise SpecError(self.problems)
        assert thresholds is not None and intent_window is not None
        digest = hashlib.sha256(self.text.encode()).hexdigest()[:12]
        for key in ("name", "version"):
            if key in data and not isinstance(data[key], str | int | float):
                self.fail((key,), f"'{key}' must be text, got {data[key]!r}")
        if self.problems:
            raise SpecError(self.problems)
        return ScoringModel(
            name=str(data.get("name", "unnamed")),
            version=str(data.get("version", digest)),
            description=str(data.get("description", "")),
            thresholds=thresholds,
            intent_window=intent_window,
            intent_actions=tuple(m for m in intent if m is not None),
            rules=tuple(r for r in rules if r is not None),
            fit=tuple(f for f in fit if f is not None),
            disqualifiers=tuple(d for d in disqualifiers if d is not None),
            handover=str(handover),
            half_life=self.half_life,
            groups=self.groups,
            source=self.doc.source,
            lists=self.lists,
            calibration=calibration,
        )

    def names(self, data: dict[str, Any], key: str) -> list[Any]:
        value = data.get(key) or []
        if not isinstance(value, list):
            self.fail((key,), f"'{key}' must be a list of names")
            return []
        return value

    def read_declarations(self, data: dict[str, Any]) -> None:
        lists = data.get("lists") or {}
        if not isinstance(lists, dict):
            self.fail(("lists",), "'lists' must map each list name to a list of values")
            lists = {}
        for name, values in lists.items():
            if not isinstance(values, list):
                self.fail(("lists", name), f"list '{name}' must be a list of values")
                continue
            self.lists[str(name)] = frozenset(str(v).strip().lower() for v in values)
        self.attributes |= {str(a) for a in self.names(data, "attributes")}
        self.custom_events |= {
            canonical_event_type(str(e)) for e in self.names(data, "custom_events")
        }
        self.groups = tuple(str(g) for g in self.names(data, "groups"))
        for reserved in ("fit", "engagement"):
            if reserved in self.groups:
                self.fail(("groups",), f"'{reserved}' is always a group; do not declare it")
        decay = data.get("decay")
        if decay is not None:
            self.half_life = self.read_decay(decay, ("decay",), None, None)

    def read_decay(
        self, value: Any, path: Path, rule_id: str | None, default: timedelta | None
    ) -> timedelta | None:
        if value in (None, "none", False):
            return None if value is not None else default
        if not isinstance(value, dict) or set(value) != {"half_life"}:
            self.fail(path, "decay must be {half_life: DURATION} or none", rule_id)
            return default
        return self.duration(value["half_life"], (*path, "half_life"), rule_id)

    def read_thresholds(self, value: Any) -> Thresholds | None:
        if not isinstance(value, dict) or not {"mql", "sql"} <= set(value):
            self.fail(
                ("thresholds",), "thresholds must give both mql and sql, e.g. {mql: 50, sql: 50}"
            )
            return None
        self.check_keys(value, {"mql", "sql"}, ("thresholds",), "thresholds")
        mql = self.number(value["mql"], ("thresholds", "mql"), None, "the MQL threshold")
        sql = self.number(value["sql"], ("thresholds", "sql"), None, "the SQL threshold")
        if mql is None or sql is None:
            return None
        if sql < mql:
            self.fail(
                ("thresholds", "sql"), f"the SQL threshold {sql:g} is below the MQL one {mql:g}"
            )
        return Thresholds(mql=mql, sql=sql)

    def read_calibration(self, value: Any) -> Calibration | None:
        """``calibration: {method: platt, slope: S, intercept: I}``: score -> probability."""
        if value is None:
            return None
        path: Path = ("calibration",)
        if not isinstance(value, dict) or not {"slope", "intercept"} <= set(value):
            self.fail(path, "calibration must give slope and intercept (method: platt)")
            return None
        self.check_keys(value, CALIBRATION_KEYS, path, "the calibration")
        method = value.get("method", "platt")
        if method != "platt":
            self.fail((*path, "method"), f"calibration method must be 'platt', got {method!r}")
        slope = self.number(value["slope"], (*path, "slope"), None, "the calibration slope")
        intercept = self.number(value["intercept"], (*path, "intercept"), None, "the intercept")
        if slope is not None and slope <= 0:
            self.fail((*path, "slope"), f"the calibration slope must be above 0, got {slope:g}")
        scale = value.get("points_to_double_odds")
        if scale is not None:
            scale = self.number(scale, (*path, "points_to_double_odds"), None, "the scale")
        if slope is None or intercept is None or slope <= 0 or method != "platt":
            return None
        return Calibration(slope, intercept, "platt", scale, str(value.get("fitted_on", "")))

    def read_list(
        self, data: dict[str, Any], key: str, read: Callable[[Any, Path], Any]
    ) -> list[Any]:
        items = data.get(key) or []
        if not isinstance(items, list):
            self.fail((key,), f"'{key}' must be a list")
            return []
        return [read(item, (key, i)) for i, item in enumerate(items)]

    def check_unique_ids(self, data: dict[str, Any]) -> None:
        seen: dict[str, int] = {}
        for key in ("rules", "fit", "disqualify", "intent_actions"):
            items = data.get(key)
            for i, item in enumerate(items if isinstance(items, list) else []):
                if isinstance(item, dict) and isinstance(item.get("id"), str):
                    rid = item["id"]
                    if rid in seen:
                        self.fail(
                            (key, i, "id"), f"duplicate rule id (first at line {seen[rid]})", rid
                        )
                    else:
                        seen[rid] = self.doc.line((key, i, "id"))

    # -- parts -----------------------------------------------------------------
    def conditions(
        self,
        spec: Any,
        path: Path,
        rule_id: str | None,
        fields: Callable[[str], str | None],
        short: bool = False,
    ) -> tuple[Condition, ...]:
        """Checked conditions; ``short`` is the inline form (``field: x`` and operators)."""
        out: list[Condition] = []
        for name, op, result in build_conditions(spec, self.lists):
            if isinstance(result, str):
                self.fail((*path, op) if short else (*path, name, op), result, rule_id)
                continue
            problem = fields(name)
            if problem:
                self.fail((*path, "field") if short else (*path, name), problem, rule_id)
            out.append(result)
        return tuple(out)

    def event_field_check(self, event: str) -> Callable[[str], str | None]:
        def check(name: str) -> str | None:
            known = CANONICAL_EVENTS.get(event)
            if known is None or name.split(".")[0] in known:
                return None
            hint = _hint(name.split(".")[0], known)
            listed = ", ".join(sorted(known))
            return f"unknown event field '{name}' for {event} (known: {listed}){hint}"

        return check

    def attribute_check(self, name: str) -> str | None:
        if name in self.attributes:
            return None
        hint = _hint(name, self.attributes)
        return f"unknown lead attribute '{name}' (declare custom ones under 'attributes:'){hint}"

    def match(self, data: dict[str, Any], path: Path, rule_id: str | None) -> Match | None:
        raw = data.get("event")
        if not isinstance(raw, str) or not raw:
            self.fail((*path, "event"), "needs an 'event' type", rule_id)
            return None
        event = self.event_type(raw, (*path, "event"), rule_id)
        if event is None:
            return None
        where = self.conditions(
            data.get("where") or {}, (*path, "where"), rule_id, self.event_field_check(event)
        )
        return Match(event=event, where=where)

    def event_type(self, raw: str, path: Path, rule_id: str | None) -> str | None:
        event = canonical_event_type(raw)
        known = self.custom_events
        if event not in CANONICAL_EVENTS and event not in known:
            self.fail(
                path,
                f"unknown event type '{raw}' (declare custom ones under 'custom_events:')"
                + _hint(event, CANONICAL_EVENTS.keys() | known),
                rule_id,
            )
            return None
        return event

    def read_intent(self, item: Any, path: Path) -> Match | None:
        if not isinstance(item, dict):
            self.fail(path, "an intent action must be a mapping with 'event'")
            return None
        self.check_keys(item, {"id", "event", "where"}, path, "an intent action")
        return self.match(item, path, item.get("id"))

    def rule_id(self, item: Any, path: Path) -> str | None:
        if not isinstance(item, dict):
            self.fail(path, "each entry must be a mapping with an 'id'")
            return None
        rid = item.get("id")
        if not isinstance(rid, str) or not rid.strip():
            self.fail(path, "each entry needs an 'id' (a short name)")
            return None
        return rid

    def read_rule(self, item: Any, path: Path) -> Rule | None:
        rid = self.rule_id(item, path)
        if rid is None:
            return None
        kind = item.get("kind") or ("count" if "count_at_least" in item else "event")
        if not isinstance(kind, str) or kind not in RULE_KEYS:
            self.fail(
                (*path, "kind"), f"unknown rule kind '{kind}' (known: {', '.join(RULE_KEYS)})", rid
            )
            return None
        article = "an" if kind == "event" else "a"
        self.check_keys(item, RULE_KEYS[kind], path, f"{article} {kind} rule")
        points = self.number(item.get("points"), (*path, "points"), rid, "points")
        group = item.get("group")
        if group is not None and group not in self.groups:
            self.fail(
                (*path, "group"), f"unknown group '{group}' (declare it under 'groups:')", rid
            )
        window = self.duration(item["window"], (*path, "window"), rid) if "window" in item else None
        half_life = self.half_life
        if "decay" in item:
            half_life = self.read_decay(item["decay"], (*path, "decay"), rid, self.half_life)
        common: dict[str, Any] = {
            "id": rid,
            "points": points or 0.0,
            "label": str(item.get("label") or rid.replace("-", " ")),
            "line": self.doc.line(path),
            "group": group,
            "window": window,
            "half_life": half_life,
        }
        if kind == "ratio":
            return self.read_ratio(item, path, common)
        match = self.match(item, path, rid)
        if points is None or match is None:
            return None
        if kind == "count":
            at_least = item.get("count_at_least")
            if isinstance(at_least, bool) or not isinstance(at_least, int) or at_least < 1:
                self.fail(
                    (*path, "count_at_least"), "count_at_least must be a whole number >= 1", rid
                )
                return None
            within = (
                self.duration(item["within"], (*path, "within"), rid) if "within" in item else None
            )
            return CountRule(**common, match=match, at_least=at_least, within=within)
        cap = self.read_cap(item.get("cap"), (*path, "cap"), rid, points)
        if kind == "return_after_gap":
            gap = self.duration(item.get("gap"), (*path, "gap"), rid)
            return GapRule(**common, match=match, gap=gap, cap=cap) if gap else None
        once_per = item.get("once_per")
        if once_per is not None:
            check = self.event_field_check(match.event)(str(once_per))
            if check:
                self.fail((*path, "once_per"), check, rid)
        return EventRule(**common, match=match, once_per=once_per, cap=cap)

    def read_cap(self, value: Any, path: Path, rid: str, points: float) -> Cap | None:
        if value is None:
            return None
        if not isinstance(value, dict):
            self.fail(
                path, "cap must be a mapping: {total: N} and/or {period: 1d, period_max: N}", rid
            )
            return None
        self.check_keys(value, {"total", "period", "period_max"}, path, "a cap", rid)
        total = value.get("total")
        if total is not None:
            total = self.number(total, (*path, "total"), rid, "cap total")
            if total is not None and total < abs(points):
                self.fail(
                    (*path, "total"),
                    f"cap total {total:g} is below the rule's points {points:g}",
                    rid,
                )
        period = period_max = None
        if ("period" in value) != ("period_max" in value):
            self.fail(path, "a period cap needs both 'period' (e.g. 1d) and 'period_max'", rid)
        elif "period" in value:
            period = self.duration(value["period"], (*path, "period"), rid)
            period_max = self.number(value["period_max"], (*path, "period_max"), rid, "period_max")
            if period_max is not None and period_max < abs(points):
                self.fail(
                    (*path, "period_max"),
                    f"cap period_max {period_max:g} is below the rule's points {points:g}",
                    rid,
                )
        return Cap(total=total, period=period, period_max=period_max)

    def read_ratio(
        self, item: dict[str, Any], path: Path, common: dict[str, Any]
    ) -> RatioRule | None:
        rid = common["id"]
        parts: list[Distinct] = []
        for side in ("numerator", "denominator"):
            spec = item.get(side)
            if not isinstance(spec, dict):
                self.fail((*path, side), f"a ratio rule needs '{side}': {{event, distinct}}", rid)
                continue
            self.check_keys(spec, {"event", "where", "distinct"}, (*path, side), f"the {side}", rid)
            match = self.match(spec, (*path, side), rid)
            distinct = spec.get("distinct")
            if not isinstance(distinct, str):
                self.fail(
                    (*path, side, "distinct"), f"the {side} needs 'distinct': a property", rid
                )
            elif match is not None:
                problem = self.event_field_check(match.event)(distinct)
                if problem:
                    self.fail((*path, side, "distinct"), problem, rid)
                else:
                    parts.append(Distinct(match=match, distinct=distinct))
        at_least = self.number(item.get("at_least"), (*path, "at_least"), rid, "at_least")
        if at_least is not None and not 0 < at_least <= 1:
            self.fail(
                (*path, "at_least"), f"at_least is a share between 0 and 1, got {at_least:g}", rid
            )
        minimum = item.get("min_denominator", 1)
        if isinstance(minimum, bool) or not isinstance(minimum, int) or minimum < 1:
            self.fail(
                (*path, "min_denominator"), "min_denominator must be a whole number >= 1", rid
            )
            return None
        if len(parts) != 2 or at_least is None:
            return None
        return RatioRule(
            **common,
            numerator=parts[0],
            denominator=parts[1],
            at_least=at_least,
            min_denominator=minimum,
        )

    def read_fit(self, item: Any, path: Path) -> FitRule | None:
        rid = self.rule_id(item, path)
        if rid is None:
            return None
        self.check_keys(item, FIT_KEYS | set(OPERATORS), path, "a fit rule")
        points = self.number(item.get("points"), (*path, "points"), rid, "points")
        where = self.attribute_where(
            item, path, rid, {"id", "label", "points", "group", "field", "where"}
        )
        group = item.get("group")
        if group is not None and group not in self.groups:
            self.fail(
                (*path, "group"), f"unknown group '{group}' (declare it under 'groups:')", rid
            )
        if points is None or where is None:
            return None
        return FitRule(
            id=rid,
            points=points,
            label=str(item.get("label") or rid.replace("-", " ")),
            line=self.doc.line(path),
            where=where,
            group=group,
        )

    def attribute_where(
        self, item: dict[str, Any], path: Path, rid: str, own_keys: set[str]
    ) -> tuple[Condition, ...] | None:
        """Conditions from ``where:`` or the short form ``field: x`` plus operators inline."""
        if "where" in item:
            if not item["where"]:
                self.fail((*path, "where"), "'where' needs at least one test", rid)
                return None
            return self.conditions(item["where"], (*path, "where"), rid, self.attribute_check)
        if "field" not in item:
            self.fail(path, "needs 'field' with a test (e.g. matches: ...) or 'where'", rid)
            return None
        ops = {k: v for k, v in item.items() if k not in own_keys}
        if not ops:
            self.fail(
                path, f"field '{item['field']}' has no test (e.g. in: [...], matches: ...)", rid
            )
            return None
        return self.conditions(
            {str(item["field"]): ops}, path, rid, self.attribute_check, short=True
        )

    def read_disqualifier(self, item: Any, path: Path) -> Disqualifier | None:
        rid = self.rule_id(item, path)
        if rid is None:
            return None
        reason = item.get("reason")
        if reason not in DISQUALIFY_REASONS:
            self.fail(
                (*path, "reason"),
                f"reason must be one of {', '.join(DISQUALIFY_REASONS)}, got {reason!r}",
                rid,
            )
        label = str(item.get("label") or rid.replace("-", " "))
        base = Disqualifier(id=rid, reason=str(reason), label=label, line=self.doc.line(path))
        if "honeypot" in item:
            self.check_keys(
                item, {"id", "label", "reason", "honeypot"}, path, "a honeypot disqualifier"
            )
            return replace(base, honeypot=str(item["honeypot"]))
        if "text_matches" in item:
            self.check_keys(
                item,
                {"id", "label", "reason", "text_matches", "event"},
                path,
                "a text disqualifier",
            )
            try:
                text = build_condition("text", "matches", item["text_matches"], self.lists)
            except ValueError as exc:
                self.fail((*path, "text_matches"), str(exc), rid)
                return None
            events = item.get("event") or []
            events = [events] if isinstance(events, str) else events
            if not isinstance(events, list):
                self.fail((*path, "event"), "'event' must be an event type or a list of them", rid)
                return None
            types = [self.event_type(str(e), (*path, "event"), rid) for e in events]
            chosen = tuple(t for t in types if t) or INBOUND_TEXT_EVENTS
            return replace(base, text=text, text_events=chosen)
        if "event" in item:
            self.check_keys(
                item, {"id", "label", "reason", "event", "where"}, path, "an event disqualifier"
            )
            match = self.match(item, path, rid)
            return replace(base, match=match) if match else None
        self.check_keys(item, DISQUALIFY_KEYS | set(OPERATORS), path, "a disqualifier")
        where = self.attribute_where(item, path, rid, {"id", "label", "reason", "field", "where"})
        return replace(base, where=where) if where else None
