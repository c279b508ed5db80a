"""The deploy pipeline (`cartwheel.deploy`, `cartwheel.jobs`) on real PostgreSQL with real
wasm: content addressing under concurrency, idempotent preparation, the smoke run,
guarded transitions, and a job that fails for good."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import wasmtime
from sqlalchemy.orm import Session, sessionmaker

from cartwheel import jobs
from cartwheel.db import make_engine, session_factory
from cartwheel.deploy import (
    Deployer,
    DeployOutcome,
    DeployRequest,
    activate_version,
    prepare_version,
    smoke_snapshot,
)
from cartwheel.errors import ConflictError, InvalidRequestError, NotFoundError
from cartwheel.models import Function, FunctionVersion, VersionStatus
from cartwheel.settings import Settings
from cartwheel.tenancy import ShopScope, create_shop
from functions_sdk.apis import get_target
from functions_sdk.query import compile_query

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "discount-function"
TARGET = "cart.lines.discounts.generate.run"

OK_WAT = r"""
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "{\"operations\":[]}")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 17))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
"""
OK_WASM = bytes(wasmtime.wat2wasm(OK_WAT))
EXITING_WASM = bytes(
    wasmtime.wat2wasm(
        """(module
          (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
          (memory (export "memory") 1)
          (func (export "_start") (call $exit (i32.const 3))))"""
    )
)


@dataclass
class Pipeline:
    settings: Settings
    factory: sessionmaker[Session]
    shop_id: int
    deployer: Deployer

    def deploy(self, wasm: bytes = OK_WASM, **overrides: str) -> DeployOutcome:
        fields = {
            "handle": "fn",
            "title": "Fn",
            "target": TARGET,
            "input_query": "query Input { cart { lines { id } } }",
            **overrides,
        }
        with self.factory() as session:
            return self.deployer.deploy(
                ShopScope(session, self.shop_id), DeployRequest(wasm=wasm, **fields)
            )

    def version(self, version_id: int) -> FunctionVersion:
        with self.factory() as session:
            return ShopScope(session, self.shop_id).get(FunctionVersion, version_id)


@pytest.fixture
def pipeline(migrated_pg_url: str, tmp_path: Path) -> Iterator[Pipeline]:
    settings = Settings(
        data_dir=tmp_path, database_url=migrated_pg_url, module_cache_dir=tmp_path / "cache"
    )
    engine = make_engine(settings)
    factory = session_factory(engine)
    with factory() as session:
        shop = create_shop(session, handle="deploy-shop", name="Deploy shop")
        session.commit()
        shop_id = shop.id
    yield Pipeline(settings, factory, shop_id, Deployer(settings, factory))
    engine.dispose()


def test_the_smoke_cart_feeds_the_example_query() -> None:
    query = compile_query(get_target(TARGET), (EXAMPLE / "input.graphql").read_text())
    data = query.execute(smoke_snapshot(), variables=query.variables_from_metafield(None))
    assert b'"lines"' in data


def test_concurrent_identical_deploys_make_one_version(pipeline: Pipeline) -> None:
    outcomes: list[DeployOutcome] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def deploy() -> None:
        try:
            barrier.wait()
            outcomes.append(pipeline.deploy())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=deploy) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len({o.version.id for o in outcomes}) == 1
    assert sum(o.created for o in outcomes) == 1
    with pipeline.factory() as session:
        scope = ShopScope(session, pipeline.shop_id)
        assert len(scope.list(FunctionVersion)) == 1
        assert len(scope.list(Function)) == 1


def test_prepare_is_idempotent_and_guarded(pipeline: Pipeline) -> None:
    version = pipeline.deploy().version
    assert version.status is VersionStatus.PENDING
    args = (pipeline.settings, pipeline.factory, pipeline.shop_id, version.id)
    assert prepare_version(*args) is VersionStatus.READY
    first = pipeline.version(version.id)
    assert first.artifact_ref is not None
    assert Path(first.artifact_ref).is_file()
    # A retried job finds the version ready and leaves it exactly as it was.
    assert prepare_version(*args) is VersionStatus.READY
    assert pipeline.version(version.id).finished_at == first.finished_at


def test_smoke_run_failure_on_sample_data_is_not_fatal(pipeline: Pipeline) -> None:
    # A function exiting non-zero on the sample cart may be missing its configuration,
    # which a deploy does not have: the version is ready; limits violations fail it.
    version = pipeline.deploy(EXITING_WASM).version
    status = prepare_version(pipeline.settings, pipeline.factory, pipeline.shop_id, version.id)
    assert status is VersionStatus.READY


def test_smoke_run_is_skipped_when_a_required_variable_has_no_value(pipeline: Pipeline) -> None:
    query = (
        "query Input($ids: [ID!]!) { cart { lines { merchandise { __typename "
        "... on ProductVariant { product { inAnyCollection(ids: $ids) } } } } } }"
    )
    version = pipeline.deploy(input_query=query).version
    status = prepare_version(pipeline.settings, pipeline.factory, pipeline.shop_id, version.id)
    assert status is VersionStatus.READY


def test_activation_is_guarded(pipeline: Pipeline) -> None:
    pending = pipeline.deploy().version
    other = pipeline.deploy(handle="other").version
    prepare_version(pipeline.settings, pipeline.factory, pipeline.shop_id, other.id)
    with pipeline.factory() as session:
        scope = ShopScope(session, pipeline.shop_id)
        function = scope.get(Function, pending.function_id)
        with pytest.raises(InvalidRequestError) as not_ready:
            activate_version(scope, function, scope.get(FunctionVersion, pending.id))
        assert not_ready.value.code == "VERSION_NOT_READY"
        with pytest.raises(NotFoundError):
            activate_version(scope, function, scope.get(FunctionVersion, other.id))
        assert scope.get(Function, pending.function_id).active_version_id is None
        # Another shop's scope cannot even see the function.
        with pytest.raises(NotFoundError):
            ShopScope(session, pipeline.shop_id + 1000).get(Function, pending.function_id)


def test_a_function_keeps_its_target(pipeline: Pipeline) -> None:
    pipeline.deploy()
    with pytest.raises(ConflictError) as conflict:
        pipeline.deploy(target="cart.validations.generate.run")
    assert "never changes" in conflict.value.message


def test_job_failing_for_good_fails_the_version(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    version = pipeline.deploy().version
    monkeypatch.setenv("DATABASE_URL", pipeline.settings.database_url)
    monkeypatch.setenv("CARTWHEEL_MODULE_CACHE_DIR", str(pipeline.settings.module_cache_dir))
    monkeypatch.setattr(jobs, "_state", None)

    def disk_full(*args: object) -> VersionStatus:
        raise OSError(28, "No space left on device")

    # Fault injection: the platform (not the module) fails on the last attempt.
    import cartwheel.deploy

    monkeypatch.setattr(cartwheel.deploy, "prepare_version", disk_full)
    with pytest.raises(OSError, match="No space"):
        jobs.prepare_version_job(pipeline.shop_id, version.id)
    failed = pipeline.version(version.id)
    assert failed.status is VersionStatus.FAILED
    assert failed.error_code == "DEPLOY_JOB_FAILED"
    assert "deploy again" in (failed.error_message or "")
    jobs._worker_state().engine.dispose()


def test_concurrent_activations_leave_one_ready_version_active(pipeline: Pipeline) -> None:
    versions = [pipeline.deploy(OK_WASM + bytes([0, 2, 1, n])).version for n in range(2)]
    for v in versions:
        prepare_version(pipeline.settings, pipeline.factory, pipeline.shop_id, v.id)
    pending = pipeline.deploy(OK_WASM + bytes([0, 2, 1, 9])).version
    barrier = threading.Barrier(6)
    outcomes: list[str] = []

    def activate(version_id: int) -> None:
        with pipeline.factory() as session:
            scope = ShopScope(session, pipeline.shop_id)
            version = scope.get(FunctionVersion, version_id)
            function = scope.get(Function, version.function_id)
            barrier.wait()
            try:
                activate_version(scope, function, version)
                outcomes.append("ok")
            except InvalidRequestError as exc:
                outcomes.append(exc.code)

    ids = [versions[0].id, versions[1].id, pending.id] * 2
    threads = [threading.Thread(target=activate, args=(i,)) for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["VERSION_NOT_READY"] * 2 + ["ok"] * 4
    with pipeline.factory() as session:
        function = ShopScope(session, pipeline.shop_id).get(Function, pending.function_id)
        assert function.active_version_id in {versions[0].id, versions[1].id}
