"""Settings: instance-folder secrets made once and kept; bad settings refuse to start."""

from __future__ import annotations

import pytest

from webapp.config import load_settings


def test_instance_secrets_are_made_once_and_kept(tmp_path, monkeypatch):
    monkeypatch.delenv("TOUCHBASE_SECRET_KEY", raising=False)
    monkeypatch.delenv("TOUCHBASE_VAPID_PRIVATE_KEY", raising=False)
    first = load_settings(str(tmp_path))
    second = load_settings(str(tmp_path))
    assert first["SECRET_KEY"] == second["SECRET_KEY"] and len(first["SECRET_KEY"]) > 40
    assert first["VAPID_PRIVATE_KEY"].startswith("-----BEGIN PRIVATE KEY-----")
    assert first["VAPID_PRIVATE_KEY"] == second["VAPID_PRIVATE_KEY"]
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0
    assert first["DATABASE_URL"] == f"sqlite:///{tmp_path}/touchbase.db"


def test_environment_wins(tmp_path, monkeypatch):
    pem = load_settings(str(tmp_path / "a"))["VAPID_PRIVATE_KEY"]
    key_file = tmp_path / "vapid.pem"
    key_file.write_text(pem)
    monkeypatch.setenv("TOUCHBASE_SECRET_KEY", "from-env")
    monkeypatch.setenv("TOUCHBASE_VAPID_PRIVATE_KEY", str(key_file))
    monkeypatch.setenv("TOUCHBASE_DATABASE_URL", "postgresql+psycopg://db/x")
    monkeypatch.setenv("TOUCHBASE_DISPATCH_INTERVAL", "5")
    settings = load_settings(str(tmp_path / "b"))
    assert settings["SECRET_KEY"] == "from-env"
    assert settings["VAPID_PRIVATE_KEY"] == pem
    assert settings["DATABASE_URL"] == "postgresql+psycopg://db/x"
    assert settings["DISPATCH_INTERVAL"] == 5
    assert not (tmp_path / "b" / "secret_key").exists()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("VAPID_SUBJECT", "admin@example.com"),
        ("VAPID_PRIVATE_KEY", "/no/such/key.pem"),
        ("DISPATCH_INTERVAL", "soon"),
    ],
)
def test_bad_settings_refuse_to_start(tmp_path, monkeypatch, name, value):
    monkeypatch.setenv(f"TOUCHBASE_{name}", value)
    with pytest.raises(RuntimeError, match=f"TOUCHBASE_{name}"):
        load_settings(str(tmp_path))
