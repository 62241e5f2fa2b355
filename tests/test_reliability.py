"""A real ``leadgate serve`` under failure and contention, on SQLite and PostgreSQL.

- A server SIGKILLed while several clients stream batches: after a restart on the
  same database, every event whose request got a 2xx is stored, none twice, a
  batch that got no answer is stored whole or not at all, and the clients'
  retries of those batches store each event exactly once.
- Batches for one lead sent at once by several clients end in the same stored
  score, ledger sum and stage as the same events sent one batch at a time, and
  each lead's stage history reads back as one chain (new -> ... -> sql).

The store is read directly (``leadgate.store``), not through the API.
"""

from __future__ import annotations

import itertools
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from leadgate.store import create_engine, upgrade
from leadgate.store import tables as t
from leadgate.store.repository import Repository
from test_clients import LiveServer, create_key
from test_store import db_url  # noqa: F401  (fixture: SQLite, and PostgreSQL when configured)


def stored_message_ids(url: str) -> dict[str, int]:
    """How many times each message id is stored (the table has a unique constraint,
    but count anyway)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(t.events.c.message_id, func.count()).group_by(t.events.c.message_id)
            ).all()
            total = Repository(conn).count_events()
    finally:
        engine.dispose()
    counts = {str(r[0]): int(r[1]) for r in rows}
    assert sum(counts.values()) == total
    return counts


def post_batch(client: httpx.Client, messages: list[dict[str, Any]]) -> httpx.Response:
    return client.post("/v1/batch", json={"batch": messages}, timeout=30)


T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
PATHS = ("/services/seo", "/pricing", "/case-studies/acme", "/blog/post", "/services/branding")


def page(message_id: str, user: str, n: int) -> dict[str, Any]:
    return {
        "type": "page",
        "userId": user,
        "messageId": message_id,
        "timestamp": (T0 + timedelta(minutes=n)).isoformat(),
        "properties": {"path": PATHS[n % len(PATHS)]},
    }


# -- (a) SIGKILL in the middle of a stream of batches ------------------------------

CLIENTS = 4
BATCH = 25


def test_sigkill_mid_stream_loses_no_acknowledged_event(db_url: str, tmp_path: Path) -> None:  # noqa: F811
    write_key = create_key("write", db_url)
    server = LiveServer(db_url, log=tmp_path / "serve.log").start()
    acked: list[list[str]] = []  # batches answered 2xx
    unanswered: list[list[dict[str, Any]]] = []  # batches with no answer (the kill)
    refused: list[str] = []  # any other answer: a failure
    lock = threading.Lock()
    stop = threading.Event()

    def stream(client_no: int) -> None:
        with httpx.Client(base_url=server.base, auth=(write_key, "")) as client:
            for batch_no in range(10_000):  # bounded; the kill ends it much sooner
                if stop.is_set():
                    return
                messages = [
                    page(f"c{client_no}-b{batch_no}-m{i}", f"lead-{client_no}-{batch_no % 5}", i)
                    for i in range(BATCH)
                ]
                try:
                    answer = post_batch(client, messages)
                except httpx.TransportError:
                    with lock:
                        unanswered.append(messages)
                    return
                with lock:
                    if answer.is_success and answer.json()["stored"] == BATCH:
                        acked.append([m["messageId"] for m in messages])
                    else:
                        refused.append(f"{answer.status_code} {answer.text[:300]}")

    threads = [threading.Thread(target=stream, args=(n,)) for n in range(CLIENTS)]
    try:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 60
        while len(acked) < 3 * CLIENTS and time.monotonic() < deadline and not refused:
            time.sleep(0.02)
        server.kill()
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        assert not refused, refused
        assert len(acked) >= 3 * CLIENTS, f"only {len(acked)} batches answered before the kill"
        assert unanswered, "no request was cut off by the kill"

        server.start()  # the same database, a new process
        counts = stored_message_ids(db_url)
        assert all(n == 1 for n in counts.values()), "a message id is stored twice"
        lost = [m for batch in acked for m in batch if m not in counts]
        assert not lost, f"{len(lost)} acknowledged events lost, e.g. {lost[:3]}"
        for messages in unanswered:  # one transaction per request: all or nothing
            kept = {m["messageId"] for m in messages} & counts.keys()
            assert len(kept) in (0, len(messages)), f"a batch half stored: {sorted(kept)[:3]}"
        sent = {m for batch in acked for m in batch} | {
            m["messageId"] for messages in unanswered for m in messages
        }
        assert counts.keys() <= sent

        # The clients retry what got no answer, as Segment's clients do.
        with httpx.Client(base_url=server.base, auth=(write_key, "")) as client:
            for messages in unanswered:
                answer = post_batch(client, messages)
                assert answer.status_code == 200, answer.text
                body = answer.json()
                assert body["accepted"] == len(messages) and not body["errors"]
                assert body["stored"] + body["duplicates"] == len(messages)
        counts = stored_message_ids(db_url)
        assert counts == dict.fromkeys(sent, 1)
    finally:
        stop.set()
        server.stop()


# -- (b) concurrent batches for one lead --------------------------------------------


def lead_messages(user: str) -> list[list[dict[str, Any]]]:
    """A lead's history in 24 small batches; no negative rules, so the final stage is
    the decision on all events whatever the order they arrive in."""

    def at(n: int) -> str:
        return (T0 + timedelta(hours=n)).isoformat()

    def track(n: int, event: str, **props: Any) -> dict[str, Any]:
        return {"type": "track", "userId": user, "messageId": f"{user}-{n}", "event": event,
                "timestamp": at(n), "properties": props}  # fmt: skip

    messages: list[dict[str, Any]] = [
        {"type": "identify", "userId": user, "messageId": f"{user}-id", "timestamp": at(0),
         "traits": {"email": f"{user}@acme.io", "title": "Head of Marketing",
                    "company_size": 80}},
    ]  # fmt: skip
    for n in range(1, 31):
        messages.append(page(f"{user}-{n}", user, n))
    for n in range(31, 37):
        messages.append(track(n, "Asset Downloaded", asset=f"guide-{n % 4}"))
    for n in range(37, 43):
        messages.append(track(n, "Email Clicked", campaign=f"c{n % 5}"))
    messages.append(track(43, "Webinar Attended", webinar="w1"))
    messages.append(track(44, "Quote Requested", message="What would a new site cost?"))
    messages.append(track(45, "Form Submitted", form="contact"))
    messages.append(track(46, "Meeting Booked"))
    return [messages[i : i + 2] for i in range(0, len(messages), 2)]


def lead_state(url: str, lead_id: str) -> tuple[str, float, float, int]:
    """(stage, stored score, ledger sum, events) of a lead, read from the store."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            repo = Repository(conn)
            state = repo.lead_state(lead_id)
            assert state is not None, f"no lead {lead_id}"
            ledger = sum(entry.points for entry in repo.ledger(lead_id))
            return state[0], state[1], ledger, repo.count_events(lead_id)
    finally:
        engine.dispose()


def test_concurrent_batches_for_one_lead_end_as_sequential(db_url: str, tmp_path: Path) -> None:  # noqa: F811
    write_key, admin_key = create_key("write", db_url), create_key("admin", db_url)
    server = LiveServer(db_url, log=tmp_path / "serve.log").start()
    statuses: list[str] = []
    try:
        with httpx.Client(base_url=server.base, auth=(write_key, "")) as client:
            for batch in lead_messages("seq"):
                answer = post_batch(client, batch)
                assert answer.status_code == 200 and not answer.json()["errors"], answer.text

        batches = lead_messages("conc")
        threads_n = 6
        barrier = threading.Barrier(threads_n)

        def send(share: list[list[dict[str, Any]]]) -> None:
            with httpx.Client(base_url=server.base, auth=(write_key, "")) as client:
                for batch in share:  # in rounds: every client sends at the same moment
                    barrier.wait(timeout=60)
                    try:
                        answer = post_batch(client, batch)
                        ok = answer.status_code == 200 and not answer.json()["errors"]
                        statuses.append("ok" if ok else f"{answer.status_code} {answer.text}")
                    except httpx.TransportError as exc:
                        statuses.append(f"no answer: {exc!r}")

        assert len(batches) % threads_n == 0
        threads = [
            threading.Thread(target=send, args=(batches[n::threads_n],)) for n in range(threads_n)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)

        admin = {"Authorization": f"Bearer {admin_key}"}
        views = {
            lead: httpx.get(f"{server.base}/api/leads/{lead}", headers=admin, timeout=10).json()
            for lead in ("seq", "conc")
        }
    finally:
        server.stop()
    failed = [s for s in statuses if s != "ok"]
    assert not failed and len(statuses) == len(batches), failed[:3]

    seq_stage, seq_score, seq_ledger, seq_events = lead_state(db_url, "seq")
    stage, score, ledger, events = lead_state(db_url, "conc")
    assert seq_stage == "handed_over" and views["seq"]["stage"] == "handed_over"
    # The sequential lead is consistent with itself: stored score = evaluation now.
    assert seq_score == pytest.approx(views["seq"]["score"], abs=0.01)
    assert (events, stage) == (seq_events, seq_stage)
    assert views["conc"]["score"] == pytest.approx(views["seq"]["score"], abs=0.01)
    assert ledger == pytest.approx(seq_ledger, abs=1e-6), (
        f"ledger sum {ledger} after concurrent batches, {seq_ledger} sequentially"
    )
    assert score == pytest.approx(seq_score, abs=0.01), (
        f"stored score {score} after concurrent batches, {seq_score} sequentially"
    )
    # The model moves a lead forward only, entering each stage once: its moves form
    # one chain from new to sql (the order of the history is not checked here).
    ranks = ["new", "nurturing", "mql", "sql", "handed_over"]
    moves = [(h["from"], h["to"]) for h in views["conc"]["stage_history"]]
    chain = sorted(moves, key=lambda move: ranks.index(move[0]))
    assert all(ranks.index(a) < ranks.index(b) for a, b in chain), moves
    assert all(a == b for (_, a), (b, _) in itertools.pairwise(chain)), moves
    assert (chain[0][0], chain[-1][1]) == ("new", "handed_over"), moves


def stage_moves(user: str) -> list[list[dict[str, Any]]]:
    """Three batches for one lead, each of which moves it a stage alone or with the
    others, whatever order they are taken in: a page (+2), fit and two pricing pages
    (+40) and a quote request (+20 and intent)."""

    def at(n: int) -> str:
        return (T0 + timedelta(hours=n)).isoformat()

    traits = {"title": "Founder", "company_size": 40}
    return [
        [page(f"{user}-1", user, 1)],
        [
            {"type": "identify", "userId": user, "messageId": f"{user}-id", "timestamp": at(0),
             "traits": traits},
            {**page(f"{user}-2", user, 2), "properties": {"path": "/pricing"}},
            {**page(f"{user}-3", user, 3), "properties": {"path": "/pricing/plans"}},
        ],
        [{"type": "track", "userId": user, "messageId": f"{user}-q", "event": "Quote Requested",
          "timestamp": at(4)}],
    ]  # fmt: skip


def test_concurrent_stage_changes_read_back_in_the_order_they_happened(
    db_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Each lead's stage history, as the lead API returns it, is one chain from new:
    every change starts from the stage the one before it ended in."""
    write_key, admin_key = create_key("write", db_url), create_key("admin", db_url)
    server = LiveServer(db_url, log=tmp_path / "serve.log").start()
    leads = [f"race-{n}" for n in range(10)]
    work = [batch for lead in leads for batch in stage_moves(lead)]
    barrier = threading.Barrier(len(work))
    statuses: list[int] = []

    def send(batch: list[dict[str, Any]]) -> None:
        with httpx.Client(base_url=server.base, auth=(write_key, "")) as client:
            barrier.wait(timeout=60)
            statuses.append(post_batch(client, batch).status_code)

    threads = [threading.Thread(target=send, args=(batch,)) for batch in work]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        admin = {"Authorization": f"Bearer {admin_key}"}
        histories = {
            lead: [
                (h["from"], h["to"])
                for h in httpx.get(
                    f"{server.base}/api/leads/{lead}", headers=admin, timeout=10
                ).json()["stage_history"]
            ]
            for lead in leads
        }
    finally:
        server.stop()
    assert statuses == [200] * len(work)
    assert all(("nurturing", "sql") in moves for moves in histories.values()), histories
    broken = {
        lead: moves
        for lead, moves in histories.items()
        if moves[0][0] != "new" or any(a[1] != b[0] for a, b in itertools.pairwise(moves))
    }
    assert not broken, f"stage history out of order (as returned by GET /api/leads): {broken}"


# -- (c) two API processes on one database: one handover, one delivery each -------------


def test_two_api_processes_hand_over_each_lead_once_and_deliver_each_message_once(
    db_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Two `leadgate serve` processes share a database, each with its own outbox worker.
    Leads made sales ready through either one get one handover each, and every
    notification reaches the receiver once: a message is claimed by one worker."""
    from test_outbox import Receiver, subscribe

    upgrade(db_url)
    engine = create_engine(db_url)
    receiver = Receiver()
    receiver.slow_first, receiver.delay = 10_000, 0.01  # both workers get a share
    receiver.start()
    subscribe(engine, receiver.url)
    write_key = create_key("write", db_url)
    servers = [LiveServer(db_url, log=tmp_path / f"serve-{i}.log").start() for i in range(2)]
    leads = 40
    try:
        clients = [httpx.Client(base_url=s.base, auth=(write_key, "")) for s in servers]
        for i in range(leads):
            user, n = f"two-{i}", i * 10
            batch = [
                {"type": "identify", "userId": user, "messageId": f"{user}-id",
                 "traits": {"email": f"{user}@acme.io", "title": "Founder", "company_size": 40}},
                page(f"{user}-p1", user, n + 1),
                page(f"{user}-p2", user, n + 2),
                {"type": "track", "userId": user, "event": "Quote Requested",
                 "messageId": f"{user}-q", "timestamp": (T0 + timedelta(minutes=n + 3)).isoformat(),
                 "properties": {"message": "Could you quote a new site?"}},
            ]  # fmt: skip
            # the same batch through both servers at once: one lead, one handover
            threads = [
                threading.Thread(target=post_batch, args=(c, batch), daemon=True) for c in clients
            ]
            for th in threads:
                th.start()
            for th in threads:
                th.join(30)
        with engine.connect() as conn:
            handovers = conn.execute(
                select(t.handovers.c.lead_id, func.count()).group_by(t.handovers.c.lead_id)
            ).all()
        assert sorted(r[0] for r in handovers) == sorted(f"two-{i}" for i in range(leads))
        assert {r[1] for r in handovers} == {1}
        with engine.connect() as conn:
            expected = conn.execute(select(func.count()).select_from(t.outbox)).scalar_one()
        assert expected >= 2 * leads  # lead.sql and handover.assigned at least
        deadline = time.monotonic() + 90
        while len(receiver.accepted()) < expected and time.monotonic() < deadline:
            time.sleep(0.1)
        keys = receiver.keys()
        assert len(keys) == expected and set(keys.values()) == {1}  # each once
        with engine.connect() as conn:
            claimed_by = set(conn.execute(select(t.outbox.c.claimed_by)).scalars())
        assert len(claimed_by) == 2, claimed_by  # both processes' workers delivered
        for c in clients:
            c.close()
    finally:
        for s in servers:
            s.stop()
        receiver.stop()
        engine.dispose()
