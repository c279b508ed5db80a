"""Module loading and the precompiled-artifact cache (disk + in-process LRU)."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import orjson
import pytest
import wasmtime

from functions_sdk import Limits
from functions_sdk.runner import ModuleCache, ModuleCacheError, load_module, run
from functions_sdk.runner.engine import get_engine

WASM_DIR = Path(__file__).parent / "wasm"
DISCOUNT = (WASM_DIR / "discount_wasi.wasm").read_bytes()
ECHO = bytes(wasmtime.wat2wasm((WASM_DIR / "echo.wat").read_text()))
INPUT = b'{"cart": {"lines": [{"id": "gid://cartwheel/CartLine/1", "quantity": 2}]}}'


def artifact_path(cache: ModuleCache, wasm: bytes, limits: Limits = Limits()) -> Path:  # noqa: B008
    module = load_module(wasm, limits=limits)
    path = cache.path(get_engine(limits.stack_bytes), module.sha256)
    assert path is not None
    return path


def test_second_cache_on_the_same_directory_loads_without_compiling(tmp_path: Path) -> None:
    first = ModuleCache(tmp_path)
    a = load_module(DISCOUNT, cache=first)
    assert (first.stats.compiles, first.stats.disk_hits) == (1, 0)
    assert artifact_path(first, DISCOUNT).exists()

    second = ModuleCache(tmp_path)  # another worker of the same node
    b = load_module(DISCOUNT, cache=second)
    assert (second.stats.compiles, second.stats.disk_hits) == (0, 1)
    assert run(a, INPUT).output == run(b, INPUT).output

    load_module(DISCOUNT, cache=second)
    assert second.stats.memory_hits == 1


def test_another_process_loads_the_artifact(tmp_path: Path) -> None:
    load_module(DISCOUNT, cache=ModuleCache(tmp_path))
    script = (
        "import sys, json\n"
        "from functions_sdk.runner import ModuleCache, load_module, run\n"
        "cache = ModuleCache(sys.argv[1])\n"
        "module = load_module(open(sys.argv[2], 'rb').read(), cache=cache)\n"
        "result = run(module, sys.argv[3].encode())\n"
        "print(json.dumps({'compiles': cache.stats.compiles, 'disk_hits': cache.stats.disk_hits,"
        " 'ok': result.ok}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path), str(WASM_DIR / "discount_wasi.wasm"), "{}"],
        capture_output=True,
        check=True,
        text=True,
    )
    assert orjson.loads(out.stdout) == {"compiles": 0, "disk_hits": 1, "ok": True}


@pytest.mark.parametrize(
    "damage",
    ["flip a byte of the artifact", "truncate", "raw wasmtime artifact without our MAC"],
)
def test_damaged_or_foreign_artifacts_are_never_deserialized(tmp_path: Path, damage: str) -> None:
    cache = ModuleCache(tmp_path)
    load_module(DISCOUNT, cache=cache)
    path = artifact_path(cache, DISCOUNT)
    blob = bytearray(path.read_bytes())
    if damage == "flip a byte of the artifact":
        blob[-100] ^= 0xFF
    elif damage == "truncate":
        del blob[len(blob) // 2 :]
    else:
        engine = get_engine(Limits().stack_bytes)
        blob = bytearray(wasmtime.Module(engine.engine, DISCOUNT).serialize())
    path.write_bytes(bytes(blob))

    fresh = ModuleCache(tmp_path)
    module = load_module(DISCOUNT, cache=fresh)
    assert (fresh.stats.rejected, fresh.stats.disk_hits, fresh.stats.compiles) == (1, 0, 1)
    assert run(module, INPUT).ok
    # The recompiled artifact replaced the bad file and verifies again.
    again = ModuleCache(tmp_path)
    load_module(DISCOUNT, cache=again)
    assert again.stats.disk_hits == 1


def test_artifacts_signed_with_another_secret_are_rejected(tmp_path: Path) -> None:
    load_module(DISCOUNT, cache=ModuleCache(tmp_path, secret=b"a" * 32))
    other = ModuleCache(tmp_path, secret=b"b" * 32)
    load_module(DISCOUNT, cache=other)
    assert (other.stats.rejected, other.stats.compiles) == (1, 1)


def test_key_includes_the_engine_configuration(tmp_path: Path) -> None:
    cache = ModuleCache(tmp_path)
    default = artifact_path(cache, DISCOUNT)
    small_stack = artifact_path(cache, DISCOUNT, Limits(stack_bytes=256_000))
    assert default != small_stack
    load_module(DISCOUNT, cache=cache)
    load_module(DISCOUNT, cache=cache, limits=Limits(stack_bytes=256_000))
    assert cache.stats.compiles == 2


def test_a_module_runs_under_a_different_stack_limit_than_it_was_loaded_with() -> None:
    module = load_module(DISCOUNT)
    assert run(module, INPUT, Limits(stack_bytes=300_000)).ok


def test_in_process_cache_is_bounded_by_bytes(tmp_path: Path) -> None:
    probe = (WASM_DIR / "probe.wasm").read_bytes()
    unbounded = ModuleCache(None)
    load_module(DISCOUNT, cache=unbounded)
    one = unbounded.memory_bytes
    cache = ModuleCache(None, max_memory_bytes=one + 1)
    load_module(DISCOUNT, cache=cache)
    load_module(probe, cache=cache)
    load_module(ECHO, cache=cache)
    assert cache.memory_bytes <= one + 1
    load_module(DISCOUNT, cache=cache)  # evicted, no directory: compiled again
    assert cache.stats.compiles == 4


def test_concurrent_loads_share_one_valid_artifact(tmp_path: Path) -> None:
    errors: list[BaseException] = []

    def load() -> None:
        try:
            cache = ModuleCache(tmp_path)
            for _ in range(5):
                assert run(load_module(DISCOUNT, cache=cache), INPUT).ok
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    final = ModuleCache(tmp_path)
    load_module(DISCOUNT, cache=final)
    assert final.stats.disk_hits == 1


def test_unusable_cache_directory_raises_a_coded_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    with pytest.raises(ModuleCacheError) as info:
        ModuleCache(blocker / "cache")
    assert info.value.code == "MODULE_CACHE_ERROR"
