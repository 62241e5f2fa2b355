"""SQL for the points of each engagement rule, per lead, over ``<prefix>_ev``.

Each rule kind follows ``leadgate.domain.scoring``:

- event rules: matching events within the window; with ``once_per`` the first event
  of each value (a missing value is one value); then caps in time order. A total cap
  T on points p gives the i-th event ``clamp(T - (i-1)|p|, 0, |p|)``; a period cap
  does the same within each period, and the total cap then applies to the running
  sum of the period-capped sizes (``_CapState.take``);
- count rules: the first event that closes a run of ``at_least`` within ``within``;
- ratio rules: distinct numerator values that are also denominator values, over
  distinct denominator values; the award is at the latest counted numerator event;
- gap rules: events at least ``gap`` after the previous matching event (looking back
  past the window), awarded inside the window, then capped.

Points decay by the age of the event that earned them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

from leadgate.domain.model import Cap, CountRule, EventRule, GapRule, Match, RatioRule, Rule
from leadgate.fastscore.plan import BITS_PER_WORD, EventPlan, distinct_key, once_key, path_of
from leadgate.fastscore.sql import Tables, floor_div, micros, num, unnest_table

MAX_TOP_K = 256  # a total cap needing more awards than this is ranked with a window
MAX_BIT_VALUES = BITS_PER_WORD  # ratios over more distinct values group by (lead, value)


def _whole_steps(size: float, per: int, period_max: float, total: float) -> bool:
    """True when a period cap gives each of a period's first ``per`` events exactly
    ``size``, and the running sums of those sizes (under ``total``) are exact: whole
    numbers, far below 2**53; and at most ``MAX_TOP_K`` kept per period and in all."""
    whole = all(float(v).is_integer() and abs(v) < 2.0**40 for v in (size, period_max, total))
    few = per <= MAX_TOP_K and math.ceil(total / size) <= MAX_TOP_K
    return whole and few and per * size <= period_max


@dataclass
class _Key:
    """How a rule groups its events by a property (once_per or ratio distinct)."""

    expr: str  # the group key of a row of <prefix>_ev, after ``join``
    join: str  # a JOIN clause, or ""
    valid: str  # rows whose key counts (ratio: not missing or empty)


class RuleSql:
    def __init__(
        self,
        plan: EventPlan,
        tables: Tables,
        ev: str,
        key_ids: list[dict[str, int]],
        as_of: int,
        shifts: str | None = None,
    ) -> None:
        self.plan = plan
        self.key_ids = key_ids
        self.tables = tables
        self.ev = ev
        self.as_of = as_of
        self.shifts = shifts

    def bit(self, slot: int) -> str:
        return f"(m{slot // BITS_PER_WORD} & {1 << (slot % BITS_PER_WORD)}) <> 0"

    def any_bit(self, slots: list[int]) -> str:
        """SQL true when any of ``slots`` is set: one test per mask word."""
        words: dict[int, int] = {}
        for slot in slots:
            words[slot // BITS_PER_WORD] = words.get(slot // BITS_PER_WORD, 0) | 1 << (
                slot % BITS_PER_WORD
            )
        return " OR ".join(f"(m{w} & {b}) <> 0" for w, b in sorted(words.items())) or "false"

    def matches(self, match: Match) -> str:
        return self.bit(self.plan.slot_of(match))

    def decay(self, half_life: timedelta | None, us: str = "us") -> str:
        if half_life is None:
            return num(1.0) if us == "us" else f"CASE WHEN {us} IS NOT NULL THEN {num(1.0)} END"
        age = f"(CAST({self.as_of} - {us} AS DOUBLE) / 1e6)"
        return f"pow({num(0.5)}, {age} / {num(half_life.total_seconds())})"

    def window(self, window: timedelta | None) -> str:
        return "" if window is None else f" AND us >= {self.as_of - micros(window)}"

    def matched(self, match: Match, window: timedelta | None) -> str:
        where = f"{self.matches(match)}{self.window(window)}"
        return f"SELECT lead_key, ord, us FROM {self.ev} WHERE {where}"

    @staticmethod
    def per_lead(expr: str, rows: str) -> str:
        """A query of (lead_key, pts): ``expr`` aggregated over ``rows`` per lead."""
        return f"SELECT lead_key, {expr} AS pts FROM ({rows}) GROUP BY lead_key"

    def key(self, dotted: str, distinct: bool, name: str) -> _Key:
        """Group keys of a property, exactly as the reference: ``repr`` or ``str`` of it."""
        j = self.plan.key_paths.index(path_of(dotted))
        col = f"k{j}"
        canon = {
            i: (distinct_key(t) if distinct else once_key(t)) for t, i in self.key_ids[j].items()
        }
        counted = {i: c for i, c in canon.items() if c is not None}
        if len(set(counted.values())) == len(counted):
            dropped = sorted(str(i) for i, c in canon.items() if c is None)
            return _Key(col, "", f"{col} NOT IN ({', '.join(dropped)})" if dropped else "true")
        groups = {c: n for n, c in enumerate(sorted(set(counted.values())))}
        table = self.tables.create(
            f"kmap_{name}",
            unnest_table([("i", "INTEGER"), ("g", "INTEGER")]),
            [list(counted), [groups[c] for c in counted.values()]],
        )
        alias = f"km_{name}"
        return _Key(f"{alias}.g", f" JOIN {table} {alias} ON {col} = {alias}.i", "true")

    # -- kinds ------------------------------------------------------------------------
    def capped(self, rows: str, points: float, cap: Cap | None, rule: Rule) -> str:
        """Per-lead points of ``rows`` (lead_key, ord, us), awarded in ord order under a cap."""
        size, sign = abs(points), num(math.copysign(1.0, points))
        decay = self.decay(rule.half_life)
        if size == 0.0 or cap is None or (cap.total is None and cap.period is None):
            return self.per_lead(f"sum({num(points)} * {decay})", rows)
        zero, step = num(0.0), num(size)
        if cap.period is not None and cap.period_max is not None:
            per = math.ceil(cap.period_max / size)
            period = floor_div("us", micros(cap.period))
            if self.shifts is not None:  # periods stay aligned to the unshifted times
                rows = f"SELECT r.*, s.shift FROM ({rows}) r JOIN {self.shifts} s USING (lead_key)"
                period = floor_div("(us - shift)", micros(cap.period))
            if cap.total is not None and _whole_steps(size, per, cap.period_max, cap.total):
                # every kept event of a period gets a whole step: the total cap is then
                # a top-k over them, as for a total cap alone (no running sum by ord)
                firsts = f"unnest(min(us, {per})) AS us"
                rows = f"SELECT lead_key, {firsts} FROM ({rows}) GROUP BY lead_key, {period}"
                return self.capped(rows, points, Cap(total=cap.total), rule)
            firsts = f"min_by(struct_pack(ord, us), ord, {per})"
            numbered = (
                f"list_transform({firsts}, "
                "lambda e, j: struct_pack(ord := e.ord, us := e.us, j := j))"
            )
            q = f"greatest({zero}, least({step}, {num(cap.period_max)} - (e.j - 1) * {step}))"
            rows = f"""
                SELECT lead_key, e.ord AS ord, e.us AS us, {q} AS q FROM (
                    SELECT lead_key, unnest({numbered}) AS e FROM ({rows})
                    GROUP BY lead_key, {period})"""
            if cap.total is None:
                return self.per_lead(f"sum({sign} * q * {decay})", rows)
            used = (
                "coalesce(sum(q) OVER (PARTITION BY lead_key ORDER BY ord "
                f"ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), {zero})"
            )
            room = f"greatest({zero}, least(q, {num(cap.total)} - {used}))"
            sized = f"SELECT lead_key, us, {room} AS s FROM ({rows})"
            return self.per_lead(f"sum({sign} * s * {decay})", sized)
        assert cap.total is not None
        k = math.ceil(cap.total / size)
        if k <= MAX_TOP_K:
            lam = self.top_k_award(points, cap.total, rule)
            return self.per_lead(f"list_sum(list_transform(min(us, {k}), {lam}))", rows)
        award = f"greatest({zero}, least({step}, {num(cap.total)} - (i - 1) * {step}))"
        rank = "row_number() OVER (PARTITION BY lead_key ORDER BY ord)"
        ranked = f"SELECT lead_key, us, {rank} AS i FROM ({rows})"
        return self.per_lead(f"sum({sign} * {award} * {decay})", ranked)

    def event_rule(self, n: int, rule: EventRule) -> str:
        rows = self.matched(rule.match, rule.window)
        if rule.once_per is not None:
            key = self.key(rule.once_per, False, f"r{n}")
            rows = f"""
                SELECT lead_key, min(ord) AS ord, arg_min(us, ord) AS us
                FROM {self.ev}{key.join} WHERE {self.matches(rule.match)}{self.window(rule.window)}
                GROUP BY lead_key, {key.expr}"""
        return self.capped(rows, rule.points, rule.cap, rule)

    def lagged(self, rows: str, back: int) -> str:
        """``rows`` with ``prev``: the time of the event ``back`` matches earlier, same lead.

        One window over the global (lead, time, id) order ``ord``: cheaper than
        partitioning by lead, and the same, since each lead's events are contiguous.
        """
        window = "OVER (ORDER BY ord)"
        return (
            f"SELECT lead_key, ord, us, CASE WHEN lag(lead_key, {back}) {window} = lead_key "
            f"THEN lag(us, {back}) {window} END AS prev FROM ({rows})"
        )

    def count_rule(self, rule: CountRule) -> str:
        rows = self.matched(rule.match, rule.window)
        n, within = rule.at_least, micros(rule.within or timedelta(0))
        lagged = self.lagged(rows, n - 1)
        hits = (
            f"SELECT lead_key, arg_min(us, ord) AS us FROM ({lagged}) "
            f"WHERE us - prev <= {within} GROUP BY lead_key"
        )
        award = f"{num(rule.points)} * {self.decay(rule.half_life)}"
        return f"SELECT lead_key, {award} AS pts FROM ({hits})"

    def gap_rule(self, rule: GapRule) -> str:
        rows = self.matched(rule.match, None)
        returns = (
            f"SELECT lead_key, ord, us FROM ({self.lagged(rows, 1)}) "
            f"WHERE us - prev >= {micros(rule.gap)}{self.window(rule.window)}"
        )
        return self.capped(returns, rule.points, rule.cap, rule)

    def ratio_rule(self, n: int, rule: RatioRule, agg: str | None = None) -> str:
        """With ``agg``: a table holding ``ratio_columns``' columns per lead, when it has any."""
        parts = self.ratio_parts(rule)
        if parts is None:
            return self.ratio_groups(n, rule)
        bits, den, num_ = parts
        if agg is not None and self.ratio_columns(n, rule):
            per_lead = f"SELECT lead_key, rs{n} AS sent, ro{n} AS opened FROM {agg}"
        else:
            per_lead = f"""
                SELECT lead_key, bit_or({bits[0]}) FILTER (WHERE {den}) AS sent,
                       bit_or({bits[1]}) FILTER (WHERE {num_}) AS opened
                FROM {self.ev} WHERE ({den}) OR ({num_}) GROUP BY lead_key"""
        return f"""
            WITH per_lead AS ({per_lead}
            ), counted AS (
                SELECT lead_key, sent FROM per_lead
                WHERE bit_count(sent) >= {rule.min_denominator}
                  AND CAST(bit_count(opened & sent) AS DOUBLE) / bit_count(sent)
                      >= {num(rule.at_least)}
            ), last AS (
                SELECT e.lead_key, arg_max(e.us, e.ord) AS us
                FROM {self.ev} e JOIN counted c ON e.lead_key = c.lead_key
                WHERE {num_} AND ({bits[1]} & c.sent) <> 0
                GROUP BY e.lead_key
            )
            SELECT lead_key, {num(rule.points)} * {self.decay(rule.half_life)} AS pts FROM last"""

    def ratio_columns(self, n: int, rule: RatioRule) -> list[str]:
        """For a ratio over few distinct values, the per-lead aggregates (``rs<n>``: the
        bit set of denominator values, ``ro<n>``: of numerator values) that a GROUP BY
        lead over all of ``<prefix>_ev`` can compute for ``ratio_rule``; else []."""
        parts = self.ratio_parts(rule)
        if parts is None:
            return []
        bits, den, num_ = parts
        return [
            f"bit_or({bits[0]}) FILTER (WHERE {den}) AS rs{n}",
            f"bit_or({bits[1]}) FILTER (WHERE {num_}) AS ro{n}",
        ]

    def ratio_parts(self, rule: RatioRule) -> tuple[list[str], str, str] | None:
        """A ratio over few distinct values: per side, SQL for the bit of an event's value
        (0: not counted), and the denominator's and numerator's row conditions; else None
        (many values: one row per lead and value, ``ratio_groups``)."""
        sides = (rule.denominator, rule.numerator)
        paths = [self.plan.key_paths.index(path_of(side.distinct)) for side in sides]
        canon = [{i: distinct_key(t) for t, i in self.key_ids[j].items()} for j in paths]
        values = sorted({c for side in canon for c in side.values() if c is not None})
        if len(values) > MAX_BIT_VALUES:
            return None
        bit_of = {v: 1 << b for b, v in enumerate(values)}
        bits = []
        for j, side in zip(paths, canon, strict=True):
            table = [0 if c is None else bit_of[c] for c in (side[i] for i in range(len(side)))]
            bits.append(f"[{', '.join(map(str, table))}][k{j} + 1]" if table else "0")
        den, num_ = (
            f"{self.matches(side.match)}{self.window(rule.window)}"
            for side in (rule.denominator, rule.numerator)
        )
        return bits, den, num_

    def ratio_groups(self, n: int, rule: RatioRule) -> str:
        """A ratio over many distinct values: one row per lead and value."""

        def side(name: str, dotted: str, match: Match, numerator: bool) -> str:
            key = self.key(dotted, True, f"r{n}{name}")
            where = f"{self.matches(match)}{self.window(rule.window)} AND {key.valid}"
            return (
                f"SELECT lead_key, {key.expr} AS key, {str(numerator).lower()} AS num, ord, us "
                f"FROM {self.ev}{key.join} WHERE {where}"
            )

        den = side("d", rule.denominator.distinct, rule.denominator.match, False)
        nums = side("n", rule.numerator.distinct, rule.numerator.match, True)
        return f"""
            WITH per_key AS (
                SELECT lead_key, bool_or(NOT num) AS sent, max(ord) FILTER (WHERE num) AS ord,
                       arg_max(us, ord) FILTER (WHERE num) AS us
                FROM ({den} UNION ALL {nums}) GROUP BY lead_key, key
            ), per_lead AS (
                SELECT lead_key, count(*) AS sent, count(ord) AS opened, arg_max(us, ord) AS us
                FROM per_key WHERE sent GROUP BY lead_key
            )
            SELECT lead_key, {num(rule.points)} * {self.decay(rule.half_life)} AS pts
            FROM per_lead
            WHERE sent >= {rule.min_denominator}
              AND CAST(opened AS DOUBLE) / sent >= {num(rule.at_least)}"""

    def grouped(self, rule: Rule) -> str | None:
        """One GROUP BY lead over the rule's events, for rules that need no more; else None."""
        parts = self.grouped_parts(rule, "")
        if parts is None:
            return None
        expr, cond = parts
        return self.per_lead(expr, f"SELECT lead_key, ord, us FROM {self.ev} WHERE {cond}")

    def grouped_parts(self, rule: Rule, where: str | None = None) -> tuple[str, str] | None:
        """For rules that need only one GROUP BY lead over their events: the aggregate
        expression and the condition on the rows of ``<prefix>_ev`` it reads; else None.

        With ``where`` None every aggregate carries ``FILTER (WHERE <condition>)``, so the
        expression can share a GROUP BY over all events with other rules (a lead without
        matching events gets NULL); with ``""`` the rows must be filtered by the caller.
        Uncapped event rules sum; total caps take the first k events in order (the
        ones that can give points); count rules without a span take the n-th event.
        Within a lead ``us`` never decreases with ``ord`` (the (lead, time, id) order), so
        the times of the first k events in order are the k smallest: ``min(us, k)``.
        """
        if not isinstance(rule, EventRule | CountRule):
            return None
        cond = f"{self.matches(rule.match)}{self.window(rule.window)}"
        f = f" FILTER (WHERE {cond})" if where is None else where
        if isinstance(rule, CountRule):
            if rule.within is not None and rule.at_least > 1:
                return None
            n = rule.at_least
            award = f"{num(rule.points)} * {self.decay(rule.half_life, f'(min(us, {n}){f})[{n}]')}"
            return f"CASE WHEN count(*){f} >= {n} THEN {award} END", cond
        cap, size = rule.cap, abs(rule.points)
        if rule.once_per is not None:
            return None
        if cap is None or size == 0.0 or (cap.total, cap.period) == (None, None):
            return f"sum({num(rule.points)} * {self.decay(rule.half_life)}){f}", cond
        if cap.period is not None or cap.total is None:
            return None
        k = math.ceil(cap.total / size)
        if k > MAX_TOP_K:
            return None
        if k == 1:  # only the first event gives points
            award = num(math.copysign(min(size, cap.total), rule.points))
            return f"{award} * {self.decay(rule.half_life, f'min(us){f}')}", cond
        award = self.top_k_award(rule.points, cap.total, rule)
        return f"list_sum(list_transform(min(us, {k}){f}, {award}))", cond

    def top_k_award(self, points: float, total: float, rule: Rule) -> str:
        """A lambda giving the i-th event's points under a total cap (``u``: its time)."""
        size, zero = num(abs(points)), num(0.0)
        award = f"greatest({zero}, least({size}, {num(total)} - (i - 1) * {size}))"
        sign = num(math.copysign(1.0, points))
        return f"lambda u, i: {sign} * {award} * {self.decay(rule.half_life, 'u')}"

    def fragment(self, n: int, rule: Rule, agg: str | None = None) -> str:
        """A query of (lead_key, pts): the points of one rule per lead (``agg``: see
        ``ratio_rule``)."""
        grouped = self.grouped(rule)
        if grouped is not None:
            return grouped
        if isinstance(rule, EventRule):
            return self.event_rule(n, rule)
        if isinstance(rule, CountRule):
            return self.count_rule(rule)
        if isinstance(rule, GapRule):
            return self.gap_rule(rule)
        return self.ratio_rule(n, rule, agg)
