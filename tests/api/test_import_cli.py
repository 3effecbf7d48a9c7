"""flask --app webapp import-clients EMAIL FILE: the same import, and the same summary."""

from __future__ import annotations

import json

from tests.api.test_import import FIXTURES, by_name


def test_import_clients_command(app, rep):
    runner = app.test_cli_runner()
    path = str(FIXTURES / "google_contacts.csv")
    result = runner.invoke(args=["import-clients", "REP@example.com", path])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "created 4, updated 0, skipped 0, problems 1"
    assert lines[1] == 'line 6: The phone number "call the shop" could not be read; kept as typed.'
    assert "Maria Okafor" in by_name(rep)
    again = runner.invoke(args=["import-clients", "rep@example.com", path, "--json"])
    assert again.exit_code == 0, again.output
    summary = json.loads(again.output)
    assert (summary["created"], summary["updated"], summary["skipped"]) == (0, 0, 4)


def test_import_clients_command_errors(app, rep, tmp_path):
    runner = app.test_cli_runner()
    path = str(FIXTURES / "google_contacts.csv")
    unknown = runner.invoke(args=["import-clients", "nobody@example.com", path])
    assert unknown.exit_code != 0 and "No account" in unknown.output
    empty = runner.invoke(args=["import-clients", "rep@example.com", str(FIXTURES / "empty.csv")])
    assert empty.exit_code != 0 and "empty" in empty.output
