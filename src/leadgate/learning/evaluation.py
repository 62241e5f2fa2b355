"""How well a scorer separates good from bad outcomes on held-out leads.

Every scorer is read the same way: ``auc`` ranks by score; ``accuracy`` calls a lead
good when its calibrated probability is at least 0.5; a handover (SQL) is a lead with an
intent action in the window, not disqualified, scoring at least the SQL threshold; MQL+
is any lead not disqualified scoring at least the MQL threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import roc_auc_score


@dataclass(frozen=True)
class Metrics:
    name: str
    auc: float
    accuracy: float
    sql_handovers: int
    sql_precision: float | None
    sql_recall: float
    mql_leads: int
    mql_precision: float | None
    mql_recall: float


def _share(selected: np.ndarray, good: np.ndarray) -> tuple[int, float | None, float]:
    n = int(selected.sum())
    hits = int((selected & good).sum())
    return n, (hits / n if n else None), hits / max(int(good.sum()), 1)


def measure(
    name: str,
    score: np.ndarray,
    probability: np.ndarray,
    good: np.ndarray,
    eligible: np.ndarray,
    qualified: np.ndarray,
    mql: float,
    sql: float,
) -> Metrics:
    auc = float(roc_auc_score(good, score)) if 0 < good.sum() < len(good) else float("nan")
    accuracy = float(((probability >= 0.5) == good).mean())
    sql_n, sql_p, sql_r = _share(eligible & (score >= sql), good)
    mql_n, mql_p, mql_r = _share(qualified & (score >= mql), good)
    return Metrics(name, auc, accuracy, sql_n, sql_p, sql_r, mql_n, mql_p, mql_r)


@dataclass(frozen=True)
class AtVolume:
    """Precision of two scorers handing over (about) the same number of leads."""

    base_handovers: int
    base_precision: float | None
    learned_handovers: int
    learned_precision: float | None

    @property
    def gain(self) -> float | None:
        if self.base_precision is None or self.learned_precision is None:
            return None
        return self.learned_precision - self.base_precision


def top_within(score: np.ndarray, eligible: np.ndarray, k: int) -> np.ndarray:
    """Eligible leads at or above the lowest threshold that selects at most ``k`` of them."""
    values = np.sort(np.unique(score[eligible]))
    for t in values:
        chosen = eligible & (score >= t)
        if int(chosen.sum()) <= k:
            return np.asarray(chosen)
    return np.zeros_like(eligible)


def at_volume(
    base_score: np.ndarray,
    base_sql: float,
    learned_score: np.ndarray,
    good: np.ndarray,
    eligible: np.ndarray,
) -> AtVolume:
    """The base model's handovers at its SQL threshold against the learned model's best
    handovers of at most as many leads."""
    base = eligible & (base_score >= base_sql)
    learned = top_within(learned_score, eligible, int(base.sum()))
    b_n, b_p, _ = _share(base, good)
    l_n, l_p, _ = _share(learned, good)
    return AtVolume(b_n, b_p, l_n, l_p)
