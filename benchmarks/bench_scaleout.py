"""Scale-out load run: checkout evaluate through nginx with 1 and with 2 API processes.

The harness (deploy/harness/scaleout.py) starts the production topology on loopback:
nginx, 2 × `cartwheel serve`, 1 × `cartwheel worker`, 2 × `cartwheel runlog ingest`,
its own PostgreSQL cluster and its own append-only Redis. A shop is seeded with the
example Rust discount deployed through the admin API (the worker prepares it) backing an
automatic discount, and 40 carts of 10 lines that all qualify for it (one function run
per checkout). For each concurrency, `CheckoutLoad` (threads with keep-alive httpx
clients) posts `POST /storefront/carts/{id}/checkout` for a fixed time:

- first with one API process (the other stopped gracefully: nginx routes around it),
- then with both (nginx `least_conn`),

and prints checkouts/s, p50 / p99 latency, the ratio of two processes to one (the
baseline, measured in the same run), the CPU each API process used (from /proc), the
load generator's own CPU (it shares the same cores), and the machine's idle share. At
the end every run log is counted in PostgreSQL against the runs performed.

Bounded: LOAD_SECONDS per run, MAX_REQUESTS per run, loopback only.
Run: .venv/bin/python benchmarks/bench_scaleout.py
"""

from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "deploy" / "harness"))

from checkout_load import (  # noqa: E402
    CheckoutLoad,
    LoadResult,
    checkout_diagnostics,
    count_run_logs,
    seed_checkout_shop,
)
from scaleout import Harness, HarnessConfig  # noqa: E402

LOAD_SECONDS = 10.0
MAX_REQUESTS = 10_000
CONCURRENCIES = (4, 16)
TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int, *, reaped_children: bool = False) -> float:
    """User + system CPU seconds of `pid` so far; with `reaped_children`, plus those of
    its children that exited and were waited for (PostgreSQL's ended backends)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    own = int(fields[11]) + int(fields[12])
    children = int(fields[13]) + int(fields[14]) if reaped_children else 0
    return (own + children) / TICKS


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of `pid` and its descendants, live (PostgreSQL's backends, nginx's
    workers) or exited and reaped."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError):
            continue
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, ppid in parents.items() if ppid == parent]
        tree.update(children)
        frontier.extend(children)
    total = 0.0
    for member in tree:
        try:
            total += process_cpu_s(member, reaped_children=True)
        except (OSError, ValueError):
            continue
    return total


def rss_mb(pid: int) -> float:
    """Resident memory of `pid` in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def machine_idle_ticks() -> tuple[int, int]:
    """(idle, total) jiffies of all CPUs since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return values[3] + values[4], sum(values)


@dataclass
class Run:
    """One load run and what it cost."""

    apis: int
    concurrency: int
    result: LoadResult
    api_cpu: list[float]
    """CPU cores each API process used on average (CPU seconds / wall seconds)."""
    client_cpu: float
    support_cpu: dict[str, float]
    """CPU cores used by PostgreSQL, Redis, nginx, the ingesters (with their children)."""
    machine_idle: float
    """Share of the machine's 2 cores left idle."""


def measure(harness: Harness, token: str, carts: tuple[int, ...], apis: int, c: int) -> Run:
    pids = [p.pid for p in harness.apis[:apis] if p.pid is not None]
    cpu0 = [process_cpu_s(pid) for pid in pids]
    support = {
        name: [p.pid for p in procs if p is not None and p.pid is not None]
        for name, procs in (
            ("postgres", [harness.postgres]),
            ("redis", [harness.redis]),
            ("nginx", [harness.lb]),
            ("ingest", harness.ingesters),
        )
    }
    support0 = {name: sum(tree_cpu_s(pid) for pid in pids_) for name, pids_ in support.items()}
    client0 = time.process_time()
    idle0, total0 = machine_idle_ticks()
    started = time.monotonic()
    result = CheckoutLoad(
        harness.url,
        token,
        carts,
        concurrency=c,
        duration_s=LOAD_SECONDS,
        max_requests=MAX_REQUESTS,
    ).run()
    wall = time.monotonic() - started
    idle1, total1 = machine_idle_ticks()
    return Run(
        apis=apis,
        concurrency=c,
        result=result,
        api_cpu=[(process_cpu_s(pid) - c0) / wall for pid, c0 in zip(pids, cpu0, strict=True)],
        client_cpu=(time.process_time() - client0) / wall,
        support_cpu={
            name: (sum(tree_cpu_s(pid) for pid in pids_) - support0[name]) / wall
            for name, pids_ in support.items()
        },
        machine_idle=(idle1 - idle0) / max(total1 - total0, 1),
    )


def line(run: Run, baseline: Run | None) -> str:
    r = run.result
    ratio = "" if baseline is None else f"  x{r.throughput / baseline.result.throughput:.2f}"
    cpu = "+".join(f"{c:.2f}" for c in run.api_cpu)
    return (
        f"{run.apis} API  c={run.concurrency:<3} {r.throughput:7.1f} checkouts/s{ratio:7} "
        f"p50 {r.latency_ms(0.5):6.1f} ms  p99 {r.latency_ms(0.99):6.1f} ms  "
        f"ok {len(r.ok):5} failed {len(r.failed)}  API CPU {cpu} cores  "
        f"client CPU {run.client_cpu:.2f}  idle {run.machine_idle:.0%}\n"
        f"{'':14}other CPU: "
        + ", ".join(f"{name} {cores:.2f}" for name, cores in run.support_cpu.items())
    )


def main() -> None:
    config = HarnessConfig(
        database_url=None,
        redis_url=None,
        api_processes=2,
        workers=1,
        ingesters=2,
        redis_appendonly=True,
        startup_timeout=60,
    )
    with Harness(config) as harness:
        shop = seed_checkout_shop(harness.database_url, harness.url, carts=40, lines_per_cart=10)
        document = checkout_diagnostics(harness.url, shop, shop.cart_ids[0])
        functions = document["diagnostics"]["functions"]
        assert [f["status"] for f in functions] == ["succeeded"], functions
        performed = 1  # the diagnostic checkout's run
        # Warm both processes (module cache, compiled input query, pools).
        for i in range(2):
            warm = CheckoutLoad(
                harness.api_url(i),
                shop.storefront_token,
                shop.cart_ids,
                concurrency=2,
                duration_s=2,
                max_requests=200,
            ).run()
            performed += len(warm.ok)

        print(
            f"harness: nginx → cartwheel serve × 2, worker × 1, ingest × 2, own PostgreSQL + "
            f"Redis (appendonly); {os.cpu_count()} cores; load {os.getloadavg()[0]:.2f}"
        )
        print(
            f"checkout: 10-line cart, 1 function (Rust tiered discount); "
            f"{LOAD_SECONDS:.0f} s per run"
        )
        results: list[Run] = []
        for c in CONCURRENCIES:
            harness.kill_api(1, signal.SIGTERM)
            one = measure(harness, shop.storefront_token, shop.cart_ids, 1, c)
            harness.start_api(1)
            time.sleep(2.5)  # nginx's fail_timeout for the restarted process
            two = measure(harness, shop.storefront_token, shop.cart_ids, 2, c)
            print(line(one, None))
            print(line(two, one))
            results += [one, two]

        drain_started = time.monotonic()
        harness.wait_runlogs_drained(timeout=120)
        drained = time.monotonic() - drain_started
        stored = count_run_logs(harness.database_url, shop.shop_id)
        performed += sum(len(r.result.ok) for r in results)
        failed = sum(len(r.result.failed) for r in results)
        rss = ", ".join(f"{rss_mb(p.pid):.0f}" for p in harness.apis if p.pid is not None)
        print(
            f"run logs: {stored.rows} rows, {stored.distinct} distinct, for {performed} runs "
            f"performed ({failed} requests failed); backlog drained {drained:.1f} s after the "
            f"last run; {'EQUAL' if stored.rows == stored.distinct == performed else 'MISMATCH'}"
        )
        print(f"API process RSS after the runs: {rss} MiB")


if __name__ == "__main__":
    main()
