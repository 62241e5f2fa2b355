"""Model versions: draft, publish (who and why), rollback, the handover policy of a
publish, and a running server picking up a publish made from the command line."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from leadgate.adapters.model_source import default_model_text, read_model
from leadgate.services.handover import HANDOVER_POLICIES
from leadgate.services.ingest import ingest
from leadgate.services.models import (
    ModelError,
    listing,
    live_version,
    publish,
    rollback,
    save_draft,
)
from leadgate.services.rescore import rescore
from leadgate.services.team import load_demo_team
from leadgate.store import create_engine, transact, upgrade
from leadgate.store.handover_store import HandoverStore
from leadgate.store.repository import Repository
from test_ingest import identify, page, track
from test_serve import CLI, _free_port, _leadgate
from test_store import db_url  # noqa: F401  (fixture: SQLite, and PostgreSQL when configured)

NOW = datetime(2026, 3, 10, 10, 0, tzinfo=UTC)  # a Tuesday, in working hours
DEFAULT = read_model()


def variant(version: str, mql: int, sql: int, handover: str = "sql") -> str:
    """The built-in model's text with other thresholds, handover stage and version."""
    text = default_model_text()
    text = text.replace("thresholds: {mql: 40, sql: 40}", f"thresholds: {{mql: {mql}, sql: {sql}}}")
    text = text.replace("handover: sql", f"handover: {handover}")
    return text.replace('version: "1"', f'version: "{version}"')


@pytest.fixture
def db(db_url: str) -> Iterator[Engine]:  # noqa: F811
    upgrade(db_url)
    engine = create_engine(db_url)
    with engine.begin() as conn:
        load_demo_team(conn, NOW)
    yield engine
    engine.dispose()


def _ingest(db: Engine, messages: list[dict[str, Any]]) -> None:
    transact(db, lambda conn: ingest(Repository(conn), DEFAULT, messages, NOW))


def _state(db: Engine, lead_id: str) -> tuple[str, float]:
    with db.connect() as conn:
        state = Repository(conn).lead_state(lead_id)
    assert state is not None
    return state[0], state[1]


def _handed(db: Engine) -> list[str]:
    with db.connect() as conn:
        return sorted(h.lead_id for h in HandoverStore(conn).listing(limit=1000))


def _hot_and_warm(db: Engine) -> None:
    """Two nurturing leads with some points: ``hot`` asked for a quote yesterday,
    ``warm`` never asked for anything."""
    _ingest(
        db,
        [
            identify("h-id", "hot", email="hot@acme.example"),
            page("h-p", "/pricing", 2, "hot"),
            track("h-q", "Quote Requested", 1, "hot", message="a quote please"),
            identify("w-id", "warm", email="warm@acme.example"),
            page("w-p", "/pricing", 2, "warm"),
        ],
    )
    for lead_id in ("hot", "warm"):
        stage, score = _state(db, lead_id)
        assert stage == "nurturing" and 0 < score < 40, (lead_id, stage, score)


def test_draft_publish_and_rollback_are_recorded(db: Engine) -> None:
    with pytest.raises(ModelError, match="no saved model version"):
        publish(db, "2", "ann", "try", "none", NOW)
    assert listing(db).publications == []  # a refused publish writes nothing
    two = save_draft(db, variant("2", 30, 30), "two.yaml", NOW)
    assert (two.name, two.version, two.status) == ("webstudio-default", "2", "draft")
    assert save_draft(db, variant("2", 30, 30), "two.yaml", NOW) == two  # same text: same
    with pytest.raises(ModelError, match="new `version:`"):
        save_draft(db, variant("2", 35, 35), "other.yaml", NOW)
    with pytest.raises(ModelError, match="why"):
        publish(db, "2", "ann", " ", "none", NOW)
    with pytest.raises(ModelError, match="handover"):
        publish(db, "2", "ann", "lower", "some", NOW)

    done = publish(db, "2", "ann", "more leads to sales", "none", NOW)
    assert done.previous is not None and done.previous.version == "1"  # the built-in, first
    assert done.version.published_by == "ann" and done.version.why == "more leads to sales"
    with db.connect() as conn:
        live = live_version(conn)
    assert live is not None and live.version == "2"
    with pytest.raises(ModelError, match="already the live model"):
        publish(db, "webstudio-default@2", "ann", "again", "none", NOW)

    save_draft(db, variant("3", 45, 45), "three.yaml", NOW)
    publish(db, "3", "bob", "fewer", "all", NOW + timedelta(hours=1))
    back = rollback(db, "cat", "too few", "none", NOW + timedelta(hours=2))
    assert back.version.version == "2" and back.previous is not None
    assert back.previous.version == "3"
    back = rollback(db, "cat", "back to the start", "none", NOW + timedelta(hours=3))
    assert back.version.version == "1"
    with pytest.raises(ModelError, match="no earlier published version"):
        rollback(db, "cat", "more", "none", NOW + timedelta(hours=4))
    # a version published before can be published again (rolling forward)
    publish(db, "3", "dan", "after all", "none", NOW + timedelta(hours=5))

    found = listing(db)
    assert found.live == ("webstudio-default", "3")
    steps = [(p.action, p.version, p.actor, p.why, p.handover) for p in found.publications]
    assert steps == [
        ("publish", "1", "leadgate", "the model in use before any publish (default.yaml)", None),
        ("publish", "2", "ann", "more leads to sales", "none"),
        ("publish", "3", "bob", "fewer", "all"),
        ("rollback", "2", "cat", "too few", "none"),
        ("rollback", "1", "cat", "back to the start", "none"),
        ("publish", "3", "dan", "after all", "none"),
    ]
    assert {v.version: v.status for v in found.versions} == {
        "1": "published",
        "2": "published",
        "3": "published",
    }


@pytest.mark.parametrize("policy", ["all", "none"])
def test_a_lead_crossing_only_because_of_the_new_model(db: Engine, policy: str) -> None:
    _hot_and_warm(db)
    assert _handed(db) == []
    save_draft(db, variant("2", 1, 1), "low.yaml", NOW)
    done = publish(db, "2", "ann", "lower the bar", policy, NOW)
    assert done.rescored.moved["sql"] == 1  # hot: points and a quote; warm: mql
    assert _state(db, "hot")[0] == ("handed_over" if policy == "all" else "sql")
    assert _state(db, "warm")[0] == "mql"
    assert _handed(db) == (["hot"] if policy == "all" else [])
    # later passes under the same model hand no one over again
    rescore(db, read_model_text(variant("2", 1, 1)), NOW + timedelta(minutes=5))
    assert _handed(db) == (["hot"] if policy == "all" else [])


def test_a_held_back_lead_is_handed_over_at_its_next_intent_action(db: Engine) -> None:
    _hot_and_warm(db)
    save_draft(db, variant("2", 1, 1), "low.yaml", NOW)
    publish(db, "2", "ann", "lower the bar", "none", NOW)
    live = read_model_text(variant("2", 1, 1))
    later = NOW + timedelta(hours=1)

    def send(messages: list[dict[str, Any]], at: datetime) -> None:
        transact(db, lambda conn: ingest(Repository(conn), live, messages, at))

    send([page("h-p2", "/pricing", 0.01, "hot")], later)  # activity, but no new hand-raise
    assert _state(db, "hot")[0] == "sql" and _handed(db) == []
    quote = track("h-q2", "Quote Requested", 0.0, "hot", message="ready now")
    quote["timestamp"] = later.isoformat()
    send([quote], later + timedelta(minutes=1))
    assert _state(db, "hot")[0] == "handed_over" and _handed(db) == ["hot"]
    send([dict(quote, messageId="h-q3")], later + timedelta(minutes=2))
    assert _handed(db) == ["hot"]  # once per cycle


def test_recent_intent_hands_over_only_leads_with_intent_in_the_window(db: Engine) -> None:
    _hot_and_warm(db)
    # an MQL-handover model: warm (no intent) crosses too, but is held back
    save_draft(db, variant("2", 1, 1, handover="mql"), "mql.yaml", NOW)
    publish(db, "2", "ann", "hand over at MQL", "recent-intent", NOW)
    assert _state(db, "hot")[0] == "handed_over"
    assert _state(db, "warm")[0] == "mql"
    assert _handed(db) == ["hot"]


def test_recent_intent_holds_back_an_intent_older_than_the_window(db: Engine) -> None:
    _ingest(
        db,
        [
            identify("o-id", "old", email="old@acme.example"),
            track("o-q", "Quote Requested", 40, "old", message="a quote please"),
            page("o-p", "/pricing", 2, "old"),
        ],
    )
    save_draft(db, variant("2", 1, 1, handover="mql"), "mql.yaml", NOW)
    publish(db, "2", "ann", "hand over at MQL", "recent-intent", NOW)
    assert _state(db, "old")[0] == "mql" and _handed(db) == []


def test_policies_are_the_documented_ones() -> None:
    assert HANDOVER_POLICIES == ("all", "recent-intent", "none")


def read_model_text(text: str) -> Any:
    from leadgate.domain.model_file import load_model

    return load_model(text, "variant.yaml")


# -- a real server -------------------------------------------------------------------------


def _wait_for(check: Any, seconds: float = 10.0) -> Any:
    ends = time.monotonic() + seconds
    while True:
        value = check()
        if value or time.monotonic() > ends:
            return value
        time.sleep(0.1)


def test_a_running_server_picks_up_a_publish_and_a_rollback(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'lg.db'}"
    write_key = _leadgate("keys", "create", "--kind", "write", "--database-url", url)
    admin_key = _leadgate("keys", "create", "--kind", "admin", "--database-url", url)
    writer = write_key.strip().splitlines()[-1]
    admin = {"Authorization": f"Bearer {admin_key.strip().splitlines()[-1]}"}
    port = _free_port()
    proc = subprocess.Popen(
        [*CLI, "serve", "--port", str(port), "--database-url", url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"

    def models() -> dict[str, Any]:
        answer = httpx.get(f"{base}/api/models", headers=admin, timeout=10)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    try:
        assert _wait_for(lambda: _up(base), 30)
        first = models()
        assert first["serving"] == first["live"] == "webstudio-default@1"
        assert [p["by"] for p in first["publications"]] == ["leadgate serve"]
        assert httpx.get(f"{base}/api/models", timeout=10).status_code == 401

        draft = httpx.post(
            f"{base}/api/models/drafts", json={"text": variant("2", 30, 30)}, headers=admin
        )
        assert draft.status_code == 201, draft.text
        assert draft.json()["status"] == "draft" and not draft.json()["live"]
        bad = httpx.post(f"{base}/api/models/drafts", json={"text": "rules: 3"}, headers=admin)
        assert bad.status_code == 422 and bad.json()["problems"]
        tested = httpx.post(f"{base}/api/models/2/backtest", headers=admin, timeout=60)
        assert tested.status_code == 200, tested.text
        assert tested.json()["draft"]["model"] == "webstudio-default@2"
        assert tested.json()["current"]["model"] == "webstudio-default@1"

        args = ["model", "publish", "2", "--by", "ann", "--why", "lower", "--handover", "none"]
        printed = _leadgate(*args, "--database-url", url)
        assert "published webstudio-default@2" in printed
        assert _wait_for(lambda: models()["serving"] == "webstudio-default@2", 5)
        sent = httpx.post(
            f"{base}/v1/track",
            json={"userId": "new", "event": "Guide Downloaded", "messageId": "n1"},
            auth=(writer, ""),
        )
        assert sent.status_code == 200, sent.text
        lead = httpx.get(f"{base}/api/leads/new", headers=admin, timeout=10)
        assert "webstudio-default@2" in lead.text

        back = httpx.post(
            f"{base}/api/models/rollback",
            json={"why": "not yet", "by": "bob", "handover": "none"},
            headers=admin,
            timeout=60,
        )
        assert back.status_code == 200, back.text
        assert back.json()["live"] == "webstudio-default@1"
        assert _wait_for(lambda: models()["serving"] == "webstudio-default@1", 5)
        listed = _leadgate("model", "list", "--database-url", url)
        assert "rollback" in listed and "bob" in listed
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _up(base: str) -> bool:
    try:
        httpx.get(f"{base}/openapi.json", timeout=1)
    except httpx.TransportError:
        return False
    return True


def test_model_commands(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from leadgate.cli import app

    runner = CliRunner()
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    engine = create_engine(url)
    upgrade(url)
    _hot_and_warm(engine)
    engine.dispose()
    draft = tmp_path / "draft.yaml"
    draft.write_text(variant("2", 1, 1), encoding="utf-8")
    base = ["--database-url", url]

    def cli(*args: str) -> str:
        done = runner.invoke(app, [*args, *base])
        assert done.exit_code == 0, done.output
        return done.output

    assert "saved webstudio-default@2 (draft)" in cli("model", "draft", str(draft))
    assert "webstudio-default@2" in cli("model", "list")
    tested = cli("model", "backtest", "2", "--json", str(tmp_path / "bt.json"))
    assert "handovers per week" in tested and (tmp_path / "bt.json").is_file()
    refused = runner.invoke(
        app, ["model", "publish", "2", "--by", "ann", "--why", "x", "--handover", "some", *base]
    )
    assert refused.exit_code == 2 and "--handover" in refused.output
    published = cli("model", "publish", "2", "--by", "ann", "--why", "x", "--handover", "all")
    assert "published webstudio-default@2 (was webstudio-default@1)" in published
    assert "rescored 2 leads" in published  # as of now, months after their events
    listed = cli("model", "list")
    assert "(live)" in listed and "ann" in listed
    back = cli("model", "rollback", "--by", "bob", "--why", "too many")
    assert "rolled back to webstudio-default@1" in back
    again = runner.invoke(app, ["model", "rollback", "--by", "bob", "--why", "more", *base])
    assert again.exit_code == 2 and "no earlier published version" in again.output
