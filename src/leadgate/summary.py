"""Readable summaries of a scoring model, for `leadgate model check`."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text

from leadgate.domain.conditions import format_duration
from leadgate.domain.model import (
    CountRule,
    EventRule,
    GapRule,
    RatioRule,
    Rule,
    ScoringModel,
)
from leadgate.services.scoring import StageTable


def _limits(rule: Rule) -> str:
    parts: list[str] = []
    cap = rule.cap if isinstance(rule, EventRule | GapRule) else None
    if cap is not None and cap.total is not None:
        parts.append(f"cap {cap.total:g}")
    if cap is not None and cap.period is not None and cap.period_max is not None:
        parts.append(f"{cap.period_max:g}/{format_duration(cap.period)}")
    if isinstance(rule, EventRule) and rule.once_per:
        parts.append(f"once per {rule.once_per}")
    if rule.window is not None:
        parts.append(f"last {format_duration(rule.window)}")
    return ", ".join(parts)


def _when(rule: Rule) -> str:
    if isinstance(rule, CountRule):
        span = f" within {format_duration(rule.within)}" if rule.within else ""
        return f"{rule.at_least}+ x {rule.match.describe()}{span}"
    if isinstance(rule, RatioRule):
        num, den = rule.numerator, rule.denominator
        return (
            f"{num.match.event} / {den.match.event} by distinct {den.distinct} "
            f">= {rule.at_least:g} (min {rule.min_denominator})"
        )
    if isinstance(rule, GapRule):
        return f"{rule.match.describe()} after {format_duration(rule.gap)} away"
    return rule.match.describe()


def stage_table(table: StageTable) -> Table:
    """Leads per stage, with the share that converted when outcomes are known."""
    grid = Table("stage", "leads", "share", title="Leads per stage")
    total = sum(table.counts.values()) or 1
    if table.has_outcomes:
        grid.add_column("converted")
    for stage, n, rate in table.rows():
        row = [stage, f"{n:,}", f"{n / total:.1%}"]
        if table.has_outcomes:
            row.append("-" if rate is None else f"{rate:.1%}")
        grid.add_row(*row)
    if table.has_outcomes:
        everyone = table.conversion(table.counts)
        ready = table.conversion(("mql", "sql"))
        grid.caption = (
            f"converted overall {everyone:.1%}; MQL+SQL {ready:.1%}"
            if everyone is not None and ready is not None
            else None
        )
    return grid


def model_summary(model: ScoringModel) -> Group:
    decay = format_duration(model.half_life) if model.half_life else "none"
    head = Text.assemble(
        (f"{model.name}", "bold"),
        f" version {model.version}  ({model.source})\n",
        f"MQL at {model.thresholds.mql:g}, SQL at {model.thresholds.sql:g} with an intent "
        f"action in the last {format_duration(model.intent_window)}; "
        f"hand over at {model.handover.upper()}; engagement half-life {decay}",
    )
    if (cal := model.calibration) is not None:
        scale = cal.points_to_double_odds
        doubling = f"; {scale:g} points double the odds" if scale else ""
        head.append(
            f"\ncalibrated: probability of a good outcome = 1 / (1 + exp(-({cal.slope:.4g} "
            f"* score + {cal.intercept:.4g}))){doubling}"
        )
    rules = Table("rule", "kind", "points", "when", "limits", "decay", title="Engagement rules")
    for rule in model.rules:
        kind = type(rule).__name__.removesuffix("Rule").lower()
        half = format_duration(rule.half_life) if rule.half_life else "none"
        group = f" [{rule.group}]" if rule.group else ""
        rules.add_row(rule.id + group, kind, f"{rule.points:+g}", _when(rule), _limits(rule), half)
    fit = Table("rule", "points", "when", title="Fit rules")
    for f in model.fit:
        fit.add_row(f.id, f"{f.points:+g}", " and ".join(c.describe() for c in f.where))
    intent = Table("intent action", title="Intent actions")
    for m in model.intent_actions:
        intent.add_row(m.describe())
    dq = Table("disqualifier", "reason", "when", title="Disqualifiers")
    for d in model.disqualifiers:
        if d.where:
            when = " and ".join(c.describe() for c in d.where)
        elif d.match is not None:
            when = d.match.describe()
        elif d.honeypot is not None:
            when = f"form field {d.honeypot!r} filled"
        else:
            events = ", ".join(d.text_events) or "any event"
            when = f"text in {events} matches {d.text.value if d.text else ''!r}"
        dq.add_row(d.id, d.reason, when)
    return Group(head, rules, fit, intent, dq)
