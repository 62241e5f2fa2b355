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
from anyio.from_thread import start_blocking_portal
from sqlalchemy import Engine

from leadgate.adapters.model_source import default_model_text, read_model
from leadgate.domain.yamldoc import SpecError
from leadgate.services.handover import HANDOVER_POLICIES
from leadgate.services.ingest import ingest
from leadgate.services.models import (
    ModelError,
    label,
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
from leadgate.web.app import create_app
from leadgate.web.settings import Settings
from test_ingest import identify, page, track
from test_serve import CLI, _free_port, _leadgate
from test_store import db_url  # noqa: F401  (fixture: SQLite, and PostgreSQL when configured)
from test_web import Client

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
    saved = save_draft(db, variant("2", 30, 30), "two.yaml", NOW)
    two = saved.version
    assert (two.name, two.version, two.status, saved.new) == (
        "webstudio-default",
        "2",
        "draft",
        True,
    )
    again = save_draft(db, variant("2", 30, 30), "two.yaml", NOW)
    assert again.version == two and not again.new  # same text: the same draft
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
    again = cli("model", "draft", str(draft))
    assert "already saved (the same text) webstudio-default@2 (draft)" in again
    unversioned = tmp_path / "unversioned.yaml"
    unversioned.write_text(variant("3", 1, 1).replace('version: "3"\n', ""), encoding="utf-8")
    refused = runner.invoke(app, ["model", "draft", str(unversioned), *base])
    assert refused.exit_code == 2 and "a draft needs `version:`" in refused.output
    assert "1 problem(s)" in refused.output
    missing = runner.invoke(app, ["model", "publish", "2", "--by", "ann", "--why", "x", *base])
    assert missing.exit_code == 2 and "--handover" in missing.output
    assert "webstudio-default@2" in cli("model", "list")
    tested = cli("model", "backtest", "2", "--json", str(tmp_path / "bt.json"))
    assert "handovers per week" in tested and (tmp_path / "bt.json").is_file()
    refused = runner.invoke(
        app, ["model", "publish", "2", "--by", "ann", "--why", "x", "--handover", "some", *base]
    )
    assert refused.exit_code == 2 and "one of all, recent-intent, none" in refused.output
    published = cli("model", "publish", "2", "--by", "ann", "--why", "x", "--handover", "all")
    assert "published webstudio-default@2 (was webstudio-default@1)" in published
    assert "rescored 2 leads" in published  # as of now, months after their events
    listed = cli("model", "list")
    assert "(live)" in listed and "ann" in listed
    back = cli("model", "rollback", "--by", "bob", "--why", "too many")
    assert "rolled back to webstudio-default@1" in back
    again = runner.invoke(app, ["model", "rollback", "--by", "bob", "--why", "more", *base])
    assert again.exit_code == 2 and "no earlier published version" in again.output


# -- the API in process -------------------------------------------------------------------


class Models:
    """The app in process with an admin key and a write key."""

    def __init__(self, client: Client, engine: Engine, admin: str, write: str) -> None:
        self.client = client
        self.engine = engine
        self.admin = {"Authorization": f"Bearer {admin}"}
        self.write = {"Authorization": f"Bearer {write}"}
        self.routes: list[tuple[str, str]] = []  # (method, path) from the OpenAPI document

    def post(self, url: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        headers = self.admin if headers is None else headers
        if body is None:
            return self.client.post(url, headers=headers)
        if isinstance(body, bytes):
            return self.client.post(url, content=body, headers=headers)
        return self.client.post(url, json=body, headers=headers, timeout=60)


@pytest.fixture
def models(db_url: str) -> Iterator[Models]:  # noqa: F811
    app = create_app(Settings(database_url=db_url, run_worker=False, rescore_every_seconds=0))
    engine = app.state.engine
    with engine.begin() as conn:
        _, write = Repository(conn).create_api_key("write", NOW)
        _, admin = Repository(conn).create_api_key("admin", NOW)
    transport = httpx.ASGITransport(app=app)
    with start_blocking_portal() as portal:
        client = httpx.AsyncClient(transport=transport, base_url="http://leadgate.test")
        try:
            found = Models(Client(portal, client), engine, admin, write)
            paths = app.openapi()["paths"].items()
            found.routes = sorted(
                (method.upper(), path)
                for path, operations in paths
                if path.startswith("/api/models")
                for method in operations
            )
            yield found
        finally:
            portal.call(client.aclose)
            engine.dispose()


def _call(models: Models, method: str, path: str, headers: dict[str, str], body: Any) -> Any:
    url = path.replace("{ref}", "x" * 400)  # longer than a ref may be: checked after the key
    if method == "GET":
        return models.client.get(url, headers=headers)
    return models.post(url, body, headers)


def test_every_model_route_checks_the_key_before_the_path_and_the_body(models: Models) -> None:
    calls = models.routes
    assert calls == [
        ("GET", "/api/models"),
        ("POST", "/api/models/drafts"),
        ("POST", "/api/models/rollback"),
        ("POST", "/api/models/{ref}/backtest"),
        ("POST", "/api/models/{ref}/publish"),
    ]
    wrong = {"Authorization": "Bearer lg_wrong"}
    for method, path in calls:
        for body in (None, b"{not json", {"unknown": 1}):
            for headers, status, says in [
                ({}, 401, "missing API key"),
                (wrong, 401, "unknown or revoked API key"),
                (models.write, 403, "needs an admin key"),
            ]:
                answer = _call(models, method, path, headers, body)
                assert answer.status_code == status, (method, path, body, answer.text)
                assert says in answer.json()["error"]
        # with the admin key, the body and the path are checked
        answer = _call(models, method, path, models.admin, None)
        expected = 200 if method == "GET" else 422
        assert answer.status_code == expected, (path, answer.text)
    found = listing(models.engine)  # the refused calls wrote nothing
    assert [label(v) for v in found.versions] == ["webstudio-default@1"]
    assert [p.actor for p in found.publications] == ["leadgate serve"]


def test_the_admin_key_then_each_missing_field_is_named(models: Models) -> None:
    def error(url: str, body: Any) -> tuple[int, str, list[str]]:
        answer = models.post(url, body)
        doc = answer.json()
        return answer.status_code, doc["error"], [p["parameter"] for p in doc.get("problems", [])]

    policies = "(one of: all, recent-intent, none)"
    assert error("/api/models/1/publish", None) == (
        422,
        "why: Field required",
        ["why", "handover"],
    )
    assert error("/api/models/1/publish", {"why": "lower"}) == (
        422,
        f"handover: Field required {policies}",
        ["handover"],
    )
    code, message, _ = error("/api/models/1/publish", {"why": "lower", "handover": "some"})
    assert code == 422 and message == "handover: one of all, recent-intent, none, not 'some'"
    code, message, _ = error("/api/models/1/publish", {"why": "x", "handover": 3})
    assert code == 422 and message.startswith("handover: ") and message.endswith(policies)
    assert error("/api/models/drafts", None) == (422, "text: Field required", ["text"])
    assert error("/api/models/rollback", None) == (422, "why: Field required", ["why"])
    assert error("/api/models/rollback", {"why": "x", "handover": "no"})[0] == 422
    assert error("/api/models/drafts", b"{not json")[0] == 400
    assert models.post("/api/models/9/backtest").status_code == 404
    assert error("/api/models/9/publish", {"why": "x", "handover": "none"}) == (
        404,
        "no saved model version '9' (see: leadgate model list)",
        [],
    )
    # the documented schema says handover is required, with its values
    schema = models.client.get("/openapi.json").json()
    body = schema["paths"]["/api/models/{ref}/publish"]["post"]["requestBody"]
    publish_body = body["content"]["application/json"]["schema"]
    assert sorted(publish_body["required"]) == ["handover", "why"]
    assert publish_body["properties"]["handover"]["enum"] == ["all", "recent-intent", "none"]


def test_a_draft_needs_a_name_and_a_version_and_is_saved_once(models: Models) -> None:
    text = variant("2", 30, 30)
    no_name = text.replace("name: webstudio-default\n", "")
    no_version = text.replace('version: "2"\n', "")
    neither = no_name.replace('version: "2"\n', "")
    assert no_name != text and no_version != text
    for model, missing in [
        (no_name, ["name"]),
        (no_version, ["version"]),
        (neither, ["name", "version"]),
    ]:
        answer = models.post("/api/models/drafts", {"text": model})
        assert answer.status_code == 422, answer.text
        problems = answer.json()["problems"]
        assert len(problems) == len(missing)
        for problem, key in zip(problems, missing, strict=True):
            assert problem.startswith(f"draft:1: a draft needs `{key}:`"), problem
    # a model with other problems too reports them all
    broken = models.post("/api/models/drafts", {"text": no_version.replace("mql: 30", "mql: x")})
    assert broken.status_code == 422
    assert [p.split(": ", 1)[1][:20] for p in broken.json()["problems"]] == [
        "the MQL threshold mu",
        "a draft needs `versi",
    ]
    huge = models.post("/api/models/drafts", {"text": text.replace("mql: 30", "mql: 1e308")})
    assert huge.status_code == 422
    assert huge.json()["problems"] == [
        "draft:11: the MQL threshold must be a number from -1e9 to 1e9, got 1e308"
    ]
    assert listing(models.engine).versions[0].version == "1"  # nothing saved
    assert len(listing(models.engine).versions) == 1

    first = models.post("/api/models/drafts", {"text": text})
    assert first.status_code == 201, first.text
    again = models.post("/api/models/drafts", {"text": text})
    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    assert (first.json()["name"], first.json()["version"]) == ("webstudio-default", "2")
    changed = models.post("/api/models/drafts", {"text": variant("2", 35, 35)})
    assert changed.status_code == 409 and "new `version:`" in changed.json()["error"]
    assert [v.version for v in listing(models.engine).versions] == ["1", "2"]

    published = models.post(
        "/api/models/2/publish", {"why": "lower", "handover": "none", "by": "ann"}
    )
    assert published.status_code == 200, published.text
    assert published.json()["live"] == "webstudio-default@2"
    back = models.post("/api/models/rollback", {"why": "not yet"})
    assert back.status_code == 200, back.text
    assert back.json()["live"] == "webstudio-default@1"
    assert listing(models.engine).publications[-1].handover == "recent-intent"


def test_a_scoring_file_without_name_or_version_still_loads() -> None:
    text = variant("2", 30, 30).replace("name: webstudio-default\n", "")
    model = read_model_text(text.replace('version: "2"\n', ""))
    assert model.name == "unnamed" and len(model.version) == 12


def test_save_draft_names_the_missing_keys(db: Engine) -> None:
    text = variant("2", 30, 30).replace('version: "2"\n', "")
    with pytest.raises(SpecError) as info:
        save_draft(db, text, "v.yaml", NOW)
    assert info.value.problems == [
        'v.yaml:1: a draft needs `version:` (this version of it, e.g. `version: "2"`), '
        "and the model has none"
    ]
    assert listing(db).versions == []
