"""Benchmark: the one-tap write (POST /api/v1/touches) against a bare Flask JSON endpoint.

What it measures
    Load mode (the default): one gunicorn (N sync workers, 127.0.0.1) serves both the subject and
    the baseline from the same app (``bench/bench_app.py``), on a fresh SQLite database (WAL)
    made with the project's own migrations. ``wrk`` drives each route for the same duration and
    number of connections, after a short warm-up of its own:

    - subject:  POST /api/v1/touches with the rep's session cookie, X-CSRFToken and a JSON body
                with a fresh random UUID ``id`` per request (every request is a real insert, not
                a replay), one client, outcome cycling reached / left_message / no_answer;
    - baseline: POST /bench/bare with the same headers and the same kind of body; it reads the
                JSON and answers JSON, without the database, the login or CSRF.

    In-process mode (``--in-process``): the same two requests through Flask's test client, N of
    each, timed one after the other; no server, no sockets, one process. It reports wall and CPU
    time per request, as means and as the median over the blocks of 100: on a machine shared
    with other work, the median CPU time moves least.

How to read the ratio
    ratio = subject req/s / baseline req/s (load mode), or baseline ms / subject ms (in
    process): the share of a bare endpoint's throughput the touch write keeps. 1.0 would mean
    the write costs nothing beyond the framework; the goal in DESIGN.md ("Performance method")
    is at least 0.4. Absolute figures depend on the machine; the ratio travels.

Correctness checks (load mode): every subject answer must be a 201 (no replay, no error), wrk
must report no socket error, the gunicorn log must hold no "database is locked" and no
traceback, and the rows added to ``touches`` must equal the 201s wrk counted, give or take the
requests still in flight when wrk stopped (at most one per connection). Any failure is printed
loudly and the exit status is 1.

Run from the project root:

    .venv/bin/python bench/touch_write.py [--seconds 20] [--workers 5] [--connections 50]
    .venv/bin/python bench/touch_write.py --seconds 10 --rounds 3   # alternate, on a busy box
    .venv/bin/python bench/touch_write.py --in-process [--requests 3000] [--profile]

Results go to bench/results/touch_write.json (load) or touch_write_inprocess.json.
"""

from __future__ import annotations

import argparse
import hashlib
import http.cookiejar
import json
import os
import platform
import random
import resource
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
VENV_BIN = ROOT / ".venv" / "bin"
SUBJECT_PATH = "/api/v1/touches"
BARE_PATH = "/bench/bare"
SESSION_COOKIE = "touchbase_session"
OUTCOMES = ("reached", "left_message", "no_answer")
PASSWORD = "correct horse battery"

# wrk calls request() for every request, so each body gets its own random UUID. The threads
# share nothing; done() gathers each thread's status counts and prints one JSON line.
WRK_LUA = r"""
local client_id
local counter = 0
local outcomes = {"reached", "left_message", "no_answer"}
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

function init(args)
  client_id = args[1]
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Cookie"] = args[2]
  wrk.headers["X-CSRFToken"] = args[3]
  math.randomseed(tonumber(args[4]) + tid * 104729)
  statuses = {}
end

local function hex(n)
  local out = {}
  for i = 1, n do out[i] = string.format("%x", math.random(0, 15)) end
  return table.concat(out)
end

local function uuid4()
  -- Version 4, variant 10xx: 122 random bits.
  return hex(8) .. "-" .. hex(4) .. "-4" .. hex(3) .. "-"
    .. string.format("%x", math.random(8, 11)) .. hex(3) .. "-" .. hex(12)
end

function request()
  counter = counter + 1
  local body = string.format('{"id": "%s", "client_id": "%s", "outcome": "%s"}',
    uuid4(), client_id, outcomes[counter % 3 + 1])
  return wrk.format(nil, nil, nil, body)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local parts = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do
      parts[status] = (parts[status] or 0) + n
    end
  end
  local codes = {}
  for status, n in pairs(parts) do
    table.insert(codes, string.format('"%d": %d', status, n))
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, '
    .. '"mean_us": %.1f, "max_us": %d, "errors": {"connect": %d, "read": %d, "write": %d, '
    .. '"status": %d, "timeout": %d}, "statuses": {%s}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.mean, latency.max, e.connect, e.read, e.write, e.status, e.timeout,
    table.concat(codes, ", ")))
end
"""


@dataclass
class Credentials:
    """What the load needs to act as the logged-in rep."""

    cookie: str
    csrf_token: str
    client_id: str


@dataclass
class WrkResult:
    """One wrk run, as reported by the Lua done() hook."""

    path: str
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    statuses: dict[str, int]
    socket_errors: dict[str, int]
    # CPU time the gunicorn processes spent per answered request (ms): the server's own cost.
    server_cpu_ms: float
    # Share of the machine's CPU capacity used by processes other than gunicorn and wrk during
    # the run. Above a few percent, someone else was busy and the figures are noisy.
    foreign_cpu: float

    @property
    def ok(self) -> int:
        """Answers with a 2xx status."""
        return sum(n for code, n in self.statuses.items() if code.startswith("2"))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=20, help="measured duration per route")
    parser.add_argument("--warmup", type=int, default=3, help="warm-up seconds per route")
    parser.add_argument("--workers", type=int, default=5, help="gunicorn sync workers")
    parser.add_argument("--connections", type=int, default=50, help="wrk connections")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="alternate baseline and subject this many times (each --seconds long), to even out "
        "a busy machine",
    )
    parser.add_argument("--in-process", action="store_true", help="time the Flask test client")
    parser.add_argument("--requests", type=int, default=3000, help="in-process requests per route")
    parser.add_argument(
        "--profile", action="store_true", help="in process: cProfile the subject requests too"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    return parser.parse_args(argv)


def loud(message: str) -> None:
    """Print an error so that it cannot be missed."""
    print(f"\n!!! ERROR: {message}\n", file=sys.stderr, flush=True)


def make_instance(folder: Path) -> dict[str, str]:
    """Make an instance folder and a migrated SQLite database; return the environment for both."""
    instance = folder / "instance"
    instance.mkdir()
    env = {
        **os.environ,
        "TOUCHBASE_INSTANCE_PATH": str(instance),
        "TOUCHBASE_DATABASE_URL": f"sqlite:///{folder / 'bench.db'}",
        # Fixed for the run, so every worker signs and checks cookies with the same key.
        "TOUCHBASE_SECRET_KEY": uuid.uuid4().hex,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(BENCH)]),
    }
    subprocess.run(
        [str(VENV_BIN / "flask"), "--app", "webapp", "db", "upgrade"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    return env


def db_path(env: dict[str, str]) -> str:
    """The SQLite file behind ``TOUCHBASE_DATABASE_URL``."""
    return env["TOUCHBASE_DATABASE_URL"].removeprefix("sqlite:///")


def count_touches(env: dict[str, str]) -> int:
    """Rows in ``touches`` (a plain read beside the server; WAL lets it run)."""
    with sqlite3.connect(db_path(env), timeout=30) as conn:
        return conn.execute("SELECT count(*) FROM touches").fetchone()[0]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(env: dict[str, str], port: int, workers: int, log: Path) -> subprocess.Popen:
    """Start one gunicorn (sync workers) serving the bench app; its output goes to ``log``."""
    cmd = [
        str(VENV_BIN / "gunicorn"),
        "--chdir",
        str(ROOT),
        "--pythonpath",
        str(BENCH),
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--worker-class",
        "sync",
        "--log-level",
        "warning",
        "bench_app:create_bench_app()",
    ]
    with log.open("wb") as out:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen) -> None:
    """Stop the gunicorn we started (graceful, then forced)."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=15)


def wait_ready(base: str, proc: subprocess.Popen, timeout: float = 30) -> None:
    """Wait until the server answers GET /api/v1/csrf, or fail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited with status {proc.returncode}")
        try:
            with urllib.request.urlopen(base + "/api/v1/csrf", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not answer within {timeout:.0f} s")


def register_over_http(base: str) -> Credentials:
    """Register a rep and add one client through the API, as the phone would."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))

    def call(method: str, path: str, token: str | None = None, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(base + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("X-CSRFToken", token)
        with opener.open(req, timeout=30) as resp:
            return json.load(resp)

    token = call("GET", "/api/v1/csrf")["csrf_token"]
    user = {"email": "bench@example.com", "password": PASSWORD, "name": "Bench", "timezone": "UTC"}
    token = call("POST", "/api/v1/auth/register", token, user)["csrf_token"]
    client_id = call("POST", "/api/v1/clients", token, {"name": "Bench Client"})["id"]
    cookie = next(c for c in jar if c.name == SESSION_COOKIE)
    return Credentials(f"{SESSION_COOKIE}={cookie.value}", token, client_id)


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _proc_stat() -> tuple[int, int]:
    """Busy and total CPU ticks of the whole machine since boot."""
    with open("/proc/stat") as fh:
        ticks = [int(x) for x in fh.readline().split()[1:]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    return sum(ticks) - idle, sum(ticks)


def _process_ticks(pid: int) -> int:
    """User + system CPU ticks of one process (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def server_ticks(master: int) -> int:
    """CPU ticks of the gunicorn master and its workers."""
    try:
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    except OSError:
        children = []
    return sum(_process_ticks(pid) for pid in [master, *map(int, children)])


def run_wrk(
    base: str,
    path: str,
    lua: Path,
    creds: Credentials,
    seconds: int,
    args: argparse.Namespace,
    server: int,
) -> WrkResult:
    """Drive ``path`` with wrk for ``seconds`` and return what its done() hook reported, with
    the CPU spent by the server (pid ``server``), by wrk and by everything else."""
    cmd = [
        "wrk",
        f"--threads={min(args.threads, args.connections)}",
        f"--connections={args.connections}",
        f"--duration={seconds}s",
        "--timeout=10s",
        "--latency",
        f"--script={lua}",
        base + path,
        "--",
        creds.client_id,
        creds.cookie,
        creds.csrf_token,
        str(random.randrange(1, 2**31)),
    ]
    machine0, server0 = _proc_stat(), server_ticks(server)
    wrk0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=True)
    wrk1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    machine1, server1 = _proc_stat(), server_ticks(server)
    wrk_ticks = (wrk1.ru_utime + wrk1.ru_stime - wrk0.ru_utime - wrk0.ru_stime) * CLOCK_TICKS
    busy = machine1[0] - machine0[0]
    foreign = max(busy - (server1 - server0) - wrk_ticks, 0) / max(machine1[1] - machine0[1], 1)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("WRK_JSON ")), None)
    if line is None:
        raise RuntimeError(f"no summary from wrk:\n{out.stdout}\n{out.stderr}")
    raw = json.loads(line.removeprefix("WRK_JSON "))
    secs = raw["duration_us"] / 1e6
    return WrkResult(
        path=path,
        requests=raw["requests"],
        seconds=round(secs, 3),
        rps=round(raw["requests"] / secs, 1),
        p50_ms=raw["p50_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        mean_ms=round(raw["mean_us"] / 1000, 3),
        max_ms=raw["max_us"] / 1000,
        statuses=raw["statuses"],
        socket_errors={k: v for k, v in raw["errors"].items() if k != "status"},
        server_cpu_ms=round((server1 - server0) / CLOCK_TICKS * 1000 / max(raw["requests"], 1), 3),
        foreign_cpu=round(foreign, 3),
    )


def combine(runs: list[WrkResult]) -> WrkResult:
    """One figure for several runs of a route: total requests over total time; for latency, the
    median of the runs' percentiles (percentiles cannot be merged exactly)."""
    if len(runs) == 1:
        return runs[0]
    requests = sum(r.requests for r in runs)
    seconds = sum(r.seconds for r in runs)
    statuses: dict[str, int] = {}
    errors: dict[str, int] = {}
    for run in runs:
        for code, n in run.statuses.items():
            statuses[code] = statuses.get(code, 0) + n
        for kind, n in run.socket_errors.items():
            errors[kind] = errors.get(kind, 0) + n
    return WrkResult(
        path=runs[0].path,
        requests=requests,
        seconds=round(seconds, 3),
        rps=round(requests / seconds, 1),
        p50_ms=statistics.median(r.p50_ms for r in runs),
        p99_ms=statistics.median(r.p99_ms for r in runs),
        mean_ms=round(sum(r.mean_ms * r.requests for r in runs) / requests, 3),
        max_ms=max(r.max_ms for r in runs),
        statuses=statuses,
        socket_errors=errors,
        server_cpu_ms=round(sum(r.server_cpu_ms * r.requests for r in runs) / requests, 3),
        foreign_cpu=round(sum(r.foreign_cpu * r.seconds for r in runs) / seconds, 3),
    )


def settle(env: dict[str, str]) -> int:
    """Wait for requests still in flight after wrk stopped to finish; return the row count."""
    time.sleep(1.0)
    return count_touches(env)


def check_log(log: Path) -> list[str]:
    """Problems found in the gunicorn log; when there are any, the log is kept in bench/results."""
    text = log.read_text(errors="replace")
    problems = []
    for needle in ("database is locked", "Traceback", "WORKER TIMEOUT"):
        n = text.count(needle)
        if n:
            problems.append(f"gunicorn log has {n} x {needle!r}")
    if problems:
        RESULTS.mkdir(parents=True, exist_ok=True)
        kept = RESULTS / "touch_write.gunicorn.log"
        shutil.copyfile(log, kept)
        problems.append(f"gunicorn log kept in {kept.relative_to(ROOT)}")
    return problems


def check_run(subject: WrkResult, baseline: WrkResult, added: int, slack: int) -> list[str]:
    """Correctness problems of the measured runs (``slack``: requests possibly in flight)."""
    problems = []
    for run in (subject, baseline):
        bad = {code: n for code, n in run.statuses.items() if not code.startswith("2")}
        if bad:
            problems.append(f"{run.path}: non-2xx answers {bad}")
        if any(run.socket_errors.values()):
            problems.append(f"{run.path}: socket errors {run.socket_errors}")
    created = subject.statuses.get("201", 0)
    if created != subject.ok:
        problems.append(f"{SUBJECT_PATH}: {subject.ok - created} 2xx answers were not 201")
    # wrk stops counting at the deadline; up to one request per connection may still commit.
    if not created <= added <= created + slack:
        problems.append(f"touches rows added {added} do not match the {created} 201s wrk counted")
    return problems


def code_hash() -> str:
    """A fingerprint of the code under test (webapp/ and bench/), to tell runs apart without git."""
    digest = hashlib.sha256()
    for path in sorted([*ROOT.glob("webapp/**/*.py"), *BENCH.glob("*.py")]):
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def machine_busy(seconds: float = 1.0) -> float:
    """Share of all CPUs busy over ``seconds`` (from /proc/stat)."""
    busy0, total0 = _proc_stat()
    time.sleep(seconds)
    busy1, total1 = _proc_stat()
    return (busy1 - busy0) / max(total1 - total0, 1)


def warn_if_busy() -> float:
    """Warn when other work is running now (the figures then mean little); return the share."""
    busy = machine_busy()
    if busy > 0.15:
        print(
            f"warning: {busy:.0%} of the CPUs are busy before the run: other work is running, "
            "so figures will be noisy (--rounds 3 alternates the routes to even it out)",
            file=sys.stderr,
            flush=True,
        )
    return round(busy, 3)


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = "unknown"
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
    }


def print_table(rows: list[tuple[str, ...]]) -> None:
    """Print rows as an aligned table (first row is the header)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        print(
            "  ".join(
                cell.ljust(w) if i == 0 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if n == 0:
            print("  ".join("-" * w for w in widths))


def write_json(name: str, data: dict[str, Any]) -> Path:
    """Write ``data`` to bench/results/<name>."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / name
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def load_mode(args: argparse.Namespace, folder: Path) -> int:
    """Serve both routes from one gunicorn, load each with wrk, check, report."""
    if shutil.which("wrk") is None:
        loud("wrk is not installed: run `apt-get install -y wrk` (Debian/Ubuntu) and try again")
        return 2
    busy_before = warn_if_busy()
    code = code_hash()
    env = make_instance(folder)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = folder / "gunicorn.log"
    lua = folder / "touch_write.lua"
    lua.write_text(WRK_LUA)
    proc = start_gunicorn(env, port, args.workers, log)
    try:
        wait_ready(base, proc)
        creds = register_over_http(base)
        print(
            f"gunicorn: {args.workers} sync workers on {base}; wrk: {args.connections} "
            f"connections, {args.threads} threads, {args.seconds} s per route "
            f"(+{args.warmup} s warm-up)",
            flush=True,
        )
        run_wrk(base, BARE_PATH, lua, creds, args.warmup, args, proc.pid)
        run_wrk(base, SUBJECT_PATH, lua, creds, args.warmup, args, proc.pid)
        baselines, subjects, added = [], [], 0
        for _ in range(args.rounds):
            baselines.append(run_wrk(base, BARE_PATH, lua, creds, args.seconds, args, proc.pid))
            before = settle(env)
            subjects.append(run_wrk(base, SUBJECT_PATH, lua, creds, args.seconds, args, proc.pid))
            added += settle(env) - before
    finally:
        stop(proc)

    baseline, subject = combine(baselines), combine(subjects)
    ratio = subject.rps / baseline.rps
    print_table(
        [
            ("route", "req/s", "p50 ms", "p99 ms", "requests", "server CPU ms/req", "other CPU"),
            *[
                (
                    r.path,
                    f"{r.rps:.0f}",
                    f"{r.p50_ms:.2f}",
                    f"{r.p99_ms:.2f}",
                    str(r.requests),
                    f"{r.server_cpu_ms:.2f}",
                    f"{r.foreign_cpu:.0%}",
                )
                for r in (subject, baseline)
            ],
        ]
    )
    print(f"ratio subject/baseline: {ratio:.3f}   (goal >= 0.4)")
    cpu_ratio = baseline.server_cpu_ms / subject.server_cpu_ms
    print(f"server CPU per request, baseline/subject: {cpu_ratio:.3f}")
    noisy = max(subject.foreign_cpu, baseline.foreign_cpu)
    if noisy > 0.05:
        loud(f"other processes used {noisy:.0%} of the CPUs during a run: the figures are noisy")
    if args.rounds > 1:
        per_round = [f"{s.rps / b.rps:.3f}" for s, b in zip(subjects, baselines, strict=True)]
        print(f"ratio per round: {', '.join(per_round)}")
    print(f"touches rows added: {added}; 201s counted by wrk: {subject.statuses.get('201', 0)}")

    slack = args.connections * args.rounds
    problems = check_run(subject, baseline, added, slack) + check_log(log)
    if code_hash() != code:
        problems.append("webapp/ or bench/ changed during the run: run it again")
    for problem in problems:
        loud(problem)
    if problems:
        loud("the figures above are NOT valid: the run had errors")
    path = write_json(
        "touch_write.json",
        {
            "mode": "load",
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": machine(),
            "settings": {
                "workers": args.workers,
                "connections": args.connections,
                "threads": args.threads,
                "seconds": args.seconds,
                "warmup": args.warmup,
                "rounds": args.rounds,
            },
            "code_sha256": code,
            "subject": asdict(subject),
            "baseline": asdict(baseline),
            "rounds": [
                {"subject": asdict(s), "baseline": asdict(b), "ratio": round(s.rps / b.rps, 4)}
                for s, b in zip(subjects, baselines, strict=True)
            ],
            "ratio": round(ratio, 4),
            "server_cpu_ratio": round(cpu_ratio, 4),
            "touches_rows_added": added,
            "cpu_busy_before": busy_before,
            "problems": problems,
        },
    )
    print(f"written: {path.relative_to(ROOT)}")
    return 1 if problems else 0


def in_process_mode(args: argparse.Namespace, folder: Path) -> int:
    """Time the two requests through Flask's test client, in this process."""
    busy_before = warn_if_busy()
    code = code_hash()
    env = make_instance(folder)
    for key in ("TOUCHBASE_INSTANCE_PATH", "TOUCHBASE_DATABASE_URL", "TOUCHBASE_SECRET_KEY"):
        os.environ[key] = env[key]
    sys.path[:0] = [str(ROOT), str(BENCH)]
    from bench_app import create_bench_app

    app = create_bench_app()
    client = app.test_client()
    token = client.get("/api/v1/csrf").json["csrf_token"]
    user = {"email": "bench@example.com", "password": PASSWORD, "name": "Bench", "timezone": "UTC"}
    resp = client.post("/api/v1/auth/register", json=user, headers={"X-CSRFToken": token})
    token = resp.json["csrf_token"]
    headers = {"X-CSRFToken": token}
    client_id = client.post("/api/v1/clients", json={"name": "C"}, headers=headers).json["id"]

    def post(path: str, i: int) -> None:
        body = {"id": str(uuid.uuid4()), "client_id": client_id, "outcome": OUTCOMES[i % 3]}
        resp = client.post(path, json=body, headers=headers)
        if resp.status_code != 201:
            raise RuntimeError(f"{path} answered {resp.status_code}: {resp.get_data(as_text=True)}")

    def timed(path: str, n: int) -> tuple[float, float]:
        """Wall and CPU seconds for ``n`` posts to ``path``."""
        start, cpu = time.perf_counter(), time.process_time()
        for i in range(n):
            post(path, i)
        return time.perf_counter() - start, time.process_time() - cpu

    n = args.requests
    for path in (BARE_PATH, SUBJECT_PATH):
        timed(path, min(200, n))  # warm-up
    # Alternate blocks of 100, so a machine that gets busier or quieter affects both alike. Each
    # block's figures are kept: their median shrugs off the bursts of other work on a busy box.
    blocks: dict[str, list[tuple[float, float]]] = {BARE_PATH: [], SUBJECT_PATH: []}
    done = 0
    while done < n:
        block = min(100, n - done)
        for path in (BARE_PATH, SUBJECT_PATH):
            wall, cpu = timed(path, block)
            blocks[path].append((wall / block * 1000, cpu / block * 1000))
        done += block

    def mean_ms(path: str, kind: int) -> float:
        sizes = [min(100, n - k * 100) for k in range(len(blocks[path]))]
        return sum(b[kind] * s for b, s in zip(blocks[path], sizes, strict=True)) / n

    def median_ms(path: str, kind: int) -> float:
        return statistics.median(b[kind] for b in blocks[path])

    bare_ms, subject_ms = mean_ms(BARE_PATH, 0), mean_ms(SUBJECT_PATH, 0)
    ratio = bare_ms / subject_ms
    figures = {
        path: {
            "wall_ms": round(mean_ms(path, 0), 4),
            "cpu_ms": round(mean_ms(path, 1), 4),
            "median_wall_ms": round(median_ms(path, 0), 4),
            "median_cpu_ms": round(median_ms(path, 1), 4),
        }
        for path in (SUBJECT_PATH, BARE_PATH)
    }
    print(f"in process, {n} requests each (Flask test client, SQLite WAL), ms per request:")
    print_table(
        [
            ("route", "wall", "CPU", "median wall", "median CPU"),
            *[
                (path, *(f"{v:.3f}" for v in figures[path].values()))
                for path in (SUBJECT_PATH, BARE_PATH)
            ],
        ]
    )
    print(f"ratio bare/subject: {ratio:.3f}   (goal >= 0.4)")
    median_ratio = median_ms(BARE_PATH, 1) / median_ms(SUBJECT_PATH, 1)
    print(f"ratio of the median CPU per block of 100, bare/subject: {median_ratio:.3f}")
    result: dict[str, Any] = {
        "mode": "in-process",
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(),
        "requests": n,
        "subject_ms": round(subject_ms, 4),
        "baseline_ms": round(bare_ms, 4),
        "ratio": round(ratio, 4),
        "median_cpu_ratio": round(median_ratio, 4),
        "figures": figures,
        "code_sha256": code,
        "cpu_busy_before": busy_before,
    }

    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
        for i in range(n):
            post(SUBJECT_PATH, i)
        profiler.disable()
        prof = RESULTS / "touch_write.prof"
        RESULTS.mkdir(parents=True, exist_ok=True)
        profiler.dump_stats(prof)
        stats = pstats.Stats(profiler).strip_dirs().sort_stats("cumulative")
        print(f"\ncProfile of {n} subject requests (cumulative; full data in {prof}):")
        stats.print_stats(40)
        result["profile"] = str(prof.relative_to(ROOT))

    app.extensions["sqlalchemy"].engine.dispose()
    path = write_json("touch_write_inprocess.json", result)
    print(f"written: {path.relative_to(ROOT)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the chosen mode in a temporary folder, removed at the end."""
    args = parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="touchbase-bench-"))
    try:
        return in_process_mode(args, folder) if args.in_process else load_mode(args, folder)
    finally:
        if args.keep:
            print(f"kept: {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
