"""Push invalidation with leases: how a worker may serve a cached credential with no round trip.

The design (Gray & Cheriton, "Leases", 1989; the argument is in docs/architecture.md):

- Every server process runs one *subscriber thread* (started on first use, after the fork) on a
  Redis pub/sub connection of its own, subscribed to the deployment's invalidation channel and to
  a heartbeat channel of its own. Every `HEARTBEAT_SECONDS` it registers itself (a key that
  expires after `LEASE_SECONDS` + margin, set *before* the heartbeat is published) and publishes
  a heartbeat (its epoch and a sequence number) to itself. When that heartbeat comes back on the
  subscription, every invalidation published before it has been applied (one connection delivers
  in the order Redis executed the publishes), so the worker holds a *lease* until the heartbeat's
  send time + `LEASE_SECONDS` (monotonic clock).
- A cached entry is served without a round trip only while the lease of the *subscription it was
  cached under* is fresh (`lease_fresh(ticket)`; the ticket is `lease_ticket()` taken before the
  row was read). A new subscription (start, reconnect, Redis restarted) starts with an empty
  cache and no lease; an entry whose load raced an invalidation gets no ticket.
- A change publishes an invalidation (`publish_invalidation`: the version markers it moved, in the
  same Redis transaction as the marker bumps, see core.versions) and, after its commit, waits
  until every registered worker has acknowledged it (each subscriber pushes its id to the
  invalidation's ack list after applying it) or `LEASE_SECONDS` (+ margin) have passed since the
  publish — by then any lease granted before the publish has run out. `wait_for_acks` says
  whether it got that far; a publish that could not reach Redis cannot be confirmed and says so.
- Anything the subscriber doubts — a malformed message, a heartbeat that is not the one it is
  waiting for (duplicate, out of order), a message of another epoch, a subscription it did not
  open — drops the lease (and, for an invalidation it cannot read, the whole cache): the worker
  then confirms every request with Redis, as without push, until the next good heartbeat.

`GATEHOUSE_CACHE_PUSH=0` turns it off (no thread; no lease is ever fresh; changes do not wait).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from .redis import redis_client, using_redis

logger = logging.getLogger(__name__)

LEASE_SECONDS = 2.0
HEARTBEAT_SECONDS = 0.5
# Clocks of two processes tick at (almost) the same rate; this covers the rest and Redis' own
# expiry resolution.
LEASE_MARGIN_SECONDS = 0.25
ACK_TTL_SECONDS = 60
MAX_MESSAGE_BYTES = 1024 * 1024
MAX_MARKERS = 10_000


def push_enabled() -> bool:
    return using_redis() and getattr(settings, "GATEHOUSE_CACHE_PUSH", True)


def _db() -> int:
    try:
        return int(redis_client().connection_pool.connection_kwargs.get("db", 0))
    except Exception:  # not reachable yet: the URL's db is what the pool was built with
        return 0


# Pub/sub channels are shared by every database of one Redis server: the names carry the db.
def channel_name() -> str:
    return f"gatehouse:{_db()}:invalidations"


def heartbeat_channel(worker_id: str) -> str:
    return f"gatehouse:{_db()}:heartbeat:{worker_id}"


EPOCH_KEY = "gatehouse:leases:epoch"
WORKERS_KEY = "gatehouse:leases:workers"


def worker_key(worker_id: str) -> str:
    return f"gatehouse:leases:worker:{worker_id}"


def ack_key(invalidation_id: str) -> str:
    return f"gatehouse:leases:ack:{invalidation_id}"


@dataclass
class LeaseState:
    """This process's view of its subscription. `subscription` numbers each subscription (0: none);
    `generation` moves with every invalidation applied or doubt, so a load that raced one is not
    leased. Read without a lock by request threads: single attribute reads under the GIL."""

    worker_id: str = ""
    pid: int = 0
    subscription: int = 0
    lease_until: float = 0.0
    generation: int = 0
    epoch: str | None = None
    seq: int = 0
    sent: dict[int, float] = field(default_factory=dict)  # heartbeat seq -> monotonic send time
    last_seq: int = 0  # the last heartbeat accepted
    doubts: int = 0  # how many messages were doubted (for tests and logs)
    url: str = ""  # the Redis this subscription is on: a lease holds for that one only


state = LeaseState()
_listeners: list[Callable[[frozenset[str] | None], None]] = []
_thread: threading.Thread | None = None
_thread_lock = threading.Lock()
_publisher_epoch: str | None = None


def on_invalidation(callback: Callable[[frozenset[str] | None], None]) -> None:
    """`callback(markers)` runs for every invalidation this process applies; None: everything."""
    if callback not in _listeners:
        _listeners.append(callback)


def _apply(markers: frozenset[str] | None) -> None:
    state.generation += 1
    for callback in _listeners:
        try:
            callback(markers)
        except Exception:
            logger.exception("An invalidation listener failed; dropping the lease.")
            state.lease_until = 0.0


def _drop(reason: str, *, everything: bool) -> None:
    """Doubt: no lease until the next good heartbeat; `everything` also empties the caches."""
    state.doubts += 1
    state.lease_until = 0.0
    if everything:
        _apply(None)
    logger.warning("Cache push: %s; confirming every request with Redis for now.", reason)


# --- request threads -----------------------------------------------------------------------------


def lease_ticket() -> int:
    """Taken before a credential is read from the database: what `lease_fresh` needs to know
    that no invalidation was missed while it was read. 0: never leased."""
    if not push_enabled():
        return 0
    ensure_subscriber()
    return (state.subscription << 32) | (state.generation & 0xFFFFFFFF)


def ticket_for_put(ticket: int) -> int:
    """The ticket an entry is cached with: `ticket` if no invalidation was applied since it was
    taken, else 0 (the entry is confirmed with Redis on every request)."""
    if ticket == 0:
        return 0
    current = (state.subscription << 32) | (state.generation & 0xFFFFFFFF)
    return ticket if current == ticket else 0


def lease_fresh(ticket: int) -> bool:
    """True when an entry cached with `ticket` may be served without asking Redis: its
    subscription is the current one and the lease has not run out."""
    return (
        ticket != 0
        and (ticket >> 32) == state.subscription
        and time.monotonic() < state.lease_until
        and state.pid == os.getpid()
        and state.url == settings.REDIS_URL
        and settings.GATEHOUSE_CACHE_PUSH
    )


def lease_open() -> bool:
    """True while this process holds a fresh lease on its current subscription: an entry cached
    without one is then worth reading again, to be served with no round trip from then on."""
    return lease_fresh((state.subscription << 32) | 1) if state.subscription else False


def ensure_subscriber() -> None:
    global _thread
    if _thread is not None and _thread.is_alive() and state.pid == os.getpid():
        return
    with _thread_lock:
        if _thread is not None and _thread.is_alive() and state.pid == os.getpid():
            return
        # A new process (or a forked copy of one): nothing inherited is vouched for.
        state.pid = os.getpid()
        state.worker_id = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
        state.subscription = 0
        state.lease_until = 0.0
        _thread = threading.Thread(target=_subscriber, name="gatehouse-cache-push", daemon=True)
        _thread.start()


# --- the subscriber thread -----------------------------------------------------------------------


def _subscriber_client() -> Any:
    """A client of its own for the subscription: no retries, so a lost connection is an error this
    thread sees (redis-py would otherwise reconnect and resubscribe behind its back)."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    timeout = float(getattr(settings, "REDIS_TIMEOUT_SECONDS", 0.5))
    state.url = settings.REDIS_URL
    return redis.Redis.from_url(
        state.url, socket_connect_timeout=timeout, socket_timeout=max(timeout, 1.0),
        retry=Retry(NoBackoff(), 0), health_check_interval=0,
    )


def _subscriber() -> None:
    pid = os.getpid()
    while state.pid == pid:
        client = None
        try:
            client = _subscriber_client()
            _subscribe_and_listen(client)
        except Exception as exc:  # redis errors, socket errors: subscribe again
            logger.warning(
                "Cache push: subscription lost (%s); subscribing again.", type(exc).__name__
            )
        finally:
            state.lease_until = 0.0
            if client is not None:
                with contextlib.suppress(Exception):
                    client.close()
        time.sleep(HEARTBEAT_SECONDS / 2)
        while not push_enabled() and state.pid == pid:
            time.sleep(HEARTBEAT_SECONDS)


def _pause_file_exists() -> bool:
    path = getattr(settings, "GATEHOUSE_CACHE_PUSH_PAUSE_FILE", "")
    return bool(path) and os.path.exists(path)


def _subscribe_and_listen(client: Any) -> None:
    pubsub = client.pubsub(ignore_subscribe_messages=False)
    invalidations, own = channel_name(), heartbeat_channel(state.worker_id)
    try:
        pubsub.subscribe(invalidations, own)
        confirmed: set[str] = set()
        deadline = time.monotonic() + 5
        while confirmed != {invalidations, own}:
            message = pubsub.get_message(timeout=0.5)
            if message is not None and message["type"] == "subscribe":
                confirmed.add(_text(message["channel"]))
            if time.monotonic() > deadline:
                raise TimeoutError("subscription not confirmed")
        # Subscribed: from now on every invalidation reaches this connection. What was cached
        # before cannot be vouched for.
        client.set(EPOCH_KEY, secrets.token_hex(8), nx=True)
        epoch = _text(client.get(EPOCH_KEY))
        state.epoch = epoch
        state.sent.clear()
        state.last_seq = 0
        _apply(None)
        state.subscription += 1
        next_beat = 0.0
        while state.pid == os.getpid():
            if state.url != settings.REDIS_URL or not push_enabled():
                raise ConnectionError("the Redis URL changed or push was turned off")
            while _pause_file_exists():  # tests: a subscriber thread that stops reading
                time.sleep(0.05)
            now = time.monotonic()
            if now >= next_beat:
                _heartbeat(client, epoch)
                next_beat = now + HEARTBEAT_SECONDS
            message = pubsub.get_message(timeout=max(0.01, next_beat - time.monotonic()))
            if message is not None:
                _handle(client, message, epoch, invalidations, own)
    finally:
        with contextlib.suppress(Exception):
            pubsub.close()


def _heartbeat(client: Any, epoch: str) -> None:
    state.seq += 1
    seq = state.seq
    sent = time.monotonic()
    state.sent[seq] = sent
    for old in [s for s in state.sent if s < seq - 8]:
        state.sent.pop(old, None)
    ttl_ms = int((LEASE_SECONDS + 2 * LEASE_MARGIN_SECONDS) * 1000)
    pipe = client.pipeline(transaction=True)
    pipe.set(worker_key(state.worker_id), "1", px=ttl_ms)  # registered before the heartbeat
    pipe.sadd(WORKERS_KEY, state.worker_id)
    pipe.get(EPOCH_KEY)
    payload = json.dumps({"v": 1, "kind": "hb", "epoch": epoch, "seq": seq})
    pipe.publish(heartbeat_channel(state.worker_id), payload)
    current = pipe.execute()[2]
    if _text(current) != epoch:
        # Redis lost its data (a restart behind a proxy, a flush, a failover): start over.
        raise ConnectionError("the epoch changed")


def _handle(client: Any, message: dict, epoch: str, invalidations: str, own: str) -> None:
    kind, channel = message.get("type"), _text(message.get("channel"))
    if kind != "message":
        # A (re)subscription this thread did not ask for: messages may have been lost.
        _drop(f"unexpected {kind} on {channel}", everything=True)
        raise ConnectionError("unexpected subscription change")
    data = message.get("data")
    body = _parse(data)
    if channel == own:
        _heartbeat_received(body, epoch)
        return
    if channel != invalidations:
        _drop("a message on a channel not subscribed to", everything=True)
        return
    if body is None or body.get("kind") != "inv" or not isinstance(body.get("id"), str):
        _drop("an invalidation it cannot read", everything=True)
        return
    markers = body.get("markers")
    if (
        not isinstance(markers, list) or len(markers) > MAX_MARKERS
        or not all(isinstance(m, str) for m in markers)
    ):
        _drop("an invalidation without a list of markers", everything=True)
        markers = None
    elif body.get("epoch") != epoch:
        _drop("an invalidation of another epoch", everything=True)
    else:
        _apply(frozenset(markers))
    _ack(client, body["id"])


def _heartbeat_received(body: dict | None, epoch: str) -> None:
    if body is None or body.get("kind") != "hb" or body.get("epoch") != epoch:
        _drop("a heartbeat it cannot vouch for", everything=False)
        return
    seq = body.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq <= state.last_seq:
        _drop("a duplicate or out-of-order heartbeat", everything=False)
        return
    sent = state.sent.pop(seq, None)
    if sent is None:
        _drop("a heartbeat it did not send", everything=False)
        return
    state.last_seq = seq
    state.lease_until = max(state.lease_until, sent + LEASE_SECONDS)


def _ack(client: Any, invalidation_id: str) -> None:
    if len(invalidation_id) > 64:
        return
    try:
        pipe = client.pipeline(transaction=True)
        pipe.rpush(ack_key(invalidation_id), state.worker_id)
        pipe.expire(ack_key(invalidation_id), ACK_TTL_SECONDS)
        pipe.execute()
    except Exception:
        # The publisher then waits for this worker's lease to run out instead.
        logger.warning("Cache push: could not acknowledge an invalidation.")


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _parse(data: Any) -> dict | None:
    if not isinstance(data, bytes | str) or len(data) > MAX_MESSAGE_BYTES:
        return None
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(body, dict) or body.get("v") != 1:
        return None
    return body


# --- publishers ----------------------------------------------------------------------------------


def publisher_epoch(client: Any) -> str:
    global _publisher_epoch
    if _publisher_epoch is None:
        client.set(EPOCH_KEY, secrets.token_hex(8), nx=True)
        _publisher_epoch = _text(client.get(EPOCH_KEY))
    return _publisher_epoch


def invalidation_message(invalidation_id: str, markers: Iterable[str], epoch: str) -> str:
    return json.dumps(
        {"v": 1, "kind": "inv", "id": invalidation_id, "epoch": epoch, "markers": sorted(markers)}
    )


def note_epoch(value: Any) -> None:
    """The epoch read back in a publish's transaction: the next publish carries it."""
    global _publisher_epoch
    _publisher_epoch = _text(value) if value is not None else None


def apply_locally(markers: Iterable[str]) -> None:
    """The publishing process forgets at once, whatever its subscriber thread is doing."""
    _apply(frozenset(markers))


@dataclass(frozen=True)
class Confirmation:
    confirmed: bool
    acked: int = 0
    waited_out: int = 0  # workers whose lease ran out instead


def wait_for_acks(invalidation_id: str, *, published_at: float) -> Confirmation:
    """Block until every registered worker acknowledged `invalidation_id` or its lease ran out
    (at the latest `LEASE_SECONDS` + margin after `published_at`, monotonic). Always confirmed
    in the end: a worker that did not answer cannot hold a lease granted before the publish past
    that point, and one renewed after it has applied the invalidation."""
    deadline = published_at + LEASE_SECONDS + LEASE_MARGIN_SECONDS
    acked: set[str] = set()
    try:
        client = redis_client()
        while True:
            members = {_text(m) for m in client.smembers(WORKERS_KEY)}
            waiting = sorted(members - acked)
            if waiting:
                pipe = client.pipeline(transaction=False)
                for worker in waiting:
                    pipe.exists(worker_key(worker))
                alive = pipe.execute()
                gone = [w for w, live in zip(waiting, alive, strict=True) if not live]
                if gone:
                    client.srem(WORKERS_KEY, *gone)
                waiting = [w for w, live in zip(waiting, alive, strict=True) if live]
            if not waiting:
                return Confirmation(True, acked=len(acked))
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return Confirmation(True, acked=len(acked), waited_out=len(waiting))
            popped = client.blpop([ack_key(invalidation_id)], timeout=min(0.1, remaining))
            while popped is not None:
                acked.add(_text(popped[1]))
                popped = client.lpop(ack_key(invalidation_id))
                popped = (None, popped) if popped is not None else None
    except Exception:  # Redis went away mid-wait: wait the leases out instead
        remaining = deadline - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)
        return Confirmation(True, acked=len(acked), waited_out=-1)
