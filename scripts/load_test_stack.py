"""The issue 19 load test, one command: everything on this machine, per broker and database.

For each configuration it starts a fresh stack the way the README runs it (gunicorn with
``gunicorn.conf.py``, ONE scoring worker ``celery -A workers worker -Q scoring --concurrency 1
--prefetch-multiplier 64``), loads the 30 SAF items with their trained models, runs
``scripts/load_test.py``'s two phases (single answers one at a time, then a burst), checks the
database (every answer scored, none lost, none taken or scored twice) and stops everything it
started, also on failure or Ctrl-C. It writes a Markdown table to ``--out``.

    .venv/bin/python scripts/load_test_stack.py \\
        [--configs redis-postgres,rabbitmq-postgres,embedded] [--burst 2000] [--single 50] \\
        [--redis-url redis://127.0.0.1:6379/0] [--amqp-url amqp://guest:guest@127.0.0.1:5672//] \\
        [--pg-url postgres://postgres@127.0.0.1:5432/scorebridge_load] \\
        [--saf ../shared/datasets/saf] [--out benchmarks/issue19-load.md]

Models: the first run imports the SAF items into ``var/loadtest/models`` (SQLite) and trains
every item (``train_items --kind auto``; the gaming check after training uses one answer per
attack, ``SCOREBRIDGE_GAMING_ANSWERS=1``: it is not what this measures); later runs reuse the
trained versions and artifacts (the artifact store is that folder's ``artifacts``; each
configuration loads the items and versions as a fixture). Training takes about 10 minutes on
a quiet 2-core machine (35 on a busy one), then each configuration about 3 minutes.

Destructive only on what it names: the PostgreSQL database of ``--pg-url`` is dropped and
created again, and the ``scoring`` queue of the Redis and RabbitMQ brokers is purged.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import load_test  # noqa: E402  (scripts/load_test.py, next to this file)

PY = str(ROOT / ".venv" / "bin" / "python")
BIN = ROOT / ".venv" / "bin"
CONFIGS = ("redis-postgres", "rabbitmq-postgres", "embedded")
PORT = 8765
SAF_ITEMS = 30


def run(cmd: list[str], env: Mapping[str, str], **kwargs: object) -> str:
    """A command to its end; its output, or an error that shows it."""
    done = subprocess.run(cmd, env=dict(env), cwd=ROOT, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return str(done.stdout)


def base_env(var: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    env.update(
        {
            "SCOREBRIDGE_VAR_DIR": str(var),
            "SCOREBRIDGE_LOG_DIR": str(var / "log"),
            "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            # The load script reads thousands of results a minute; the default limit is per user.
            "SCOREBRIDGE_API_RATE": "1000000/minute",
        }
    )
    return env


def trained_models(models: Path, saf: Path) -> Path:
    """The fixture of the SAF items and their active versions, training what is missing."""
    env = base_env(models)
    env["SCOREBRIDGE_GAMING_ANSWERS"] = "1"
    manage = [PY, "manage.py"]
    run([*manage, "migrate", "--noinput", "-v", "0"], env)
    count = "from scoring_plugin.models import ModelVersion as V; print(V.objects.filter(is_active=True, status='ready').count())"
    if int(run([*manage, "shell", "-c", count], env).split()[-1]) < SAF_ITEMS:
        run([*manage, "import_items", str(saf)], env)
        print("training the SAF items' models (reused by later runs) ...", flush=True)
        subprocess.run(
            [*manage, "train_items", "--only-untrained", "--kind", "auto"],
            env=env,
            cwd=ROOT,
            check=True,
        )
    fixture = models / "fixture.json"
    run(
        [*manage, "dumpdata", "scoring_plugin.Item", "scoring_plugin.ModelVersion"]
        + ["--output", str(fixture)],
        env,
    )
    return fixture


class Stack:
    """The processes of one configuration; stopped (their whole process groups) on exit."""

    def __init__(self, env: Mapping[str, str], var: Path) -> None:
        self.env = dict(env)
        self.var = var
        self.processes: list[subprocess.Popen[bytes]] = []
        self.groups: dict[str, int] = {}  # name -> process group (= the started process's pid)

    def start(self, name: str, cmd: list[str]) -> None:
        log = open(self.var / "log" / f"{name}.log", "wb")  # noqa: SIM115  (closed with the process)
        self.processes.append(
            subprocess.Popen(
                cmd, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )  # fmt: skip
        self.groups[name] = self.processes[-1].pid

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for process in self.processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.processes = []

    def check_alive(self) -> None:
        for process in self.processes:
            if process.poll() is not None:
                raise RuntimeError(
                    f"{process.args!r} exited ({process.returncode}); see {self.var}/log"
                )


TICKS = os.sysconf("SC_CLK_TCK")
BROKER_PROGRAMS = ("redis-server", "beam.smp", "epmd", "erl_child_setup")
COMPONENTS = ("web", "scoring-worker", "broker", "database", "load script", "rest of machine")


def cpu_seconds(stack: Stack) -> dict[str, float]:
    """CPU seconds used so far, per component: the web's and the worker's process groups, the
    broker's and PostgreSQL's processes (by program name), this script (its client threads), and
    the rest of the machine (all CPU time in /proc/stat minus those)."""
    by_group = {pgid: name for name, pgid in stack.groups.items()}
    out = dict.fromkeys(COMPONENTS, 0.0)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            raw = stat.read_text()
        except OSError:  # the process ended meanwhile
            continue
        program = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2 :].split()
        seconds = (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime
        group = by_group.get(int(fields[2]))
        if group is not None:
            out[group] += seconds
        elif program in BROKER_PROGRAMS:
            out["broker"] += seconds
        elif program == "postgres":
            out["database"] += seconds
    own = os.times()
    out["load script"] = own.user + own.system
    with open("/proc/stat") as f:
        # the first line: aggregate jiffies; CPU time is everything but idle and iowait
        values = [int(v) for v in f.readline().split()[1:8]]
    machine = (sum(values) - values[3] - values[4]) / TICKS
    out["rest of machine"] = machine - sum(v for k, v in out.items() if k != "rest of machine")
    return out


def wait_for(what: str, ready: object, stack: Stack, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        stack.check_alive()
        if ready():  # type: ignore[operator]
            return
        time.sleep(0.5)
    raise RuntimeError(f"{what} not ready after {seconds:.0f} s; see {stack.var}/log")


def config_env(name: str, var: Path, args: argparse.Namespace) -> dict[str, str]:
    env = base_env(var)
    env["SCOREBRIDGE_ARTIFACTS_DIR"] = str(Path(args.models) / "artifacts")
    if name.endswith("-postgres"):
        env["DATABASE_URL"] = args.pg_url
    env["CELERY_BROKER_URL"] = {
        "redis-postgres": args.redis_url,
        "rabbitmq-postgres": args.amqp_url,
        "embedded": "filesystem://",
    }[name]
    return env


def fresh_database(env: Mapping[str, str], fixture: Path) -> str:
    """Tables, the items and versions, an API token; returns the token."""
    if "DATABASE_URL" in env:
        url = urlparse(env["DATABASE_URL"])
        conn = ["-h", url.hostname or "127.0.0.1", "-p", str(url.port or 5432)]
        conn += ["-U", url.username or "postgres"]
        pg_env = {**env, "PGPASSWORD": url.password or ""}
        db = url.path.lstrip("/")
        run(["dropdb", *conn, "--if-exists", "--force", db], pg_env)
        run(["createdb", *conn, db], pg_env)
    manage = [PY, "manage.py"]
    run([*manage, "migrate", "--noinput", "-v", "0"], env)
    run([*manage, "loaddata", str(fixture), "-v", "0"], env)
    login = run([*manage, "ensure_admin", "--new-password", "--new-token"], env)
    match = re.search(r"^api token: (\S+)$", login, re.MULTILINE)
    if not match:
        raise RuntimeError(f"ensure_admin printed no token:\n{login}")
    return match.group(1)


DB_CHECK = """
import json
from collections import Counter
from scoring_plugin.models import Submission
rows = list(Submission.objects.values_list("status", "attempts", "scored_at"))
print(json.dumps({
    "total": len(rows),
    "statuses": dict(Counter(r[0] for r in rows)),
    "taken_twice": sum(1 for r in rows if r[1] > 1),
    "scored_without_time": sum(1 for r in rows if r[0] == "scored" and r[2] is None),
}))
"""


def database_check(env: Mapping[str, str], var: Path) -> dict[str, object]:
    """What the database holds, and how often the worker logged each answer as scored."""
    found: dict[str, object] = json.loads(
        run([PY, "manage.py", "shell", "-c", DB_CHECK], env).strip().splitlines()[-1]
    )
    logged = Counter(
        re.findall(
            r"submission=(\S+) item=\S+ status=scored",
            (var / "log" / "scorebridge.log").read_text(errors="replace"),
        )
    )
    found["scored_twice_in_log"] = sum(1 for n in logged.values() if n > 1)
    return found


def measure(name: str, args: argparse.Namespace, fixture: Path) -> dict[str, object]:
    var = ROOT / "var" / "loadtest" / f"run-{name}"
    subprocess.run(["rm", "-rf", str(var)], check=True)
    (var / "log").mkdir(parents=True)
    env = config_env(name, var, args)
    token = fresh_database(env, fixture)
    if name != "embedded":
        run([str(BIN / "celery"), "-A", "workers", "purge", "-f", "-Q", "scoring"], env)
    stack = Stack(env, var)
    try:
        load_before = os.getloadavg()
        stack.start("scoring-worker", [
            str(BIN / "celery"), "-A", "workers", "worker", "-Q", "scoring", "--concurrency", "1",
            "--prefetch-multiplier", "64", "-n", f"loadtest-{name}@%h", "--loglevel", "INFO",
        ])  # fmt: skip
        stack.start("web", [
            str(BIN / "gunicorn"), "scorebridge.wsgi", "-c", "gunicorn.conf.py",
            "--bind", f"127.0.0.1:{PORT}", "--workers", "2", "--timeout", "60",
            "--access-logfile", str(var / "log" / "access.log"),
        ])  # fmt: skip
        url = f"http://127.0.0.1:{PORT}"
        wait_for("web", lambda: _healthy(url), stack, 120)
        log = var / "log" / "scorebridge.log"
        wait_for(
            "scoring worker",
            lambda: log.exists() and "scoring engine ready" in log.read_text(errors="replace"),
            stack,
            900,
        )
        client = load_test.Client(url, token)
        items = load_test.select_items(client.items(), "saf-*")
        if len(items) != SAF_ITEMS:
            raise RuntimeError(f"{len(items)} SAF items have an active model, not {SAF_ITEMS}")
        rng = load_test.random.Random(7)
        texts = load_test.answers_for(items, str(Path(args.saf) / "responses.csv"), None)
        print(f"[{name}] {len(items)} items; single answers, then a burst of {args.burst}")
        single = load_test.low_load(client, texts, args.single, rng) if args.single else {}
        deadline = time.monotonic() + args.deadline
        cpu_before = cpu_seconds(stack)
        snapshots: list[dict[str, float]] = []
        burst = load_test.burst(
            client, texts, args.burst, rng, deadline, lambda: snapshots.append(cpu_seconds(stack))
        )
        cpu_after = cpu_seconds(stack)
        load_after = os.getloadavg()
    finally:
        stack.stop()
    check = database_check(env, var)
    return {
        "name": name,
        "single": single,
        "burst": burst,
        "db": check,
        "expected": args.single + args.burst,
        "load": (load_before[0], load_after[0]),
        # CPU ms per answer of the burst, per component (the polling of wait_all included)
        "cpu_ms": {
            **{k: 1000 * (cpu_after[k] - cpu_before[k]) / args.burst for k in COMPONENTS},
            # the web's share while answers were being submitted: the POSTs alone
            "web: submit": 1000 * (snapshots[0]["web"] - cpu_before["web"]) / args.burst,
        },
    }


def _healthy(url: str) -> bool:
    try:
        return requests.get(f"{url}/health/", timeout=2).status_code == 200
    except requests.RequestException:
        return False


LABELS = {
    "redis-postgres": "Redis + PostgreSQL",
    "rabbitmq-postgres": "RabbitMQ + PostgreSQL",
    "embedded": "embedded (SQLite + filesystem broker)",
}


def table(results: list[dict[str, object]]) -> str:
    lines = [
        "| configuration | sustained answers/s (burst) | burst p50 / p95 ms | single p50 / p95 ms (stored) | single p50 / p95 ms (client, polling) | scored / expected | lost | failed | taken twice | scored twice (log) | load avg start / end |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        b, s, db = r["burst"], r["single"], r["db"]  # type: ignore[misc]
        statuses = db["statuses"]  # type: ignore[index]
        lines.append(
            f"| {LABELS[r['name']]} | {b.get('per_s', 0):.0f} | "  # type: ignore[attr-defined,index]
            f"{b.get('p50_ms', 0):.0f} / {b.get('p95_ms', 0):.0f} | "  # type: ignore[attr-defined]
            f"{s.get('stored_p50_ms', 0):.0f} / {s.get('stored_p95_ms', 0):.0f} | "  # type: ignore[attr-defined]
            f"{s.get('client_p50_ms', 0):.0f} / {s.get('client_p95_ms', 0):.0f} | "  # type: ignore[attr-defined]
            f"{statuses.get('scored', 0)} / {r['expected']} | {b['lost']:.0f} | "  # type: ignore[index]
            f"{statuses.get('failed', 0)} | {db['taken_twice']} | {db['scored_twice_in_log']} | "  # type: ignore[index]
            f"{r['load'][0]:.1f} / {r['load'][1]:.1f} |"  # type: ignore[index]
        )
    return "\n".join(lines)


def cpu_table(results: list[dict[str, object]]) -> str:
    lines = [
        "| configuration | web: submit (POSTs) | "
        + " | ".join(COMPONENTS)
        + " | total (this stack) |",
        "|---|" + "---|" * (len(COMPONENTS) + 2),
    ]
    for r in results:
        cpu = r["cpu_ms"]  # type: ignore[index]
        own = sum(cpu[k] for k in COMPONENTS if k != "rest of machine")  # type: ignore[index]
        cells = " | ".join(f"{cpu[k]:.1f}" for k in COMPONENTS)  # type: ignore[index]
        submit = cpu["web: submit"]  # type: ignore[index]
        lines.append(f"| {LABELS[r['name']]} | {submit:.1f} | {cells} | {own:.1f} |")
    return "\n".join(lines)


def write_report(path: Path, results: list[dict[str, object]], command: str) -> None:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    text = (
        "# Issue 19: load test, per broker and database\n\n"
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC at commit {commit} on "
        f"{os.cpu_count()} cores (load average in the table: 1-minute, at the start and end "
        "of each configuration). Everything on this machine: gunicorn (2 workers), one "
        "scoring worker, the broker, the database and the load script.\n\n"
        f"    {command}\n\n"
        "Single: answers sent one at a time, each waited for (stored = created_at to "
        "scored_at; client = submit until a poll read the score). Burst: answers sent by 16 "
        "threads at once; sustained = answers scored / (last scored_at - first created_at). "
        "Taken twice = rows a worker took more than once (attempts > 1); scored twice = "
        "answers the worker logged as scored more than once.\n\n"
        f"{table(results)}\n\n"
        "CPU per answer of the burst (ms; from the first submit until every answer was read "
        "back as scored, the client's polling included; 'web: submit' is the web's part "
        "while the answers were being submitted, i.e. the POSTs, and is included in 'web'; "
        "'rest of machine' is CPU time of anything else running meanwhile):\n\n"
        f"{cpu_table(results)}\n"
    )
    path.write_text(text, encoding="utf-8")


@contextmanager
def stopped_by_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP end the run like Ctrl-C: every process it started is stopped."""

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--burst", type=int, default=2000)
    parser.add_argument("--single", type=int, default=50)
    parser.add_argument("--deadline", type=float, default=900.0, help="seconds per burst")
    parser.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument(
        "--amqp-url", default=os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
    )
    parser.add_argument("--pg-url", default="postgres://postgres@127.0.0.1:5432/scorebridge_load")
    parser.add_argument("--saf", default=str(ROOT.parent / "shared" / "datasets" / "saf"))
    parser.add_argument("--models", default=str(ROOT / "var" / "loadtest" / "models"))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "issue19-load.md"))
    args = parser.parse_args()
    names = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = sorted(set(names) - set(CONFIGS))
    if unknown:
        parser.error(f"unknown configuration(s) {unknown}; choose from {', '.join(CONFIGS)}")
    if not (Path(args.saf) / "items.csv").exists():
        parser.error(f"--saf {args.saf} holds no items.csv")
    results = []
    with stopped_by_signals():
        fixture = trained_models(Path(args.models), Path(args.saf))
        for name in names:
            results.append(measure(name, args, fixture))
            print(table(results[-1:]), cpu_table(results[-1:]), sep="\n", flush=True)
    write_report(Path(args.out), results, " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]))
    print(table(results), cpu_table(results), sep="\n")
    ok = all(
        r["db"]["statuses"].get("scored", 0) == r["expected"]  # type: ignore[index]
        and r["db"]["taken_twice"] == 0  # type: ignore[index]
        and r["db"]["scored_twice_in_log"] == 0  # type: ignore[index]
        for r in results
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
