"""The push API: the key, subscriptions (allow-list, key checks, moving), the test button."""

from __future__ import annotations

import base64

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.conftest import register_rep
from tests.push.conftest import no_quiet_hours, subscribe
from tests.push.fake_service import b64url, public_point
from webapp import create_app
from webapp.models import push_subscriptions


def _rows(app):
    with app.extensions["sqlalchemy"].engine.connect() as conn:
        return conn.execute(sa.select(push_subscriptions).order_by(push_subscriptions.c.id)).all()


def _assert_422(resp, *fields):
    assert resp.status_code == 422, resp.get_data(as_text=True)
    assert resp.json["error"]["code"] == "invalid"
    assert set(resp.json["error"]["fields"]) == set(fields), resp.json


def test_key_is_the_instance_key_as_browsers_want_it(app, rep):
    resp = rep.get("/push/key")
    assert resp.status_code == 200
    key = resp.json["public_key"]
    assert "=" not in key and len(key) == 87
    point = base64.urlsafe_b64decode(key + "=")
    assert len(point) == 65 and point[0] == 4
    private = serialization.load_pem_private_key(app.config["VAPID_PRIVATE_KEY"].encode(), None)
    expected = private.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    assert point == expected
    # The same key after a restart: it lives in the instance folder.
    assert app.test_client().get("/api/v1/push/key").json == resp.json


def test_subscribe_then_again_then_unsubscribe(app, rep, push_service):
    sub = push_service.subscriber()
    first = rep.post("/push/subscriptions", sub.subscription())
    assert first.status_code == 201, first.json
    assert first.json["endpoint"] == sub.endpoint
    again = rep.post("/push/subscriptions", sub.subscription())
    assert again.status_code == 200
    assert again.json["id"] == first.json["id"]
    (row,) = _rows(app)
    assert (row.user_id, row.p256dh, row.auth) == (
        rep.user["id"],
        sub.keys["p256dh"],
        sub.keys["auth"],
    )

    assert rep.delete("/push/subscriptions", {"endpoint": sub.endpoint}).status_code == 204
    assert _rows(app) == []
    # Unsubscribing twice (a replayed log out) is fine.
    assert rep.delete("/push/subscriptions", {"endpoint": sub.endpoint}).status_code == 204


def test_a_known_browser_moves_to_the_rep_who_posts_it(app, rep, other_rep, push_service):
    sub = subscribe(rep, push_service)
    resp = other_rep.post("/push/subscriptions", sub.subscription())
    assert resp.status_code == 200
    (row,) = _rows(app)
    assert row.user_id == other_rep.user["id"]


def test_another_reps_unsubscribe_changes_nothing(app, rep, other_rep, push_service):
    sub = subscribe(rep, push_service)
    assert other_rep.delete("/push/subscriptions", {"endpoint": sub.endpoint}).status_code == 204
    assert [r.user_id for r in _rows(app)] == [rep.user["id"]]


@pytest.mark.parametrize(
    "endpoint",
    [
        "https://evil.example/push/1",
        "http://127.0.0.1:1/push/1",  # same host, another port
        "https://127.0.0.1/push/1",
        "http://localhost/push/1",
        "http://169.254.169.254/latest/meta-data",
        "https://fcm.googleapis.com/fcm/send/abc",  # a real service, but not on this list
        "ftp://127.0.0.1/push",
        "not a url",
    ],
)
def test_endpoints_off_the_allow_list_are_refused(app, rep, push_service, endpoint):
    sub = push_service.subscriber()
    body = {**sub.subscription(), "endpoint": endpoint}
    _assert_422(rep.post("/push/subscriptions", body), "endpoint")
    assert _rows(app) == []


def test_userinfo_tricks_are_refused(app, rep, push_service):
    sub = push_service.subscriber()
    host = push_service.origin.removeprefix("http://")
    for endpoint in (f"http://x@{host}/push/1", f"http://{host}@evil.example/push/1"):
        body = {**sub.subscription(), "endpoint": endpoint}
        _assert_422(rep.post("/push/subscriptions", body), "endpoint")


def test_default_allow_list_is_the_public_services_over_https(tmp_path, monkeypatch, database_url):
    monkeypatch.setenv("TOUCHBASE_INSTANCE_PATH", str(tmp_path / "instance"))
    app = create_app({"DATABASE_URL": database_url, "TESTING": True})
    rep = register_rep(app)
    key = ec.generate_private_key(ec.SECP256R1())
    keys = {"p256dh": b64url(public_point(key)), "auth": b64url(bytes(16))}
    ok = [
        "https://fcm.googleapis.com/fcm/send/abc:def",
        "https://updates.push.services.mozilla.com/wpush/v2/gAAA",
        "https://web.push.apple.com/QGx",
        "https://wns2-par02p.notify.windows.com/w/?token=AQE",
    ]
    for endpoint in ok:
        resp = rep.post("/push/subscriptions", {"endpoint": endpoint, "keys": keys})
        assert resp.status_code == 201, (endpoint, resp.json)
    bad = [
        "http://fcm.googleapis.com/fcm/send/abc",
        "https://fcm.googleapis.com:8443/fcm/send/abc",
        "https://fcm.googleapis.com.evil.example/x",
        "https://notify.windows.com/w/",
        "https://evil.example/.notify.windows.com/w/",
        "https://evil_host.notify.windows.com/w/",
        "https://..notify.windows.com/w/",
    ]
    for endpoint in bad:
        _assert_422(
            rep.post("/push/subscriptions", {"endpoint": endpoint, "keys": keys}), "endpoint"
        )
    app.extensions["sqlalchemy"].engine.dispose()


@pytest.mark.parametrize(
    ("keys", "fields"),
    [
        ({"p256dh": b64url(b"\x04" + bytes(63)), "auth": None}, {"p256dh"}),  # 64 bytes
        ({"p256dh": b64url(b"\x04" + bytes(64)), "auth": None}, {"p256dh"}),  # not on the curve
        ({"p256dh": None, "auth": b64url(bytes(15))}, {"auth"}),
        ({"p256dh": None, "auth": b64url(bytes(17))}, {"auth"}),
        ({"p256dh": "not base64!", "auth": "%%%"}, {"p256dh", "auth"}),
    ],
)
def test_bad_keys_are_refused(app, rep, push_service, keys, fields):
    sub = push_service.subscriber()
    good = sub.keys
    body = {"endpoint": sub.endpoint, "keys": {k: v or good[k] for k, v in keys.items()}}
    _assert_422(rep.post("/push/subscriptions", body), *fields)
    assert _rows(app) == []


def test_compressed_point_is_refused(app, rep, push_service):
    sub = push_service.subscriber()
    compressed = sub.private_key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
    )
    body = {"endpoint": sub.endpoint, "keys": {**sub.keys, "p256dh": b64url(compressed)}}
    _assert_422(rep.post("/push/subscriptions", body), "p256dh")


def test_missing_fields_are_refused(app, rep, push_service):
    sub = push_service.subscriber()
    resp = rep.post("/push/subscriptions", {"endpoint": sub.endpoint})
    _assert_422(resp, "keys")


def test_push_routes_need_a_login(app, push_service):
    client = app.test_client()
    token = client.get("/api/v1/csrf").json["csrf_token"]
    headers = {"X-CSRFToken": token}
    sub = push_service.subscriber().subscription()
    assert client.post("/api/v1/push/subscriptions", json=sub, headers=headers).status_code == 401
    assert client.delete("/api/v1/push/subscriptions", json=sub, headers=headers).status_code == 401
    assert client.post("/api/v1/push/test", headers=headers).status_code == 401


def test_test_button_queues_one_push_per_device(app, rep, other_rep, push_service, dispatcher):
    no_quiet_hours(rep)
    phone, laptop = subscribe(rep, push_service), subscribe(rep, push_service)
    others = subscribe(other_rep, push_service)
    resp = rep.post("/push/test")
    assert resp.status_code == 202
    assert resp.json == {"devices": 2}
    assert push_service.received() == []  # the web request itself sends nothing
    assert dispatcher.run_once().tests == 2
    got = {p.subscriber: p.payload for p in push_service.received()}
    assert set(got) == {phone.id, laptop.id} and others.id not in got
    assert got[phone.id]["title"] == "Touchbase"
    assert got[phone.id]["url"] == "/#/settings"
    # Sent once: the next pass sends nothing more.
    assert dispatcher.run_once().tests == 0
    assert len(push_service.received()) == 2


def test_test_button_without_devices(app, rep):
    resp = rep.post("/push/test")
    assert resp.status_code == 202 and resp.json == {"devices": 0}
