"""A push service on 127.0.0.1 that checks every push the way a real one would, and more.

For each POST to ``/push/<subscriber id>`` it:
- checks the headers: ``Content-Encoding: aes128gcm``, a ``TTL`` above 0, ``Urgency``, and a
  ``Topic`` of at most 32 base64url characters;
- verifies the VAPID JWT: the ES256 signature against the server's public key, ``aud`` equal to
  this service's origin, ``exp`` in the future and at most 24 h ahead, and a ``sub`` that is a
  ``mailto:`` or ``https:`` contact;
- decrypts the body (RFC 8291, through ``http_ece``) with the subscriber's private key and auth
  secret, and parses the JSON payload;
- records the push, then answers 201, or what the test scripted for that subscriber (410, 404,
  429 with ``Retry-After``, 500...).

A push that fails a check is answered 400/401/403 and recorded in ``errors``: tests assert that
list stays empty, so a malformed push fails the test even when the dispatcher would cope.
"""

from __future__ import annotations

import base64
import json
import os
import re
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import http_ece
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def public_point(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def browser_keys() -> dict[str, str]:
    """Push keys of a new browser, as it posts them: a P-256 point and a 16-byte secret."""
    return {
        "p256dh": b64url(public_point(ec.generate_private_key(ec.SECP256R1()))),
        "auth": b64url(os.urandom(16)),
    }


@dataclass
class Subscriber:
    """A browser: its own key pair and auth secret, and the endpoint the service gave it."""

    id: str
    endpoint: str
    private_key: ec.EllipticCurvePrivateKey
    auth: bytes

    @property
    def keys(self) -> dict[str, str]:
        return {"p256dh": b64url(public_point(self.private_key)), "auth": b64url(self.auth)}

    def subscription(self) -> dict[str, Any]:
        """What ``PushSubscription.toJSON()`` gives the app."""
        return {"endpoint": self.endpoint, "keys": self.keys, "expirationTime": None}


@dataclass
class Push:
    subscriber: str
    payload: dict[str, Any]
    headers: dict[str, str]
    claims: dict[str, Any]
    status: int
    at: float = field(default_factory=time.time)


class FakePushService:
    """The service; ``with FakePushService(vapid_public_key) as service: ...``."""

    def __init__(self, vapid_public_key: str | None, *, delay: float = 0.0) -> None:
        self.vapid_public_key = vapid_public_key
        self.delay = delay
        self.pushes: list[Push] = []
        # Subscriber ids, as each request arrives (before ``delay``): a push in flight shows here
        # first, in ``pushes`` once answered.
        self.arrivals: list[str] = []
        self.errors: list[str] = []
        self.subscribers: dict[str, Subscriber] = {}
        # Per subscriber: statuses to answer next (then 201), each with optional headers.
        self.script: dict[str, deque[tuple[int, dict[str, str]]]] = defaultdict(deque)
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakePushService:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def subscriber(self) -> Subscriber:
        """A new browser subscribed to this service."""
        sid = os.urandom(12).hex()
        sub = Subscriber(
            sid,
            f"{self.origin}/push/{sid}",
            ec.generate_private_key(ec.SECP256R1()),
            os.urandom(16),
        )
        with self.lock:
            self.subscribers[sid] = sub
        return sub

    def answer(self, sub: Subscriber, *statuses: int, **headers: str) -> None:
        """Answer the next pushes to ``sub`` with ``statuses`` (in order), then 201 again."""
        with self.lock:
            for status in statuses:
                self.script[sub.id].append(
                    (status, {k.replace("_", "-"): v for k, v in headers.items()})
                )

    def accepted(self) -> list[Push]:
        with self.lock:
            return [p for p in self.pushes if p.status == 201]

    def received(self, subscriber: Subscriber | None = None) -> list[Push]:
        with self.lock:
            return [p for p in self.pushes if subscriber is None or p.subscriber == subscriber.id]

    # The checks

    def check_vapid(self, header: str) -> dict[str, Any]:
        """The claims of a valid VAPID ``Authorization`` header; ValueError when it is not."""
        match = re.fullmatch(r"vapid t=([\w.-]+),\s*k=([\w-]+)", header or "")
        if not match:
            raise ValueError(f"not a VAPID Authorization header: {header!r}")
        token, key = match.groups()
        if self.vapid_public_key is not None and key != self.vapid_public_key:
            raise ValueError("VAPID k= is not the server's public key")
        head64, body64, sig64 = token.split(".")
        head = json.loads(unb64url(head64))
        if head.get("alg") != "ES256":
            raise ValueError(f"VAPID alg is {head.get('alg')!r}")
        sig = unb64url(sig64)
        if len(sig) != 64:
            raise ValueError("ES256 signature must be 64 bytes")
        der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
        pub = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(key))
        try:
            pub.verify(der, f"{head64}.{body64}".encode(), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature as exc:
            raise ValueError("VAPID signature does not verify") from exc
        claims = json.loads(unb64url(body64))
        if claims.get("aud") != self.origin:
            raise ValueError(f"VAPID aud {claims.get('aud')!r} is not {self.origin!r}")
        now = time.time()
        if not now < claims.get("exp", 0) <= now + 24 * 3600:
            raise ValueError(f"VAPID exp {claims.get('exp')} is not within the next 24 h")
        if not str(claims.get("sub", "")).startswith(("mailto:", "https:")):
            raise ValueError(f"VAPID sub {claims.get('sub')!r} is not mailto: or https:")
        return claims

    def check_headers(self, headers: dict[str, str]) -> None:
        if headers.get("content-encoding") != "aes128gcm":
            raise ValueError(f"Content-Encoding {headers.get('content-encoding')!r}")
        if not headers.get("ttl", "").isdigit() or int(headers["ttl"]) <= 0:
            raise ValueError(f"TTL {headers.get('ttl')!r} must be above 0")
        if headers.get("urgency") not in ("very-low", "low", "normal", "high"):
            raise ValueError(f"Urgency {headers.get('urgency')!r}")
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", headers.get("topic", "")):
            raise ValueError(f"Topic {headers.get('topic')!r} is not <= 32 base64url chars")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        service = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: Any) -> None:
                pass

            def _reply(self, status: int, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                sid = self.path.rsplit("/", 1)[-1]
                headers = {k.lower(): v for k, v in self.headers.items()}
                with service.lock:
                    service.arrivals.append(sid)
                if service.delay:
                    time.sleep(service.delay)
                with service.lock:
                    sub = service.subscribers.get(sid)
                    scripted = service.script[sid].popleft() if service.script[sid] else None
                if sub is None:
                    self._reply(404)
                    return
                try:
                    claims = service.check_vapid(headers.get("authorization", ""))
                except (ValueError, KeyError) as exc:
                    service.errors.append(f"{sid}: {exc}")
                    self._reply(403)
                    return
                try:
                    service.check_headers(headers)
                    plain = http_ece.decrypt(
                        body, private_key=sub.private_key, auth_secret=sub.auth, version="aes128gcm"
                    )
                    payload = json.loads(plain)
                except Exception as exc:
                    service.errors.append(f"{sid}: {type(exc).__name__}: {exc}")
                    self._reply(400)
                    return
                status, extra = scripted or (201, {})
                with service.lock:
                    service.pushes.append(Push(sid, payload, headers, claims, status))
                if status == 201:
                    extra = {**extra, "Location": f"{service.origin}/message/{os.urandom(6).hex()}"}
                self._reply(status, extra)

        return Handler


def seed_due_callbacks(
    app: Any,
    service: FakePushService,
    count: int,
    *,
    reps: int = 50,
    due_from: Any = None,
    spread: float = 0.0,
) -> tuple[list[dict[str, Any]], list[Subscriber]]:
    """``count`` open callbacks over ``reps`` reps with one browser each, written in one go.

    They fall due from ``due_from`` (default: a second ago) over ``spread`` seconds. Returns the
    callback rows and the subscribers (``subs[i]`` is rep ``i``'s browser). For the dispatcher
    tests and ``bench/dispatch.py``, which need thousands without going through the API.
    """
    import sqlalchemy as sa

    from webapp.models import callbacks, clients, new_id, push_subscriptions, users, utcnow

    now = utcnow()
    start = due_from or now - timedelta(seconds=1)
    rep_rows, client_rows, sub_rows, subs, rows = [], [], [], [], []
    for i in range(reps):
        user_id, client_id = new_id(), new_id()
        rep_rows.append(
            {
                "id": user_id,
                "email": f"rep{i}@example.com",
                "password_hash": "x",
                "name": f"Rep {i}",
                "timezone": "UTC",
                "quiet_start": None,
                "quiet_end": None,
            }
        )
        client_rows.append({"id": client_id, "user_id": user_id, "name": f"Client {i}", "tags": []})
        sub = service.subscriber()
        subs.append(sub)
        sub_rows.append({"id": new_id(), "user_id": user_id, "endpoint": sub.endpoint, **sub.keys})
    for n in range(count):
        owner = client_rows[n % reps]
        rows.append(
            {
                "id": new_id(),
                "user_id": owner["user_id"],
                "client_id": owner["id"],
                "origin_at": now - timedelta(days=1),
                "due_at": start + timedelta(seconds=spread * n / max(count - 1, 1)),
            }
        )
    with app.extensions["sqlalchemy"].engine.begin() as conn:
        conn.execute(sa.insert(users), rep_rows)
        conn.execute(sa.insert(clients), client_rows)
        conn.execute(sa.insert(push_subscriptions), sub_rows)
        conn.execute(sa.insert(callbacks), rows)
    return rows, subs


def seed_digest_reps(
    app: Any, service: FakePushService, count: int, zone: str, at: str, *, clients: int = 0
) -> list[Subscriber]:
    """``count`` reps in ``zone`` with the morning digest at ``at``, one browser each, and
    ``clients`` never-called clients each (so today's list has something to count)."""
    import sqlalchemy as sa

    from webapp.models import clients as clients_table
    from webapp.models import new_id, push_subscriptions, users

    reps, subs, rows, people = [], [], [], []
    for i in range(count):
        user_id = new_id()
        reps.append(
            {
                "id": user_id,
                "email": f"digest{i}@example.com",
                "password_hash": "x",
                "name": f"Rep {i}",
                "timezone": zone,
                "digest_time": at,
            }
        )
        sub = service.subscriber()
        subs.append(sub)
        rows.append({"id": new_id(), "user_id": user_id, "endpoint": sub.endpoint, **sub.keys})
        people += [
            {"id": new_id(), "user_id": user_id, "name": f"Client {i}.{n}", "tags": []}
            for n in range(clients)
        ]
    with app.extensions["sqlalchemy"].engine.begin() as conn:
        conn.execute(sa.insert(users), reps)
        conn.execute(sa.insert(push_subscriptions), rows)
        if people:
            conn.execute(sa.insert(clients_table), people)
    return subs
