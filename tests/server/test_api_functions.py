"""Functions in the admin API through the real ASGI stack on real PostgreSQL: deploy
(GraphQL multipart upload, inline pipeline without Redis), versions, activation,
rollback, instances, run logs; every check's error code."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import wasmtime

from cartwheel.api.testclient import AppClient
from cartwheel.app import create_app
from cartwheel.db import make_engine, session_factory
from cartwheel.models import RunLog
from cartwheel.settings import Settings
from cartwheel.tenancy import ShopScope, create_shop, issue_token

ROOT = Path(__file__).resolve().parents[2]
DISCOUNT_DIR = ROOT / "examples" / "discount-function"
DISCOUNT_TARGET = "cart.lines.discounts.generate.run"
DISCOUNT_QUERY = "query Input { cart { lines { id quantity } } }"

EMPTY_OUTPUT_WAT = r"""
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "{\"operations\":[]}")
  (global $build i32 (i32.const BUILD))
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 17))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
"""


def empty_output_module(build: int = 1) -> bytes:
    """A valid WASI function printing no operations; `build` changes its bytes."""
    return bytes(wasmtime.wat2wasm(EMPTY_OUTPUT_WAT.replace("BUILD", str(build))))


FORBIDDEN_IMPORT_WASM = bytes(
    wasmtime.wat2wasm(
        """(module
          (import "wasi_snapshot_preview1" "sock_accept"
            (func (param i32 i32 i32) (result i32)))
          (memory (export "memory") 1)
          (func (export "_start")))"""
    )
)

SPINNING_WASM = bytes(
    wasmtime.wat2wasm(
        """(module (memory (export "memory") 1)
          (func (export "_start") (loop $l (br $l))))"""
    )
)


@dataclass
class Tenant:
    shop_id: int
    admin: str
    deploy: str


@dataclass
class Api:
    client: AppClient
    a: Tenant
    b: Tenant
    settings: Settings

    def gql(
        self, query: str, variables: dict[str, Any] | None = None, *, token: str
    ) -> dict[str, Any]:
        response = self.client.post(
            "/graphql",
            json={"query": query, "variables": variables or {}},
            headers={"Authorization": f"Bearer {token}"},
        )
        body: dict[str, Any] = response.json()
        return body

    def ok(self, query: str, variables: dict[str, Any] | None = None, *, token: str) -> Any:
        body = self.gql(query, variables, token=token)
        assert "errors" not in body, body
        return body["data"]

    def error(
        self, query: str, variables: dict[str, Any] | None = None, *, token: str
    ) -> dict[str, Any]:
        body = self.gql(query, variables, token=token)
        assert body.get("errors"), body
        error: dict[str, Any] = body["errors"][0]
        return error

    def deploy(self, wasm: bytes, *, token: str, **overrides: Any) -> dict[str, Any]:
        return deploy_request(self.client, wasm, token=token, **overrides)


DEPLOY = """
mutation Deploy($wasm: Upload!, $input: FunctionDeployInput!) {
  functionDeploy(wasm: $wasm, input: $input) {
    created
    function { id handle title target activeVersion { id } }
    version { id status active contentSha256 moduleSha256 moduleSize abi target
              inputVariables { namespace key } errorCode errorMessage finishedAt }
  }
}
"""


def deploy_request(
    client: AppClient, wasm: bytes, *, token: str, **overrides: Any
) -> dict[str, Any]:
    """`functionDeploy` as a GraphQL multipart request (the spec's operations/map/files)."""
    variables = {
        "wasm": None,
        "input": {
            "handle": "volume-discount",
            "title": "Volume discount",
            "target": DISCOUNT_TARGET,
            "inputQuery": DISCOUNT_QUERY,
            **overrides,
        },
    }
    response = client.post(
        "/graphql",
        data={
            "operations": json.dumps({"query": DEPLOY, "variables": variables}),
            "map": json.dumps({"0": ["variables.wasm"]}),
        },
        files={"0": ("function.wasm", wasm, "application/wasm")},
        headers={"Authorization": f"Bearer {token}"},
    )
    body: dict[str, Any] = response.json()
    return body


def seed(url: str) -> tuple[Tenant, Tenant]:
    engine = make_engine(Settings(database_url=url))
    with session_factory(engine)() as session:
        tenants = []
        for handle in ("fn-a", "fn-b"):
            shop = create_shop(session, handle=handle, name=handle)
            tenants.append(
                Tenant(
                    shop.id,
                    issue_token(session, shop.id, ["admin"])[1],
                    issue_token(session, shop.id, ["deploy"])[1],
                )
            )
        session.commit()
    engine.dispose()
    return tenants[0], tenants[1]


@pytest.fixture
def api(migrated_pg_url: str, tmp_path: Path) -> Iterator[Api]:
    a, b = seed(migrated_pg_url)
    settings = Settings(
        data_dir=tmp_path, database_url=migrated_pg_url, module_cache_dir=tmp_path / "cache"
    )
    with AppClient(create_app(settings)) as client:
        yield Api(client, a, b, settings)


# --- deploy ---------------------------------------------------------------------------


def test_deploy_inline_is_ready_and_idempotent(api: Api) -> None:
    wasm = empty_output_module()
    body = api.deploy(wasm, token=api.a.deploy)
    assert "errors" not in body, body
    result = body["data"]["functionDeploy"]
    version = result["version"]
    assert result["created"] is True
    assert version["status"] == "READY"  # no Redis: the pipeline ran inline
    assert version["active"] is False
    assert version["abi"] == "wasi"
    assert version["moduleSize"] == len(wasm)
    assert version["finishedAt"] is not None
    assert result["function"]["handle"] == "volume-discount"
    assert result["function"]["activeVersion"] is None
    # The precompiled artifact is in the module cache shared by the node's processes.
    artifacts = [p for p in (api.settings.module_cache_dir or Path()).rglob("*") if p.is_file()]
    assert any(p.stat().st_size > len(wasm) for p in artifacts)

    again = api.deploy(wasm, token=api.a.deploy)["data"]["functionDeploy"]
    assert again["created"] is False
    assert again["version"]["id"] == version["id"]
    assert again["version"]["contentSha256"] == version["contentSha256"]
    # Another query is another version, even with the same bytes.
    other = api.deploy(
        wasm, token=api.a.deploy, inputQuery="query Input { cart { lines { id } } }"
    )["data"]["functionDeploy"]
    assert other["created"] is True
    assert other["version"]["id"] != version["id"]
    assert other["version"]["moduleSha256"] == version["moduleSha256"]


def test_deploy_example_discount_function(api: Api) -> None:
    wasm = (DISCOUNT_DIR / "discount-function.wasm").read_bytes()
    query = (DISCOUNT_DIR / "input.graphql").read_text()
    body = api.deploy(
        wasm,
        token=api.a.admin,
        handle="tiered-vip-discount",
        inputQuery=query,
        inputVariables={"namespace": "cartwheel", "key": "function-configuration"},
    )
    assert "errors" not in body, body
    version = body["data"]["functionDeploy"]["version"]
    assert version["status"] == "READY", version
    assert version["inputVariables"] == {"namespace": "cartwheel", "key": "function-configuration"}


def test_activate_and_rollback(api: Api) -> None:
    v1 = api.deploy(empty_output_module(1), token=api.a.deploy)["data"]["functionDeploy"]
    v2 = api.deploy(empty_output_module(2), token=api.a.deploy)["data"]["functionDeploy"]
    function_id = v1["function"]["id"]
    assert v2["function"]["id"] == function_id
    activate = """mutation($v: ID!) { functionActivateVersion(versionId: $v)
        { id activeVersion { id active } } }"""
    active = api.ok(activate, {"v": v1["version"]["id"]}, token=api.a.deploy)
    assert active["functionActivateVersion"]["activeVersion"] == {
        "id": v1["version"]["id"],
        "active": True,
    }
    api.ok(activate, {"v": v2["version"]["id"]}, token=api.a.deploy)
    versions = api.ok(
        """query($f: ID!) { functionVersions(functionId: $f) { nodes { id active status } }
        function(id: $f) { activeVersion { id } } }""",
        {"f": function_id},
        token=api.a.deploy,
    )
    assert [v["active"] for v in versions["functionVersions"]["nodes"]] == [False, True]
    assert versions["function"]["activeVersion"]["id"] == v2["version"]["id"]
    rolled = api.ok(
        "mutation($f: ID!) { functionRollback(functionId: $f) { activeVersion { id } } }",
        {"f": function_id},
        token=api.a.deploy,
    )
    assert rolled["functionRollback"]["activeVersion"]["id"] == v1["version"]["id"]
    nothing_before = api.error(
        "mutation($f: ID!) { functionRollback(functionId: $f) { id } }",
        {"f": function_id},
        token=api.a.deploy,
    )
    assert nothing_before["extensions"]["code"] == "NO_PREVIOUS_VERSION"
    listed = api.ok("{ functions { nodes { handle activeVersion { id } } } }", token=api.a.admin)[
        "functions"
    ]["nodes"]
    assert listed == [{"handle": "volume-discount", "activeVersion": {"id": v1["version"]["id"]}}]
    one = api.ok(
        "query($v: ID!) { functionVersion(id: $v) { id function { handle } } }",
        {"v": v2["version"]["id"]},
        token=api.a.admin,
    )
    assert one["functionVersion"]["function"] == {"handle": "volume-discount"}


def test_version_failing_its_smoke_run_cannot_be_activated(api: Api) -> None:
    body = api.deploy(SPINNING_WASM, token=api.a.deploy, handle="spinner")
    version = body["data"]["functionDeploy"]["version"]
    assert version["status"] == "FAILED"
    assert version["errorCode"] == "INSTRUCTION_LIMIT_EXCEEDED"
    assert "smoke run" in version["errorMessage"]
    error = api.error(
        "mutation($v: ID!) { functionActivateVersion(versionId: $v) { id } }",
        {"v": version["id"]},
        token=api.a.deploy,
    )
    assert error["extensions"]["code"] == "VERSION_NOT_READY"
    assert error["extensions"]["status"] == "failed"


@pytest.mark.parametrize(
    ("wasm", "overrides", "code"),
    [
        (b"\x00asm garbage", {}, "INVALID_MODULE"),
        (b"not wasm at all", {}, "INVALID_MODULE"),
        (FORBIDDEN_IMPORT_WASM, {}, "FORBIDDEN_IMPORT"),
        (b"\x00asm\x01\x00\x00\x00" + b"\x00" * 300_000, {}, "MODULE_TOO_LARGE"),
        (None, {"target": "cart.teleport.run"}, "UNKNOWN_TARGET"),
        (None, {"handle": ""}, "BAD_REQUEST"),
        (None, {"inputVariables": {"namespace": "", "key": "k"}}, None),
    ],
)
def test_deploy_checks_fail_in_the_mutation_with_a_code(
    api: Api, wasm: bytes | None, overrides: dict[str, Any], code: str | None
) -> None:
    body = api.deploy(wasm or empty_output_module(), token=api.a.deploy, **overrides)
    if code is None:
        assert "errors" not in body, body
        return
    error = body["errors"][0]
    assert error["extensions"]["code"] == code, error
    assert error["path"] == ["functionDeploy"]
    if code == "FORBIDDEN_IMPORT":
        assert error["extensions"]["importName"] == "wasi_snapshot_preview1.sock_accept"
    if code == "UNKNOWN_TARGET":
        assert "cart.lines.discounts.generate.run" in error["message"]
    # A refused deploy leaves nothing behind.
    assert api.ok("{ functions { nodes { id } } }", token=api.a.admin)["functions"]["nodes"] == []


@pytest.mark.parametrize(
    ("query", "code", "line"),
    [
        ("query Input {\n  cart {\n    lines { id\n", "INPUT_QUERY_SYNTAX", 4),
        ("query Input {\n  cart {\n    nope\n  }\n}", "INPUT_QUERY_INVALID", 3),
    ],
)
def test_invalid_input_query_reports_its_location(
    api: Api, query: str, code: str, line: int
) -> None:
    error = api.deploy(empty_output_module(), token=api.a.deploy, inputQuery=query)["errors"][0]
    assert error["extensions"]["code"] == code, error
    assert error["extensions"]["locations"][0]["line"] == line


def test_deploy_needs_the_deploy_or_admin_scope(api: Api, migrated_pg_url: str) -> None:
    engine = make_engine(api.settings)
    with session_factory(engine)() as session:
        storefront = issue_token(session, api.a.shop_id, ["storefront"])[1]
        session.commit()
    engine.dispose()
    body = api.deploy(empty_output_module(), token=storefront)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    # The deploy scope alone cannot configure instances or read run logs.
    err = api.error("{ functionRuns { nodes { id } } }", token=api.a.deploy)
    assert err["extensions"]["code"] == "FORBIDDEN"


def test_another_shops_functions_are_not_found(api: Api) -> None:
    theirs = api.deploy(empty_output_module(), token=api.b.deploy)["data"]["functionDeploy"]
    version_id = theirs["version"]["id"]
    function_id = theirs["function"]["id"]
    for query, variables in [
        ("mutation($v: ID!) { functionActivateVersion(versionId: $v) { id } }", {"v": version_id}),
        ("mutation($f: ID!) { functionRollback(functionId: $f) { id } }", {"f": function_id}),
        ("query($v: ID!) { functionVersion(id: $v) { id } }", {"v": version_id}),
        ("query($f: ID!) { function(id: $f) { id } }", {"f": function_id}),
        (
            "query($f: ID!) { functionVersions(functionId: $f) { nodes { id } } }",
            {"f": function_id},
        ),
        ("query($f: ID!) { functionRuns(functionId: $f) { nodes { id } } }", {"f": function_id}),
        (
            'mutation($f: ID!) { discountCreate(input: {functionId: $f, title: "x", '
            "discountClasses: [ORDER]}) { id } }",
            {"f": function_id},
        ),
    ]:
        body = api.gql(query, variables, token=api.a.admin)
        assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND", (query, body)
        assert theirs["version"]["contentSha256"] not in json.dumps(body)
    # Same content in shop A is shop A's own version, not shop B's.
    mine = api.deploy(empty_output_module(), token=api.a.deploy)["data"]["functionDeploy"]
    assert mine["created"] is True
    assert mine["version"]["id"] != version_id
    theirs_after = api.ok(
        "query($f: ID!) { function(id: $f) { activeVersion { id } } }",
        {"f": function_id},
        token=api.b.admin,
    )
    assert theirs_after["function"]["activeVersion"] is None


# --- instances --------------------------------------------------------------------------


def _function(api: Api, target: str, handle: str) -> str:
    body = api.deploy(
        empty_output_module(),
        token=api.a.deploy,
        target=target,
        handle=handle,
        inputQuery="query Input { cart { lines { id } } }",
    )
    assert "errors" not in body, body
    function_id: str = body["data"]["functionDeploy"]["function"]["id"]
    return function_id


DISCOUNT_FIELDS = """id title functionId enabled discountClasses codes automatic
  combinesWith { orderDiscounts productDiscounts shippingDiscounts }
  metafields { namespace key type value }"""


def test_discount_create_update_delete(api: Api) -> None:
    function_id = _function(api, DISCOUNT_TARGET, "discount-fn")
    created = api.ok(
        f"""mutation($f: ID!) {{ discountCreate(input: {{functionId: $f, title: "VIP",
        discountClasses: [PRODUCT, ORDER], combinesWith: {{shippingDiscounts: true}},
        codes: ["VIP10"], metafields: [{{namespace: "cartwheel",
        key: "function-configuration", type: JSON, value: "{{\\"percent\\": 10}}"}}]}})
        {{ {DISCOUNT_FIELDS} }} }}""",
        {"f": function_id},
        token=api.a.admin,
    )["discountCreate"]
    assert created["discountClasses"] == ["ORDER", "PRODUCT"]
    assert created["codes"] == ["VIP10"]
    assert created["automatic"] is False
    assert created["combinesWith"] == {
        "orderDiscounts": False,
        "productDiscounts": False,
        "shippingDiscounts": True,
    }
    assert created["metafields"] == [
        {
            "namespace": "cartwheel",
            "key": "function-configuration",
            "type": "JSON",
            "value": '{"percent": 10}',
        }
    ]
    assert created["id"].startswith("gid://cartwheel/Discount/")
    updated = api.ok(
        f"""mutation($id: ID!) {{ discountUpdate(id: $id, input: {{codes: [],
        title: "VIP auto", combinesWith: {{orderDiscounts: true}}}}) {{ {DISCOUNT_FIELDS} }} }}""",
        {"id": created["id"]},
        token=api.a.admin,
    )["discountUpdate"]
    assert updated["automatic"] is True
    assert updated["title"] == "VIP auto"
    assert updated["combinesWith"]["orderDiscounts"] is True
    assert updated["discountClasses"] == ["ORDER", "PRODUCT"]
    duplicate = api.error(
        """mutation($id: ID!) { discountUpdate(id: $id, input: {codes: ["A", "a"]}) { id } }""",
        {"id": created["id"]},
        token=api.a.admin,
    )
    assert duplicate["extensions"]["code"] == "BAD_REQUEST"
    no_class = api.error(
        'mutation($f: ID!) { discountCreate(input: {functionId: $f, title: "x", '
        "discountClasses: []}) { id } }",
        {"f": function_id},
        token=api.a.admin,
    )
    assert no_class["extensions"]["code"] == "BAD_REQUEST"
    assert api.ok("{ discounts { title } }", token=api.a.admin) == {
        "discounts": [{"title": "VIP auto"}]
    }
    assert api.ok(
        "mutation($id: ID!) { discountDelete(id: $id) }", {"id": created["id"]}, token=api.a.admin
    ) == {"discountDelete": created["id"]}
    assert api.ok("{ discounts { id } }", token=api.a.admin) == {"discounts": []}


def test_customizations_validations_enable_disable(api: Api) -> None:
    delivery_fn = _function(api, "cart.delivery-options.transform.run", "hide-express")
    payment_fn = _function(api, "cart.payment-methods.transform.run", "hide-cod")
    validation_fn = _function(api, "cart.validations.generate.run", "max-qty")
    delivery = api.ok(
        """mutation($f: ID!) { deliveryCustomizationCreate(input: {functionId: $f,
        title: "Hide express"}) { id title enabled functionId } }""",
        {"f": delivery_fn},
        token=api.a.admin,
    )["deliveryCustomizationCreate"]
    assert delivery["enabled"] is True
    assert delivery["functionId"] == delivery_fn
    payment = api.ok(
        """mutation($f: ID!) { paymentCustomizationCreate(input: {functionId: $f,
        title: "Hide COD", enabled: false}) { id enabled } }""",
        {"f": payment_fn},
        token=api.a.admin,
    )["paymentCustomizationCreate"]
    assert payment["enabled"] is False
    validation = api.ok(
        """mutation($f: ID!) { validationCreate(input: {functionId: $f, title: "Max 5",
        blockOnFailure: true, metafields: [{namespace: "cfg", key: "max",
        type: NUMBER_INTEGER, value: "5"}]}) { id blockOnFailure metafields { value } } }""",
        {"f": validation_fn},
        token=api.a.admin,
    )["validationCreate"]
    assert validation["blockOnFailure"] is True
    assert validation["metafields"] == [{"value": "5"}]
    enabled = api.ok(
        """mutation($id: ID!) { functionInstanceEnable(id: $id) {
        ... on PaymentCustomization { id enabled } } }""",
        {"id": payment["id"]},
        token=api.a.admin,
    )
    assert enabled["functionInstanceEnable"] == {"id": payment["id"], "enabled": True}
    disabled = api.ok(
        """mutation($id: ID!) { functionInstanceDisable(id: $id) {
        __typename ... on Validation { enabled blockOnFailure } } }""",
        {"id": validation["id"]},
        token=api.a.admin,
    )
    assert disabled["functionInstanceDisable"] == {
        "__typename": "Validation",
        "enabled": False,
        "blockOnFailure": True,
    }
    listed = api.ok(
        """{ deliveryCustomizations { title } paymentCustomizations { enabled }
        validations { enabled } }""",
        token=api.a.admin,
    )
    assert listed == {
        "deliveryCustomizations": [{"title": "Hide express"}],
        "paymentCustomizations": [{"enabled": True}],
        "validations": [{"enabled": False}],
    }
    one = api.ok(
        "query($id: ID!) { functionInstance(id: $id) { __typename } }",
        {"id": delivery["id"]},
        token=api.a.admin,
    )
    assert one == {"functionInstance": {"__typename": "DeliveryCustomization"}}
    # A delivery function cannot back a validation, a discount id is not a validation's.
    mismatch = api.error(
        'mutation($f: ID!) { validationCreate(input: {functionId: $f, title: "x"}) { id } }',
        {"f": delivery_fn},
        token=api.a.admin,
    )
    assert mismatch["extensions"]["code"] == "TARGET_MISMATCH"
    wrong_kind = api.error(
        "mutation($id: ID!) { discountDelete(id: $id) }",
        {"id": validation["id"]},
        token=api.a.admin,
    )
    assert wrong_kind["extensions"]["code"] in ("NOT_FOUND", "INVALID_ID")
    # Shop B cannot toggle shop A's instances.
    foreign = api.error(
        "mutation($id: ID!) { functionInstanceDisable(id: $id) { __typename } }",
        {"id": delivery["id"]},
        token=api.b.admin,
    )
    assert foreign["extensions"]["code"] == "NOT_FOUND"


# --- run logs ---------------------------------------------------------------------------


def _seed_runs(api: Api, function_id: str, shop_id: int, count: int) -> list[int]:
    from cartwheel.ids import decode_gid

    fid = decode_gid(function_id, "Function")
    engine = make_engine(api.settings)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    ids = []
    with session_factory(engine)() as session:
        scope = ShopScope(session, shop_id)
        for i in range(count):
            log = scope.create(
                RunLog,
                function_id=fid,
                version_id=1,
                target=DISCOUNT_TARGET,
                status="failed" if i % 3 == 0 else "succeeded",
                error_code="INSTRUCTION_LIMIT_EXCEEDED" if i % 3 == 0 else None,
                input='{"cart": {}}',
                input_bytes=12,
                output=None if i % 3 == 0 else '{"operations": []}',
                output_bytes=0 if i % 3 == 0 else 18,
                logs=f"run {i}",
                fuel_consumed=1000 + i,
                peak_memory_bytes=65536,
                duration_ms=0.5,
                created_at=start + timedelta(minutes=i),
            )
            ids.append(log.id)
        session.commit()
    engine.dispose()
    return ids


def test_cart_transform_create_list_disable(api: Api) -> None:
    transform_fn = _function(api, "cart.transform.run", "bundle")
    created = api.ok(
        """mutation($f: ID!) { cartTransformCreate(input: {functionId: $f, title: "Bundles",
        metafields: [{namespace: "cartwheel", key: "function-configuration", type: JSON,
        value: "{}"}]}) { id title enabled functionId metafields { key } } }""",
        {"f": transform_fn},
        token=api.a.admin,
    )["cartTransformCreate"]
    assert created["id"].startswith("gid://cartwheel/CartTransform/")
    assert (created["title"], created["enabled"], created["functionId"]) == (
        "Bundles",
        True,
        transform_fn,
    )
    assert created["metafields"] == [{"key": "function-configuration"}]
    disabled = api.ok(
        """mutation($id: ID!) { functionInstanceDisable(id: $id) {
        __typename ... on CartTransform { enabled } } }""",
        {"id": created["id"]},
        token=api.a.admin,
    )
    assert disabled["functionInstanceDisable"] == {"__typename": "CartTransform", "enabled": False}
    assert api.ok("{ cartTransforms { id enabled } }", token=api.a.admin) == {
        "cartTransforms": [{"id": created["id"], "enabled": False}]
    }
    one = api.ok(
        "query($id: ID!) { functionInstance(id: $id) { ... on CartTransform { title } } }",
        {"id": created["id"]},
        token=api.a.admin,
    )
    assert one == {"functionInstance": {"title": "Bundles"}}
    # Only a cart.transform.run function backs a cart transform; another shop sees none.
    payment_fn = _function(api, "cart.payment-methods.transform.run", "not-a-transform")
    mismatch = api.error(
        'mutation($f: ID!) { cartTransformCreate(input: {functionId: $f, title: "x"}) { id } }',
        {"f": payment_fn},
        token=api.a.admin,
    )
    assert mismatch["extensions"]["code"] == "TARGET_MISMATCH"
    assert api.ok("{ cartTransforms { id } }", token=api.b.admin) == {"cartTransforms": []}


def test_function_runs_filter_and_paginate(api: Api) -> None:
    function_id = _function(api, DISCOUNT_TARGET, "logged")
    _seed_runs(api, function_id, api.a.shop_id, 7)
    query = """query($f: ID, $s: String, $since: DateTime, $after: String) {
      functionRuns(functionId: $f, status: $s, since: $since, first: 2, after: $after) {
        edges { cursor node { id logs status errorCode fuelConsumed peakMemoryBytes
                              durationMs input output inputBytes createdAt } }
        pageInfo { hasNextPage endCursor } } }"""
    seen: list[str] = []
    after = None
    while True:
        page = api.ok(query, {"f": function_id, "after": after}, token=api.a.admin)
        runs = page["functionRuns"]
        seen += [e["node"]["logs"] for e in runs["edges"]]
        if not runs["pageInfo"]["hasNextPage"]:
            break
        after = runs["pageInfo"]["endCursor"]
    assert seen == [f"run {i}" for i in reversed(range(7))]  # newest first
    failed = api.ok(query, {"s": "failed"}, token=api.a.admin)["functionRuns"]["edges"]
    assert [e["node"]["logs"] for e in failed] == ["run 6", "run 3"]
    assert failed[0]["node"]["errorCode"] == "INSTRUCTION_LIMIT_EXCEEDED"
    since = api.ok(query, {"since": "2026-01-01T00:05:00+00:00"}, token=api.a.admin)[
        "functionRuns"
    ]["edges"]
    assert [e["node"]["logs"] for e in since] == ["run 6", "run 5"]
    node = since[0]["node"]
    one = api.ok(
        "query($id: ID!) { functionRun(id: $id) { id logs fuelConsumed output } }",
        {"id": node["id"]},
        token=api.a.admin,
    )["functionRun"]
    assert one == {"id": node["id"], "logs": "run 6", "fuelConsumed": 1006, "output": None}
    # Another shop sees neither the list nor the run.
    assert api.ok(query, {}, token=api.b.admin)["functionRuns"]["edges"] == []
    hidden = api.error(
        "query($id: ID!) { functionRun(id: $id) { logs } }", {"id": node["id"]}, token=api.b.admin
    )
    assert hidden["extensions"]["code"] == "NOT_FOUND"
    bad_cursor = api.error(
        'query { functionRuns(after: "Zm9v") { nodes { id } } }', token=api.a.admin
    )
    assert bad_cursor["extensions"]["code"] == "INVALID_CURSOR"


def test_the_sdk_clients_documents_validate_against_the_schema() -> None:
    # `cartwheel fn deploy / logs / replay` send these documents: the contract between
    # functions_sdk.client and this schema.
    from graphql import parse, validate

    import functions_sdk.client as client
    from cartwheel.api.schema import build_schema

    schema = build_schema()._schema
    documents = {
        name: value
        for name, value in vars(client).items()
        if name.isupper()
        and isinstance(value, str)
        and value.lstrip().startswith(("query", "mutation"))
    }
    assert {"FUNCTION_DEPLOY", "FUNCTION_RUNS", "FUNCTION_ACTIVATE_VERSION"} <= set(documents)
    for name, document in documents.items():
        assert validate(schema, parse(document)) == [], name
