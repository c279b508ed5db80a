"""Runner benchmark: our run() against the raw wasmtime-py floor, measured in one run.

    .venv/bin/python benchmarks/bench_runner.py

Prints per-run cost (median of batches) of:
- the raw wasmtime-py floor: fresh Store + WasiConfig (stdin/stdout files prepared once)
  + instantiate (pre-linked) + `_start`, with wasmtime's own WASI, nothing else;
- our `run()` on the same module and input, as a ratio to that floor (target <= 1.5x),
  for an echo module and for a realistic discount (C, tests/sdk/wasm) on a ~5 kB cart;
- the Extism path (fresh plugin per run) for the same discount, and Extism's own floor;
- loading a precompiled artifact from the on-disk cache vs compiling (target <= 5 %);
- 2 threads vs 1 (throughput);
- RSS before/after 10,000 runs;
- wall time of a run that burns the default 11 M instructions, alone and under load
  (the measurement behind the default deadline, Limits.timeout_ms).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import wasmtime

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from functions_sdk import Limits  # noqa: E402
from functions_sdk.runner import ModuleCache, load_module, run  # noqa: E402
from functions_sdk.runner.engine import WASMTIME_VERSION, get_engine  # noqa: E402

WASM = ROOT / "tests" / "sdk" / "wasm"
ECHO = bytes(wasmtime.wat2wasm((WASM / "echo.wat").read_text()))
DISCOUNT = (WASM / "discount_wasi.wasm").read_bytes()
DISCOUNT_EXTISM = (WASM / "discount_extism.wasm").read_bytes()
RUST_EXAMPLE = ROOT / "examples" / "discount-function" / "discount-function.wasm"


def cart(lines: int) -> bytes:
    return orjson.dumps(
        {
            "cart": {
                "lines": [
                    {
                        "id": f"gid://cartwheel/CartLine/{i}",
                        "quantity": i % 4,
                        "cost": {"subtotalAmount": {"amount": "12.50", "currencyCode": "USD"}},
                        "merchandise": {
                            "__typename": "ProductVariant",
                            "id": f"gid://cartwheel/ProductVariant/{i}",
                            "product": {"hasAnyTag": i % 2 == 0},
                        },
                    }
                    for i in range(lines)
                ]
            },
            "discount": {"metafield": {"jsonValue": {"percentage": 15, "minimumQuantity": 2}}},
        }
    )


CART = cart(22)


def per_call_us(fn: Callable[[], object], *, batch: int = 200, batches: int = 7) -> float:
    """Best (minimum) over `batches` of the mean cost of `fn` in a batch, in microseconds.

    The minimum is the least noisy estimate on a shared machine (as `timeit` advises).
    """
    return compare([fn], batch=batch, batches=batches)[0]


def compare(fns: list[Callable[[], object]], *, batch: int = 200, batches: int = 9) -> list[float]:
    """Per-call cost of each of `fns`, measured in interleaved batches so that load from
    other processes hits them alike; the best batch of each, in microseconds."""
    for fn in fns:
        for _ in range(max(1, batch // 4)):
            fn()
    best = [float("inf")] * len(fns)
    for _ in range(batches):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            for _ in range(batch):
                fn()
            best[i] = min(best[i], (time.perf_counter() - start) / batch * 1e6)
    return best


class RawFloor:
    """The cheapest way to run a WASI command with wasmtime-py itself."""

    def __init__(self, wasm: bytes, input: bytes, *, fuel: int = 11_000_000) -> None:
        self.fuel = fuel
        config = wasmtime.Config()
        config.consume_fuel = True
        config.epoch_interruption = True
        self.engine = wasmtime.Engine(config)
        linker = wasmtime.Linker(self.engine)
        linker.define_wasi()
        self.pre = linker.instantiate_pre(wasmtime.Module(self.engine, wasm))
        self.dir = tempfile.mkdtemp(prefix="cw-bench-")
        self.stdin = os.path.join(self.dir, "stdin")
        self.stdout = os.path.join(self.dir, "stdout")
        Path(self.stdin).write_bytes(input)

    def __call__(self) -> None:
        store = wasmtime.Store(self.engine)
        wasi = wasmtime.WasiConfig()
        wasi.stdin_file = self.stdin
        wasi.stdout_file = self.stdout
        store.set_wasi(wasi)
        store.set_fuel(self.fuel)
        store.set_epoch_deadline(1_000_000)
        instance = self.pre.instantiate(store)
        start = instance.exports(store)["_start"]
        assert isinstance(start, wasmtime.Func)
        try:
            start(store)
        except wasmtime.ExitTrap as exit:
            if exit.code != 0:
                raise

    def output(self) -> bytes:
        return Path(self.stdout).read_bytes()


def section(title: str) -> None:
    print(f"\n== {title}")


def floor_vs_run(name: str, wasm: bytes, input: bytes) -> None:
    floor = RawFloor(wasm, input)
    module = load_module(wasm)
    result = run(module, input)
    assert result.ok, result.message
    floor()
    assert floor.output() == result.output, "floor and run() disagree"
    f, r = compare([floor, lambda: run(module, input)])
    print(
        f"{name:<34} floor {f:8.1f} us   run() {r:8.1f} us   ratio {r / f:5.2f}x"
        f"   (fuel {result.fuel_consumed:,}, input {len(input):,} B)"
    )


def extism_path() -> None:
    from extism import Plugin

    from functions_sdk.runner.extism_abi import compiled_plugin

    module = load_module(DISCOUNT_EXTISM)
    wasi_module = load_module(DISCOUNT)
    result = run(module, CART)
    assert result.ok, result.message
    assert result.output == run(wasi_module, CART).output
    compiled = compiled_plugin(module, Limits())
    sdk, ours, wasi = compare(
        [
            lambda: Plugin(compiled, functions=[]).call("run", CART),
            lambda: run(module, CART),
            lambda: run(wasi_module, CART),
        ],
        batch=100,
    )
    print(f"Extism SDK floor (fresh Plugin + call)  {sdk:8.1f} us")
    print(f"run() Extism-ABI discount               {ours:8.1f} us   ratio {ours / sdk:5.2f}x")
    print(f"run() WASI discount (same input)        {wasi:8.1f} us")


def cache_vs_compile() -> None:
    engine = get_engine(Limits().stack_bytes)
    for name, wasm in (("C discount", DISCOUNT), ("Rust example", RUST_EXAMPLE.read_bytes())):
        compile_us = per_call_us(
            lambda w=wasm: wasmtime.Module(engine.engine, w), batch=3, batches=5
        )
        with tempfile.TemporaryDirectory() as directory:
            load_module(wasm, cache=ModuleCache(directory))
            sha = load_module(wasm).sha256

            def from_disk(w: bytes = wasm, d: str = directory, s: str = sha) -> None:
                cache = ModuleCache(d)  # empty in-process LRU: forces the disk path
                cache.load(engine, w, s)
                assert cache.stats.disk_hits == 1

            disk_us = per_call_us(from_disk, batch=20, batches=5)
            warm = ModuleCache(directory)
            warm.load(engine, wasm, sha)
            memory_us = per_call_us(
                lambda c=warm, w=wasm, s=sha: c.load(engine, w, s),
                batch=200,
            )
        print(
            f"{name:<13} ({len(wasm) / 1000:6.1f} kB)  compile {compile_us / 1000:7.2f} ms"
            f"   disk cache {disk_us / 1000:6.3f} ms ({disk_us / compile_us:6.2%} of compile)"
            f"   memory cache {memory_us:5.1f} us"
        )


BUSY = bytes(
    wasmtime.wat2wasm(
        """(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "{}")
  (func (export "_start") (local $i i32)
    (loop $l (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 10000000))))
    (i32.store (i32.const 0) (i32.const 64)) (i32.store (i32.const 4) (i32.const 2))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"""
    )
)


def scaling(
    make_work: Callable[[], Callable[[], object]], n: int
) -> tuple[float, float, float, float, float]:
    """Runs/s with 1 and 2 threads (best of 3 interleaved rounds), process CPU time per
    run with 1 and 2 threads (in us; independent of how much CPU the machine gives us:
    equal figures mean two threads add no per-run cost such as GIL convoys), and process
    CPU / wall with 2 threads (how much of the 2 cores we actually got)."""
    works = [make_work(), make_work()]

    def loop(work: Callable[[], object]) -> None:
        for _ in range(n):
            work()

    loop(works[0])
    one = two = float("inf")
    cpu_one = cpu_two = float("inf")
    cpu_share = 0.0
    for _ in range(3):
        start, cpu = time.perf_counter(), time.process_time()
        loop(works[0])
        one = min(one, time.perf_counter() - start)
        cpu_one = min(cpu_one, (time.process_time() - cpu) / n * 1e6)
        pair = [threading.Thread(target=loop, args=(w,)) for w in works]
        start, cpu = time.perf_counter(), time.process_time()
        for t in pair:
            t.start()
        for t in pair:
            t.join()
        wall = time.perf_counter() - start
        used = time.process_time() - cpu
        cpu_two = min(cpu_two, used / (2 * n) * 1e6)
        if wall < two:
            two, cpu_share = wall, used / wall
    return n / one, 2 * n / two, cpu_one, cpu_two, cpu_share


def threads() -> None:
    for name, wasm, input, limits, n in (
        ("C discount, 5 kB cart", DISCOUNT, CART, Limits(), 1_000),
        ("compute-bound, 40 M instructions", BUSY, b"{}", Limits(instructions=10**8), 10),
    ):
        module = load_module(wasm)

        def ours(
            m: object = module, i: bytes = input, lim: Limits = limits
        ) -> Callable[[], object]:
            return lambda: run(m, i, lim)  # type: ignore[arg-type]

        def floor(w: bytes = wasm, i: bytes = input, lim: Limits = limits) -> Callable[[], object]:
            return RawFloor(w, i, fuel=lim.instructions)

        print(name)
        for label, make in (("raw floor", floor), ("run()", ours)):
            one, two, cpu_one, cpu_two, share = scaling(make, n)
            print(
                f"  {label:<10} 1 thread {one:6.0f}/s  2 threads {two:6.0f}/s"
                f"  speed-up {two / one:4.2f}x  CPU/run {cpu_one:7.0f} -> {cpu_two:7.0f} us"
                f"  (got {share:4.2f} of 2 cores)"
            )


def gil() -> None:
    """Python progress of the main thread while another thread runs wasm, relative to
    while it sleeps. Were the GIL held during wasm, it would be ~0 %; anything well above
    shows it is released (the exact figure depends on how much CPU the machine gives
    the process, since both threads then compete for it)."""
    module = load_module(BUSY)
    limits = Limits(instructions=10**9, timeout_ms=60_000)

    def progress(background: Callable[[], object]) -> float:
        done = threading.Event()

        def target() -> None:
            background()
            done.set()

        thread = threading.Thread(target=target)
        start = time.perf_counter()
        thread.start()
        count = 0
        while not done.is_set():
            count += 1
        thread.join()
        return count / (time.perf_counter() - start)

    wasm_run = progress(lambda: [run(module, b"{}", limits) for _ in range(10)])
    sleeping = progress(lambda: time.sleep(0.5))
    print(f"main-thread Python progress while a run executes: {wasm_run / sleeping:5.0%} of idle")


def rss() -> None:
    def rss_mb() -> float:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6

    module = load_module(DISCOUNT)
    extism = load_module(DISCOUNT_EXTISM)
    trap = load_module(
        bytes(
            wasmtime.wat2wasm(
                '(module (memory (export "memory") 1) (func (export "_start") unreachable))'
            )
        )
    )
    mix = (module, trap, module, extism)  # a quarter through Extism, a quarter trapping
    for i in range(1_000):
        run(mix[i % 4], CART)
    before = rss_mb()
    for i in range(10_000):
        run(mix[i % 4], CART)
    after = rss_mb()
    print(
        f"RSS before {before:7.1f} MB   after 10,000 runs {after:7.1f} MB"
        f"   delta {after - before:+.1f} MB"
    )


def deadline() -> None:
    spin = load_module(
        bytes(
            wasmtime.wat2wasm(
                '(module (memory (export "memory") 1) (func (export "_start") (loop $l (br $l))))'
            )
        )
    )
    limits = Limits(timeout_ms=60_000)
    alone = [run(spin, b"{}", limits).duration_ms for _ in range(5)]
    loaded: list[float] = []

    def worker() -> None:
        for _ in range(10):
            loaded.append(run(spin, b"{}", limits).duration_ms)

    crowd = [threading.Thread(target=worker) for _ in range(4)]  # 4 threads on 2 cores
    for t in crowd:
        t.start()
    for t in crowd:
        t.join()
    worst = max(loaded)
    print(
        f"11,000,000 instructions: alone median {statistics.median(alone):6.1f} ms; "
        f"4 threads on {os.cpu_count()} cores median {statistics.median(loaded):6.1f} ms, "
        f"max {worst:6.1f} ms\ndefault deadline {Limits().timeout_ms} ms = "
        f"{Limits().timeout_ms / worst:4.1f}x the worst case under load"
    )


def main() -> None:
    print(
        f"wasmtime-py {WASMTIME_VERSION} / Python {sys.version.split()[0]} / "
        f"{os.cpu_count()} cores / load average {os.getloadavg()[0]:.1f} at start"
    )
    section("run() vs raw wasmtime-py floor (fresh Store + WASI + instantiate + _start)")
    floor_vs_run("echo (small JSON)", ECHO, b'{"cart": {"lines": []}}')
    floor_vs_run(f"C discount, {len(CART) / 1000:.1f} kB cart", DISCOUNT, CART)
    if RUST_EXAMPLE.exists():
        fixture = ROOT / "examples" / "discount-function" / "fixtures" / "tier-reached.json"
        payload = orjson.loads(fixture.read_bytes())
        rust_input = orjson.dumps(payload.get("input", payload))
        floor_vs_run(
            f"Rust example, {len(rust_input) / 1000:.1f} kB input",
            RUST_EXAMPLE.read_bytes(),
            rust_input,
        )
    section("Extism path (fresh plugin instance per run)")
    extism_path()
    section("precompiled artifact: on-disk cache vs compile")
    cache_vs_compile()
    section(f"2 threads vs 1 ({os.cpu_count()} cores)")
    threads()
    gil()
    section("memory over 10,000 runs (1/4 trapping, 1/4 through Extism)")
    rss()
    section("deadline: wall time of 11 M instructions")
    deadline()
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end (other processes share the cores)")


if __name__ == "__main__":
    main()
