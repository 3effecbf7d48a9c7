"""Benchmark: PostgreSQL scale-out. One web host and one dispatcher against two of each.

What runs
    A fresh PostgreSQL database of its own (``touchbase_bench_scaleout``, dropped and made again
    each run, migrated with ``flask --app webapp db upgrade``). Two "hosts": each one gunicorn
    serving ``wsgi:app`` on its own port, with its own instance folder, the same number of sync
    workers (``--workers``, 1 by default), and the settings a real second host would be given: the
    same ``TOUCHBASE_SECRET_KEY`` (a cookie from host A works on host B), the same
    ``TOUCHBASE_VAPID_PRIVATE_KEY``, and rate-limit counts in Redis under a key prefix of this
    run's own. Dispatchers are ``flask --app webapp dispatch --interval 1`` processes. The fake
    push service of the tests (tests/push/fake_service.py) runs in this process: it checks the
    VAPID signature and decrypts every push, and records which callback it carried.

    ``--reps`` reps (50) register over HTTP, half on each host, turn quiet hours off, subscribe a
    browser of the fake service, import their clients (a CSV), and prove their cookie and CSRF
    token work on the other host too.

The load
    wrk, with a generated Lua script: each request picks a random rep and is
    - 10% GET /api/v1/today, 10% GET /api/v1/clients;
    - otherwise POST /api/v1/touches with a fresh random UUID; 10% of them promise a callback due
      1-3 s later (on clients kept for promises, each thread using its own slice in turn, so a
      promise is not kept by another call before it comes due), and 5% replay an earlier touch,
      same id and same body, which must answer 200 and add nothing.
    Every touch wrk sends and every answer it gets (status and the touch id in the body) goes to
    a log per wrk thread, so the checks below compare sets of ids, not just counts.

Phases
    "one": host A with ``--connections`` connections, and one dispatcher.
    "two": hosts A and B, one wrk per host with half the connections each, and two dispatchers.
    A short warm-up on both hosts, then one/two alternated ``--rounds`` times (``--seconds``
    each), so a machine getting busier or quieter affects both alike. The ratio is the two-host
    requests per second over the one-host ones, over all rounds.

Checks, after each phase (a drain lets the dispatchers send what came due)
    - wrk saw only 2xx answers (no 5xx, no 4xx) and no socket errors; no traceback, worker
      timeout or failed dispatch pass in any log;
    - every touch answered 201 is exactly one row; no id was answered 201 twice; every 200 was a
      replay of a stored touch; no row the bench did not send; rows sent but unanswered (in flight
      when wrk stopped) at most one per connection;
    - every promise answered 201 is a callback row; every callback pushed exactly once (counted
      per callback id at the fake push service); the pushed set equals the set the database marks
      notified; none left open, due and unsent after the drain; none given up on;
    - at the end, every client's derived fields (last touch, attempts since reached) agree with
      its touches, though the two hosts wrote to the same clients at the same time.

CPU
    The machine has 2 cores, shared by PostgreSQL, the hosts, wrk, the dispatchers and the fake
    push service. Per phase the script reports the CPU each group used (in % of one core): each
    host (gunicorn master and workers), the dispatchers, PostgreSQL backends serving this
    database, the rest of PostgreSQL (other databases, background), Redis, wrk, this process
    (the fake push service), and "other": what nobody here used (other people's work). With one
    sync worker per host, one host can use at most one core; whether two reach 2x depends on the
    second core being free for them, which the CPU table shows.

Run from the project root (PostgreSQL and Redis on 127.0.0.1, wrk installed):

    .venv/bin/python bench/scale_out.py [--seconds 15] [--rounds 2] [--workers 1]
        [--connections 16] [--reps 50] [--database-url postgresql+psycopg://...] [--redis-url ...]

The admin URL is ``--database-url``, else ``BENCH_DATABASE_URL``, else ``TEST_DATABASE_URL``, else
the local server's ``test`` database; only its server is used (the bench makes its own database
there and drops it at the end). Results go to bench/results/scale_out.json. Exit status 1 when
any check failed.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import random
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
sys.path[:0] = [str(ROOT), str(BENCH)]

import requests  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from touch_write import (  # noqa: E402
    CLOCK_TICKS,
    _proc_stat,
    _process_ticks,
    code_hash,
    free_port,
    loud,
    machine,
    print_table,
    server_ticks,
    stop,
    wait_ready,
    warn_if_busy,
    write_json,
)

from tests.push.fake_service import FakePushService, Subscriber  # noqa: E402
from webapp.services.push import public_key  # noqa: E402

VENV_BIN = ROOT / ".venv" / "bin"
DATABASE = "touchbase_bench_scaleout"
DEFAULT_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PASSWORD = "correct horse battery"
API = "/api/v1"
P_TODAY, P_CLIENTS, P_PROMISE, P_REPLAY = 0.10, 0.10, 0.10, 0.05
DUE_MIN, DUE_MAX = 1, 3  # seconds from the promise to its callback's due time
REPLAY_AGE = 50  # a replay resends the touch this many touches back (long answered by then)
MAX_WRK = 2  # wrk processes in a phase at most (one per host)
OTHER = "other (not ours)"
LOG_PROBLEMS = ("Traceback", "WORKER TIMEOUT", "dispatch pass failed", "PUSH CONFIGURATION")

# The generated script starts with REPS, PROMISE, THREADS and NSLOTS (see lua_script()).
# wrk runs one Lua state per thread: each keeps its own FIFO of touches to replay and its own
# slice of the promise clients, and logs what it sends and what it gets to its own file.
WRK_LUA = r"""
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

local out, slot, pnext
local fifo, head, tail = {}, 1, 0
local n = 0

function init(args)
  local prefix, index, seed = args[1], tonumber(args[2]), tonumber(args[3])
  math.randomseed(seed + tid * 104729)
  slot = index * THREADS + tid - 1
  pnext = slot + 1
  out = io.open(prefix .. "-" .. index .. "-" .. tid .. ".log", "w")
  out:setvbuf("line")
  statuses = {}
end

local function hex(k)
  local s = {}
  for i = 1, k do s[i] = string.format("%x", math.random(0, 15)) end
  return table.concat(s)
end

local function uuid4()
  return hex(8) .. "-" .. hex(4) .. "-4" .. hex(3) .. "-"
    .. string.format("%x", math.random(8, 11)) .. hex(3) .. "-" .. hex(12)
end

local outcomes = {"reached", "left_message", "no_answer"}

local function post(rep, body)
  return wrk.format("POST", "/api/v1/touches", {
    ["Cookie"] = rep[1], ["X-CSRFToken"] = rep[2], ["Content-Type"] = "application/json"
  }, body)
end

function request()
  local x = math.random()
  if x < P_TODAY then
    return wrk.format("GET", "/api/v1/today", {["Cookie"] = REPS[math.random(#REPS)][1]})
  elseif x < P_TODAY + P_CLIENTS then
    return wrk.format("GET", "/api/v1/clients", {["Cookie"] = REPS[math.random(#REPS)][1]})
  end
  if tail - head + 1 >= REPLAY_AGE and math.random() < P_REPLAY then
    local old = fifo[head]
    fifo[head] = nil
    head = head + 1
    out:write("R ", old[3], "\n")
    return post(old[1], old[2])
  end
  local id, rep, body = uuid4()
  if math.random() < P_PROMISE then
    local target = PROMISE[pnext]
    pnext = pnext + NSLOTS
    if pnext > #PROMISE then pnext = slot + 1 end
    rep = REPS[target[1]]
    local cb = uuid4()
    local due = os.date("!%Y-%m-%dT%H:%M:%S+00:00", os.time() + math.random(DUE_MIN, DUE_MAX))
    body = string.format(
      '{"id":"%s","client_id":"%s","outcome":"left_message","callback_at":"%s","callback_id":"%s"}',
      id, target[2], due, cb)
    out:write("P ", id, " ", cb, "\n")
  else
    rep = REPS[math.random(#REPS)]
    n = n + 1
    body = string.format('{"id":"%s","client_id":"%s","outcome":"%s"}',
      id, rep[3][math.random(#rep[3])], outcomes[n % 3 + 1])
    out:write("S ", id, "\n")
  end
  tail = tail + 1
  fifo[tail] = {rep, body, id}
  return post(rep, body)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if status == 200 or status == 201 then
    -- A touch's answer (keys sorted) starts with callback_at; the id key is quoted alone.
    if string.sub(body, 1, 15) == '{"callback_at":' then
      out:write(status, " ", string.match(body, '"id":"([%x%-]+)"'), "\n")
    end
  else
    out:write("E ", status, " ", string.gsub(string.sub(body, 1, 300), "\n", " "), "\n")
  end
end

function done(summary, latency, requests)
  local parts = {}
  for _, thread in ipairs(threads) do
    for status, k in pairs(thread:get("statuses")) do
      parts[status] = (parts[status] or 0) + k
    end
  end
  local codes = {}
  for status, k in pairs(parts) do
    table.insert(codes, string.format('"%d": %d', status, k))
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, '
    .. '"max_us": %d, "errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d}, '
    .. '"statuses": {%s}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, e.connect, e.read, e.write, e.timeout, table.concat(codes, ", ")))
end
"""


@dataclass
class Rep:
    """A registered rep, as the load needs it."""

    email: str
    cookie: str
    token: str
    clients: list[str]
    promise_clients: list[str]


@dataclass
class Host:
    """One web host: a gunicorn on its own port, with its own instance folder and log."""

    name: str
    port: int
    log: Path
    proc: subprocess.Popen

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class WrkRun:
    """One wrk process of a phase, as its done() hook reported it."""

    host: str
    connections: int
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    statuses: dict[str, int]
    socket_errors: dict[str, int]
    cpu_seconds: float


@dataclass
class Phase:
    """One measured (or warm-up) stretch of load and what was found after it."""

    name: str
    hosts: int
    dispatchers: int
    seconds: float
    runs: list[WrkRun]
    cpu: dict[str, float]  # % of one core per process group
    machine_busy: float  # share of all cores busy
    loadavg: tuple[float, float, float]
    touches: dict[str, int] = field(default_factory=dict)
    reminders: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return sum(r.requests for r in self.runs)

    @property
    def rps(self) -> float:
        return sum(r.rps for r in self.runs)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=15, help="measured seconds per phase")
    parser.add_argument("--warmup", type=int, default=3, help="warm-up seconds (both hosts)")
    parser.add_argument("--rounds", type=int, default=2, help="one/two phase pairs, alternated")
    parser.add_argument("--workers", type=int, default=1, help="gunicorn sync workers per host")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections in all")
    parser.add_argument("--threads", type=int, default=2, help="threads per wrk process")
    parser.add_argument("--reps", type=int, default=50, help="reps, each logged in")
    parser.add_argument("--clients", type=int, default=12, help="clients per rep for calls")
    parser.add_argument(
        "--promise-clients", type=int, default=20, help="clients per rep kept for promises"
    )
    parser.add_argument("--drain", type=float, default=30.0, help="max seconds to drain callbacks")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL")
        or os.environ.get("TEST_DATABASE_URL")
        or DEFAULT_ADMIN_URL,
        help="a PostgreSQL URL on the server to use (the bench makes its own database there)",
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--keep", action="store_true", help="keep the database and the logs")
    return parser.parse_args(argv)


# The database


@contextmanager
def fresh_database(admin_url: str, keep: bool) -> Iterator[str]:
    """``DATABASE`` dropped and made again on the admin URL's server; yields its URL."""
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    if admin.dialect.name != "postgresql":
        raise SystemExit("the scale-out bench needs PostgreSQL (--database-url)")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        conn.exec_driver_sql(f"CREATE DATABASE {DATABASE}")
    url = sa.engine.make_url(admin_url).set(database=DATABASE, query={})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        if not keep:
            with admin.connect() as conn:
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        admin.dispose()


def vapid_pem() -> str:
    """A new VAPID signing key (PEM), given to every host and dispatcher."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


# Processes


def start_host(name: str, env: dict[str, str], folder: Path, workers: int) -> Host:
    """Start one host: ``gunicorn wsgi:app`` with ``workers`` sync workers on a port of its own."""
    instance = folder / f"instance-{name}"
    port = free_port()
    log = folder / f"host-{name}.log"
    cmd = [
        str(VENV_BIN / "gunicorn"),
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--worker-class",
        "sync",
        "--no-control-socket",  # (gunicorn 27's default socket lands in $HOME, shared)
        "--log-level",
        "warning",
        "wsgi:app",
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env={**env, "TOUCHBASE_INSTANCE_PATH": str(instance)},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Host(name, port, log, proc)


def start_dispatcher(n: int, env: dict[str, str], folder: Path) -> subprocess.Popen:
    """Start ``flask --app webapp dispatch --interval 1`` and wait until it has started up."""
    log = folder / f"dispatcher-{n}.log"
    cmd = [str(VENV_BIN / "flask"), "--app", "webapp", "dispatch", "--interval", "1"]
    with log.open("ab") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env={
                **env,
                "TOUCHBASE_INSTANCE_PATH": str(folder / f"instance-dispatch-{n}"),
                # The VAPID "sub" claim tells the fake push service which dispatcher sent a push.
                "TOUCHBASE_VAPID_SUBJECT": f"mailto:dispatcher-{n}@example.com",
            },
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    # Started up = its CPU use has settled (imports and the first pass are done), so the start-up
    # does not land in a measured phase.
    deadline = time.monotonic() + 20
    time.sleep(0.5)
    last = _process_ticks(proc.pid)
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"dispatcher {n} exited with status {proc.returncode}")
        time.sleep(0.3)
        now = _process_ticks(proc.pid)
        if now - last <= 1:
            return proc
        last = now
    return proc


def stop_dispatcher(proc: subprocess.Popen) -> None:
    """SIGTERM: the dispatcher finishes its pass and exits."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# Reps


def set_up_rep(i: int, host: Host, other: Host, service: FakePushService, args: Any) -> Rep:
    """Register rep ``i`` on ``host`` like the phone does, and check the session on ``other``."""
    http = requests.Session()
    base = host.base + API

    def call(method: str, url: str, token: str | None = None, **kwargs: Any) -> Any:
        headers = {"X-CSRFToken": token} if token else {}
        resp = http.request(method, url, headers=headers, timeout=60, **kwargs)
        if resp.status_code >= 300:
            raise RuntimeError(f"{method} {url}: {resp.status_code} {resp.text[:300]}")
        return resp.json() if resp.content else None

    token = call("GET", base + "/csrf")["csrf_token"]
    email = f"rep{i}@example.com"
    user = {"email": email, "password": PASSWORD, "name": f"Rep {i}", "timezone": "UTC"}
    token = call("POST", base + "/auth/register", token, json=user)["csrf_token"]
    # Reminders at any hour of the run: no quiet hours.
    call("PATCH", base + "/me", token, json={"quiet_hours": None})
    sub: Subscriber = service.subscriber()
    call("POST", base + "/push/subscriptions", token, json=sub.subscription())
    sheet = io.StringIO()
    writer = csv.writer(sheet)
    writer.writerow(["name", "company"])
    writer.writerows([f"Client {i}.{n}", "Calls"] for n in range(args.clients))
    writer.writerows([f"Promise {i}.{n}", "Promises"] for n in range(args.promise_clients))
    files = {"file": ("clients.csv", sheet.getvalue().encode(), "text/csv")}
    summary = call("POST", base + "/import", token, files=files)
    if summary["created"] != args.clients + args.promise_clients:
        raise RuntimeError(f"import for {email}: {summary}")
    items = call("GET", base + "/clients?limit=500")["items"]
    calls = [c["id"] for c in items if c["company"] == "Calls"]
    promises = [c["id"] for c in items if c["company"] == "Promises"]
    cookie = f"touchbase_session={http.cookies['touchbase_session']}"

    # The other host takes the same cookie and token: one secret key, one database.
    other_http = requests.Session()
    headers = {"Cookie": cookie, "X-CSRFToken": token}
    me = other_http.patch(other.base + API + "/me", json={"daily_goal": 12}, headers=headers)
    if me.status_code != 200 or me.json()["email"] != email:
        raise RuntimeError(f"{email}'s session does not work on host {other.name}: {me.text}")
    return Rep(email, cookie, token, calls, promises)


def lua_script(reps: list[Rep], threads: int) -> str:
    """The wrk script, with the reps and the promise clients written into it."""
    rows = [
        "{" + ", ".join([json.dumps(r.cookie), json.dumps(r.token)]) + ", {"
        f"{', '.join(json.dumps(c) for c in r.clients)}" + "}}"
        for r in reps
    ]
    # Promise clients, interleaved over reps so every thread's slice spreads over all of them.
    width = max(len(r.promise_clients) for r in reps)
    promise = [
        f"{{{n + 1}, {json.dumps(r.promise_clients[k])}}}"
        for k in range(width)
        for n, r in enumerate(reps)
        if k < len(r.promise_clients)
    ]
    head = [
        "REPS = {\n  " + ",\n  ".join(rows) + "\n}",
        f"PROMISE = {{{', '.join(promise)}}}",
        f"THREADS = {threads}",
        f"NSLOTS = {threads * MAX_WRK}",
        f"P_TODAY, P_CLIENTS, P_PROMISE, P_REPLAY = {P_TODAY}, {P_CLIENTS}, {P_PROMISE}, "
        f"{P_REPLAY}",
        f"DUE_MIN, DUE_MAX = {DUE_MIN}, {DUE_MAX}",
        f"REPLAY_AGE = {REPLAY_AGE}",
    ]
    return "\n".join(head) + "\n" + WRK_LUA


# CPU accounting


def pids_named(name: str) -> list[int]:
    """Processes whose command name is ``name`` (all users')."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


class CpuMeter:
    """CPU ticks per process group between ``start()`` and ``stop()``."""

    def __init__(self, hosts: list[Host], monitor: sa.Engine) -> None:
        self.hosts = hosts
        self.monitor = monitor

    def backends(self) -> set[int]:
        """PostgreSQL backends connected to the bench's database (but the meter's own)."""
        with self.monitor.connect() as conn:
            return set(
                conn.exec_driver_sql(
                    "SELECT pid FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                ).scalars()
            )

    def sample(self, dispatchers: list[subprocess.Popen]) -> dict[str, Any]:
        postgres = {pid: _process_ticks(pid) for pid in pids_named("postgres")}
        ours = self.backends()
        self_ru = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "machine": _proc_stat(),
            "hosts": {h.name: server_ticks(h.proc.pid) for h in self.hosts},
            "dispatchers": sum(_process_ticks(p.pid) for p in dispatchers),
            "postgres": postgres,
            "ours": ours,
            "redis": sum(_process_ticks(pid) for pid in pids_named("redis-server")),
            "self": (self_ru.ru_utime + self_ru.ru_stime) * CLOCK_TICKS,
        }

    @staticmethod
    def groups(
        before: dict[str, Any], after: dict[str, Any], wrk_seconds: float, seconds: float
    ) -> tuple[dict[str, float], float]:
        """% of one core per group, and the share of the machine busy, between two samples."""
        ours = before["ours"] | after["ours"]
        pg_ours = pg_rest = 0.0
        for pid, ticks in after["postgres"].items():
            spent = ticks - before["postgres"].get(pid, 0)
            if pid in ours:
                pg_ours += spent
            else:
                pg_rest += spent
        ticks = {f"host {name}": t - before["hosts"][name] for name, t in after["hosts"].items()}
        ticks |= {
            "dispatchers": after["dispatchers"] - before["dispatchers"],
            "postgres (bench db)": pg_ours,
            "postgres (rest)": pg_rest,
            "redis": after["redis"] - before["redis"],
            "wrk": wrk_seconds * CLOCK_TICKS,
            "bench + fake push": after["self"] - before["self"],
        }
        busy = after["machine"][0] - before["machine"][0]
        total = max(after["machine"][1] - before["machine"][1], 1)
        ticks[OTHER] = max(busy - sum(ticks.values()), 0)
        scale = 100 / CLOCK_TICKS / seconds
        return {k: round(v * scale, 1) for k, v in ticks.items()}, round(busy / total, 3)


# One phase


@dataclass
class Wrk:
    """A wrk process running, with the file its output goes to."""

    proc: subprocess.Popen
    out: IO[str]
    host: Host
    connections: int


def run_wrk(
    host: Host, connections: int, args: Any, lua: Path, prefix: str, index: int, seconds: int
) -> Wrk:
    """Start one wrk against ``host`` (see ``finish_wrk``)."""
    out = open(f"{prefix}-{index}.out", "w+")  # noqa: SIM115 (closed in finish_wrk)
    cmd = [
        "wrk",
        f"--threads={min(args.threads, connections)}",
        f"--connections={connections}",
        f"--duration={seconds}s",
        "--timeout=10s",
        "--latency",
        f"--script={lua}",
        host.base + API + "/today",
        "--",
        prefix,
        str(index),
        str(random.randrange(1, 2**31)),
    ]
    return Wrk(subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT), out, host, connections)


def finish_wrk(wrk: Wrk) -> WrkRun:
    """Wait for one wrk (with its own CPU use, from wait4) and read its summary."""
    proc, out, host, connections = wrk.proc, wrk.out, wrk.host, wrk.connections
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    out.seek(0)
    text = out.read()
    out.close()
    line = next((ln for ln in text.splitlines() if ln.startswith("WRK_JSON ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}):\n{text[-3000:]}")
    raw = json.loads(line.removeprefix("WRK_JSON "))
    secs = raw["duration_us"] / 1e6
    return WrkRun(
        host=host.name,
        connections=connections,
        requests=raw["requests"],
        seconds=round(secs, 3),
        rps=round(raw["requests"] / secs, 1),
        p50_ms=raw["p50_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
        statuses=raw["statuses"],
        socket_errors=raw["errors"],
        cpu_seconds=usage.ru_utime + usage.ru_stime,
    )


class Bench:
    """The hosts, the dispatchers, the push service and the tallies across phases."""

    def __init__(self, args: Any, folder: Path, env: dict[str, str], service: FakePushService):
        self.args = args
        self.folder = folder
        self.env = env
        self.service = service
        self.engine = sa.create_engine(env["TOUCHBASE_DATABASE_URL"], pool_size=2)
        self.hosts: list[Host] = []
        self.dispatchers: list[subprocess.Popen] = []
        self.lua = folder / "load.lua"
        self.meter: CpuMeter | None = None
        # Across phases: what wrk sent and what it was answered, by touch id.
        self.sent: Counter[str] = Counter()  # new touches and replays
        self.promised: dict[str, str] = {}  # touch id -> callback id
        self.created: Counter[str] = Counter()  # 201s per id
        self.repeated: set[str] = set()  # ids answered 200
        self.errors: list[str] = []  # non-2xx answers, as logged

    def set_up(self) -> list[Rep]:
        a = start_host("A", self.env, self.folder, self.args.workers)
        b = start_host("B", self.env, self.folder, self.args.workers)
        self.hosts = [a, b]
        for host in self.hosts:
            wait_ready(host.base, host.proc)
        self.meter = CpuMeter(self.hosts, self.engine)
        with ThreadPoolExecutor(4) as pool:
            reps = list(
                pool.map(
                    lambda i: set_up_rep(
                        i, self.hosts[i % 2], self.hosts[1 - i % 2], self.service, self.args
                    ),
                    range(self.args.reps),
                )
            )
        self.lua.write_text(lua_script(reps, self.args.threads))
        self.dispatchers = [start_dispatcher(1, self.env, self.folder)]
        return reps

    def tear_down(self) -> None:
        for proc in self.dispatchers:
            stop_dispatcher(proc)
        for host in self.hosts:
            stop(host.proc)
        self.engine.dispose()

    def phase(self, name: str, hosts: int, seconds: int) -> Phase:
        """Load ``hosts`` hosts with as many dispatchers for ``seconds``, drain, check."""
        assert self.meter is not None
        while len(self.dispatchers) < hosts:
            self.dispatchers.append(
                start_dispatcher(len(self.dispatchers) + 1, self.env, self.folder)
            )
        prefix = str(self.folder / f"wrk-{name}")
        share = self.args.connections // hosts
        before = self.meter.sample(self.dispatchers)
        started = time.monotonic()
        wrks = [
            run_wrk(host, share, self.args, self.lua, prefix, n, seconds)
            for n, host in enumerate(self.hosts[:hosts])
        ]
        runs = [finish_wrk(wrk) for wrk in wrks]
        elapsed = time.monotonic() - started
        after = self.meter.sample(self.dispatchers)
        cpu, busy = CpuMeter.groups(before, after, sum(r.cpu_seconds for r in runs), elapsed)
        result = Phase(
            name, hosts, len(self.dispatchers), round(elapsed, 2), runs, cpu, busy, os.getloadavg()
        )
        self.drain(result)
        while len(self.dispatchers) > hosts:
            stop_dispatcher(self.dispatchers.pop())
        self.check(result, prefix, share * hosts)
        return result

    def drain(self, phase: Phase) -> None:
        """Wait until no callback is open and unsent (all are due within DUE_MAX s)."""
        deadline = time.monotonic() + self.args.drain
        time.sleep(1.0)  # requests in flight when wrk stopped
        while time.monotonic() < deadline:
            if self.pending() == 0:
                return
            time.sleep(0.25)
        phase.problems.append(f"{self.pending()} callbacks still unsent after the drain")

    def pending(self) -> int:
        with self.engine.connect() as conn:
            return conn.exec_driver_sql(
                "SELECT count(*) FROM callbacks WHERE status = 'open' AND notified_at IS NULL "
                "AND last_error IS NULL"
            ).scalar_one()

    def read_logs(self, prefix: str) -> tuple[set[str], set[str], set[str], int]:
        """Fold one phase's wrk logs into the tallies; return its sent, 201 and promised ids,
        and how many replays it sent."""
        sent, created, promised, replays = set(), set(), set(), 0
        for path in sorted(Path(prefix).parent.glob(Path(prefix).name + "-*-*.log")):
            for line in path.read_text().splitlines():
                kind, _, rest = line.partition(" ")
                if kind in ("S", "P"):
                    touch, _, callback = rest.partition(" ")
                    self.sent[touch] += 1
                    sent.add(touch)
                    if kind == "P":
                        self.promised[touch] = callback
                        promised.add(touch)
                elif kind == "R":
                    self.sent[rest] += 1
                    replays += 1
                elif kind == "201":
                    self.created[rest] += 1
                    created.add(rest)
                elif kind == "200":
                    self.repeated.add(rest)
                else:
                    self.errors.append(line[:300])
        return sent, created, promised, replays

    def check(self, phase: Phase, prefix: str, connections: int) -> None:
        """The phase's checks (see the module docstring); problems go to ``phase.problems``."""
        problems = phase.problems
        for run in phase.runs:
            bad = {code: n for code, n in run.statuses.items() if not code.startswith("2")}
            if bad:
                problems.append(f"host {run.host}: non-2xx answers {bad}")
            if any(run.socket_errors.values()):
                problems.append(f"host {run.host}: socket errors {run.socket_errors}")
        errors_before = len(self.errors)
        repeated_before = len(self.repeated)
        sent, created, promised, replays = self.read_logs(prefix)
        problems += [f"answer: {line}" for line in self.errors[errors_before:][:5]]

        with self.engine.connect() as conn:
            stored = set(conn.exec_driver_sql("SELECT id FROM touches").scalars())
            rows = conn.exec_driver_sql(
                "SELECT id, status, due_at, done_at, notified_at, last_error FROM callbacks"
            ).all()
        callbacks = {row.id: row for row in rows}

        lost = [t for t in self.created if t not in stored]
        twice = [t for t, n in self.created.items() if n > 1]
        bad_200 = [t for t in self.repeated if self.sent[t] < 2 or t not in stored]
        unknown = stored - set(self.sent)
        unanswered = (stored & sent) - created - self.repeated
        if lost:
            problems.append(f"{len(lost)} touches answered 201 are not stored, e.g. {lost[:3]}")
        if twice:
            problems.append(f"{len(twice)} touch ids were answered 201 twice, e.g. {twice[:3]}")
        if bad_200:
            problems.append(f"{len(bad_200)} 200s were not replays of stored touches")
        if unknown:
            problems.append(f"{len(unknown)} stored touches were never sent")
        if len(unanswered) > connections:
            problems.append(f"{len(unanswered)} stored touches got no answer (> {connections})")
        phase.touches = {
            "sent": len(sent),
            "answered_201": len(created),
            "stored": len(stored & sent),
            "in_flight_at_stop": len(unanswered),
            "replays_sent": replays,
            "answered_200": len(self.repeated) - repeated_before,
            "stored_in_all": len(stored),
        }

        pushes = [p for p in self.service.accepted() if p.payload.get("callback_id")]
        per_callback = Counter(p.payload["callback_id"] for p in pushes)
        duplicates = {cb: n for cb, n in per_callback.items() if n > 1}
        notified = {cid for cid, row in callbacks.items() if row.notified_at is not None}
        promised_ok = {self.promised[t] for t in self.created if t in self.promised}
        missing = [cb for cb in promised_ok if cb not in callbacks]
        unsent = [
            cid
            for cid, row in callbacks.items()
            if row.status == "open" and row.notified_at is None and row.last_error is None
        ]
        failed = [cid for cid, row in callbacks.items() if row.last_error is not None]
        kept = [
            cid
            for cid, row in callbacks.items()
            if row.notified_at is None and row.status == "done" and row.done_at >= row.due_at
        ]
        if duplicates:
            problems.append(f"{len(duplicates)} callbacks pushed more than once: {duplicates}")
        if set(per_callback) != notified:
            problems.append(
                f"pushed {len(per_callback)} callbacks but {len(notified)} are marked notified "
                f"({len(set(per_callback) ^ notified)} differ)"
            )
        if missing:
            problems.append(f"{len(missing)} promises answered 201 have no callback row")
        if unsent:
            problems.append(f"{len(unsent)} callbacks left unsent after the drain")
        if failed:
            problems.append(f"{len(failed)} callbacks given up on: {failed[:3]}")
        due = {cid: row.due_at.timestamp() for cid, row in callbacks.items()}
        phase_cbs = {self.promised[t] for t in promised & created}
        waits = sorted(
            p.at - due[p.payload["callback_id"]]
            for p in pushes
            if p.payload["callback_id"] in phase_cbs
        )
        senders = Counter(
            p.claims["sub"].removeprefix("mailto:").removesuffix("@example.com")
            for p in pushes
            if p.payload["callback_id"] in phase_cbs
        )
        phase.reminders = {
            "promised_201": len(phase_cbs),
            "pushed": len(waits),
            "pushed_by": dict(sorted(senders.items())),
            "pushed_in_all": len(per_callback),
            "duplicates": len(duplicates),
            "lost": len(missing) + len(unsent) + len(failed),
            "kept_before_push": len(kept),
            "due_to_push_p50_ms": round(statistics.median(waits) * 1000) if waits else None,
            "due_to_push_p99_ms": round(waits[int(len(waits) * 0.99)] * 1000) if waits else None,
        }
        problems += log_problems([h.log for h in self.hosts] + list(self.folder.glob("disp*.log")))
        if self.service.errors:
            problems.append(f"fake push service refused pushes: {self.service.errors[:3]}")

    def derived_fields(self) -> list[str]:
        """Every client's last touch and attempts since reached, recomputed from its touches."""
        with self.engine.connect() as conn:
            wrong_last = conn.exec_driver_sql(
                "SELECT count(*) FROM clients c WHERE c.last_touch_at IS DISTINCT FROM "
                "(SELECT max(t.happened_at) FROM touches t WHERE t.client_id = c.id)"
            ).scalar_one()
            wrong_attempts = conn.exec_driver_sql(
                "SELECT count(*) FROM clients c WHERE c.attempts_since_reached <> ("
                " SELECT count(*) FROM touches t WHERE t.client_id = c.id"
                " AND t.outcome <> 'reached' AND t.happened_at > coalesce("
                "  (SELECT max(r.happened_at) FROM touches r"
                "   WHERE r.client_id = c.id AND r.outcome = 'reached'), '-infinity'))"
            ).scalar_one()
        problems = []
        if wrong_last:
            problems.append(f"{wrong_last} clients' last_touch_at disagree with their touches")
        if wrong_attempts:
            problems.append(f"{wrong_attempts} clients' attempts_since_reached disagree")
        return problems


def log_problems(logs: list[Path]) -> list[str]:
    """Tracebacks, worker timeouts and failed dispatch passes in the process logs."""
    problems = []
    for log in logs:
        text = log.read_text(errors="replace") if log.exists() else ""
        for needle in LOG_PROBLEMS:
            if needle in text:
                problems.append(f"{log.name} has {text.count(needle)} x {needle!r}")
    return problems


# Report


def report(phases: list[Phase], args: Any) -> dict[str, Any]:
    """Print the tables and the ratio; return the figures."""
    rows: list[tuple[str, ...]] = [
        (
            "phase",
            "hosts",
            "req/s",
            "p50 ms",
            "p99 ms",
            "requests",
            "touches 201",
            "pushed (by d1/d2)",
            "machine busy",
            "load avg",
        ),
    ]
    for p in phases:
        rows.append(
            (
                p.name,
                str(p.hosts),
                f"{p.rps:.0f}",
                "/".join(f"{r.p50_ms:.1f}" for r in p.runs),
                "/".join(f"{r.p99_ms:.1f}" for r in p.runs),
                str(p.requests),
                str(p.touches.get("answered_201", 0)),
                f"{p.reminders.get('pushed', 0)} ("
                + "/".join(str(n) for n in p.reminders.get("pushed_by", {}).values())
                + ")",
                f"{p.machine_busy:.0%}",
                " ".join(f"{x:.2f}" for x in p.loadavg),
            )
        )
    print_table(rows)
    print(
        "\nCPU per process group, % of one core (the machine has "
        f"{os.cpu_count()} cores, so 100% busy = {100 * (os.cpu_count() or 1)}%):"
    )
    names = list(phases[0].cpu)
    print_table(
        [("group", *[p.name for p in phases])]
        + [(name, *[f"{p.cpu[name]:.0f}" for p in phases]) for name in names]
    )
    measured = [p for p in phases if p.name != "warm-up"]
    ones = [p for p in measured if p.hosts == 1]
    twos = [p for p in measured if p.hosts == 2]

    def rate(group: list[Phase]) -> float:
        return sum(p.requests for p in group) / sum(max(r.seconds for r in p.runs) for p in group)

    one, two = rate(ones), rate(twos)
    ratio = two / one
    per_round = [f"{b.rps / a.rps:.2f}" for a, b in zip(ones, twos, strict=True)]
    print(
        f"\none host: {one:.0f} req/s; two hosts: {two:.0f} req/s; ratio {ratio:.2f} "
        f"(goal >= 1.6); per round: {', '.join(per_round)}"
    )

    def host_ms(group: list[Phase]) -> float:
        ticks = sum(
            sum(v for k, v in p.cpu.items() if k.startswith("host")) * p.seconds for p in group
        )
        return ticks * 10 / sum(p.requests for p in group)  # % of a core x s -> ms per request

    print(f"host CPU per request: one {host_ms(ones):.2f} ms, two {host_ms(twos):.2f} ms")

    def mean_cpu(group: list[Phase], ours: bool) -> float:
        return statistics.mean(
            sum(v for k, v in p.cpu.items() if (k == OTHER) != ours) for p in group
        )

    print(
        f"CPU of this bench's processes, % of one core: one host {mean_cpu(ones, True):.0f}, "
        f"two hosts {mean_cpu(twos, True):.0f}; other work on the machine: "
        f"{mean_cpu(ones, False):.0f} and {mean_cpu(twos, False):.0f}"
    )
    noisy = max(mean_cpu(ones, False), mean_cpu(twos, False))
    if noisy > 10:
        print(
            f"\nwarning: other work used {noisy:.0f}% of a core during the phases: the hosts "
            "competed with it for the CPUs, so the throughput figures and the ratio are noisy",
            file=sys.stderr,
            flush=True,
        )
    return {
        "one_host_rps": round(one, 1),
        "two_hosts_rps": round(two, 1),
        "ratio": round(ratio, 3),
        "ratio_per_round": [float(r) for r in per_round],
        "host_cpu_ms_per_request": {"one": round(host_ms(ones), 3), "two": round(host_ms(twos), 3)},
        "other_cpu_percent": {"one": mean_cpu(ones, False), "two": mean_cpu(twos, False)},
    }


def main(argv: list[str] | None = None) -> int:
    """Set up, run the phases, check, report."""
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        loud("wrk is not installed: run `apt-get install -y wrk` (Debian/Ubuntu) and try again")
        return 2
    busy_before = warn_if_busy()
    code = code_hash()
    folder = Path(tempfile.mkdtemp(prefix="touchbase-scaleout-"))
    prefix = f"touchbase-bench-scaleout-{uuid.uuid4().hex[:12]}"
    phases: list[Phase] = []
    problems: list[str] = []
    try:
        with fresh_database(args.database_url, args.keep) as url, FakePushService(None) as service:
            pem = vapid_pem()
            service.vapid_public_key = public_key(pem)
            env = {
                **os.environ,
                "TOUCHBASE_DATABASE_URL": url,
                "TOUCHBASE_SECRET_KEY": uuid.uuid4().hex,
                "TOUCHBASE_VAPID_PRIVATE_KEY": pem,
                "TOUCHBASE_PUSH_ORIGINS": service.origin,
                "TOUCHBASE_RATELIMIT_STORAGE_URI": args.redis_url,
                "TOUCHBASE_RATELIMIT_KEY_PREFIX": prefix,
                "TOUCHBASE_INSTANCE_PATH": str(folder / "instance-setup"),
            }
            subprocess.run(
                [str(VENV_BIN / "flask"), "--app", "webapp", "db", "upgrade"],
                cwd=ROOT,
                env=env,
                check=True,
                capture_output=True,
            )
            bench = Bench(args, folder, env, service)
            try:
                started = time.monotonic()
                reps = bench.set_up()
                print(
                    f"PostgreSQL database {DATABASE}; {len(reps)} reps set up in "
                    f"{time.monotonic() - started:.0f} s (half on each host, sessions checked on "
                    f"the other); hosts: {args.workers} sync worker(s) each; wrk: "
                    f"{args.connections} connections in all, {args.seconds} s per phase, "
                    f"{args.rounds} rounds",
                    flush=True,
                )
                phases.append(bench.phase("warm-up", 2, args.warmup))
                for n in range(1, args.rounds + 1):
                    for hosts in (1, 2):
                        phase = bench.phase(
                            f"{'one' if hosts == 1 else 'two'}-{n}", hosts, args.seconds
                        )
                        phases.append(phase)
                        print(
                            f"{phase.name}: {phase.rps:.0f} req/s, machine {phase.machine_busy:.0%}"
                            f" busy, load {phase.loadavg[0]:.2f}",
                            flush=True,
                        )
                problems += bench.derived_fields()
            finally:
                bench.tear_down()
            problems += log_problems([h.log for h in bench.hosts] + list(folder.glob("disp*.log")))
        clean_redis(args.redis_url, prefix)
    finally:
        if args.keep:
            print(f"kept: {folder} and the database {DATABASE}")
        else:
            shutil.rmtree(folder, ignore_errors=True)

    print()
    figures = report(phases, args)
    touches = {
        k: sum(p.touches.get(k, 0) for p in phases)
        for k in phases[-1].touches
        if k != "stored_in_all"
    }
    reminders = {
        k: sum(p.reminders.get(k) or 0 for p in phases)
        for k in ("promised_201", "pushed", "duplicates", "lost", "kept_before_push")
    }
    print(f"touches: {touches}")
    print(f"reminders: {reminders}")
    for p in phases:
        problems += [f"{p.name}: {problem}" for problem in p.problems]
    if code_hash() != code:
        problems.append("webapp/ or bench/ changed during the run: run it again")
    for problem in problems:
        loud(problem)
    print(
        "checks: "
        + (
            "FAILED, the figures above are not valid"
            if problems
            else "all passed (nothing lost, nothing duplicated, no 5xx)"
        )
    )
    path = write_json(
        "scale_out.json",
        {
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": machine(),
            "settings": {k: v for k, v in vars(args).items() if k != "database_url"},
            "code_sha256": code,
            "cpu_busy_before": busy_before,
            **figures,
            "touches": touches,
            "reminders": reminders,
            "phases": [asdict(p) for p in phases],
            "problems": problems,
        },
    )
    print(f"written: {path.relative_to(ROOT)}")
    return 1 if problems else 0


def clean_redis(url: str, prefix: str) -> None:
    """Delete this run's rate-limit keys."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=5)
    try:
        keys = list(client.scan_iter(match=f"*{prefix}*"))
        if keys:
            client.delete(*keys)
    except redis.RedisError as exc:
        print(f"warning: could not clean Redis keys {prefix}*: {exc}", file=sys.stderr)
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main())
