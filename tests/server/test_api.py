"""The admin API through the real ASGI stack (Starlette AppClient / httpx ASGITransport)
on real PostgreSQL: authentication, scopes, tenancy, error codes, limits, rate limits,
the upload limit, /healthz, /metrics, GraphiQL's page, and the store-data fields."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from cartwheel.api.testclient import AppClient
from cartwheel.app import create_app
from cartwheel.db import make_engine, session_factory
from cartwheel.settings import Settings
from cartwheel.tenancy import create_shop, issue_token

# --- harness ------------------------------------------------------------------------


@dataclass
class Tenant:
    shop_id: int
    shop_gid: str
    admin: str
    deploy: str
    storefront: str


@dataclass
class Api:
    client: AppClient
    a: Tenant
    b: Tenant
    settings: Settings
    calls: list[str] = field(default_factory=list)

    def gql(
        self, query: str, variables: dict[str, Any] | None = None, *, token: str | None = None
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = self.client.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )
        assert response.headers["content-type"].startswith("application/json"), response.text
        body: dict[str, Any] = response.json()
        return body

    def ok(self, query: str, variables: dict[str, Any] | None = None, *, token: str) -> Any:
        body = self.gql(query, variables, token=token)
        assert "errors" not in body, body
        return body["data"]

    def error(
        self, query: str, variables: dict[str, Any] | None = None, *, token: str | None
    ) -> dict[str, Any]:
        body = self.gql(query, variables, token=token)
        assert body.get("errors"), body
        error: dict[str, Any] = body["errors"][0]
        return error


def seed_tenants(database_url: str) -> tuple[Tenant, Tenant]:
    engine = make_engine(Settings(database_url=database_url))
    try:
        with session_factory(engine)() as session:
            tenants = []
            for handle in ("shop-a", "shop-b"):
                shop = create_shop(session, handle=handle, name=handle.upper())
                tokens = {s: issue_token(session, shop.id, [s])[1] for s in ("admin", "deploy")}
                tokens["storefront"] = issue_token(session, shop.id, ["storefront"])[1]
                tenants.append(Tenant(shop.id, shop.gid, **tokens))
            session.commit()
    finally:
        engine.dispose()
    return tenants[0], tenants[1]


def make_settings(tmp_path: Path, database_url: str, **overrides: Any) -> Settings:
    return Settings(
        data_dir=tmp_path,
        database_url=database_url,
        module_cache_dir=tmp_path / "module-cache",
        **overrides,
    )


@pytest.fixture
def api(migrated_pg_url: str, tmp_path: Path) -> Iterator[Api]:
    a, b = seed_tenants(migrated_pg_url)
    settings = make_settings(tmp_path, migrated_pg_url)
    with AppClient(create_app(settings)) as client:
        yield Api(client, a, b, settings)


def limited_api(tmp_path: Path, url: str, **overrides: Any) -> tuple[AppClient, Tenant, Tenant]:
    a, b = seed_tenants(url)
    return AppClient(create_app(make_settings(tmp_path, url, **overrides))), a, b


def bare_api(tmp_path: Path, url: str, **overrides: Any) -> AppClient:
    return AppClient(create_app(make_settings(tmp_path, url, **overrides)))


# --- authentication, scopes, tenancy -------------------------------------------------

SHOP = "{ shop { id handle name currencyCode } }"


def test_missing_token_is_unauthenticated(api: Api) -> None:
    error = api.error(SHOP, token=None)
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    assert "Authorization: Bearer" in error["message"]


@pytest.mark.parametrize("token", ["not-a-token", "cwt_" + "x" * 43])
def test_bad_token_is_unauthenticated(api: Api, token: str) -> None:
    error = api.error(SHOP, token=token)
    assert error["extensions"]["code"] == "UNAUTHENTICATED"


def test_revoked_token_is_unauthenticated(api: Api) -> None:
    from cartwheel.models import ApiToken
    from cartwheel.tenancy import ShopScope

    engine = make_engine(api.settings)
    with session_factory(engine)() as session:
        scope = ShopScope(session, api.a.shop_id)
        token = scope.scalars(
            scope.select(ApiToken).where(ApiToken.token_hash == ApiToken.hash(api.a.admin))
        )[0]
        scope.revoke_token(token.id)
        session.commit()
    engine.dispose()
    assert api.error(SHOP, token=api.a.admin)["extensions"]["code"] == "UNAUTHENTICATED"


def test_token_use_is_recorded(api: Api) -> None:
    from cartwheel.models import ApiToken
    from cartwheel.tenancy import ShopScope

    api.ok(SHOP, token=api.a.deploy)
    engine = make_engine(api.settings)
    with session_factory(engine)() as session:
        scope = ShopScope(session, api.a.shop_id)
        tokens = {t.token_hash: t.last_used_at for t in scope.list(ApiToken)}
    engine.dispose()
    assert tokens[ApiToken.hash(api.a.deploy)] is not None
    assert tokens[ApiToken.hash(api.a.storefront)] is None


def test_shop_is_the_tokens_shop(api: Api) -> None:
    assert api.ok(SHOP, token=api.a.admin)["shop"] == {
        "id": api.a.shop_gid,
        "handle": "shop-a",
        "name": "SHOP-A",
        "currencyCode": "USD",
    }
    assert api.ok(SHOP, token=api.b.deploy)["shop"]["handle"] == "shop-b"


def test_wrong_scope_is_forbidden(api: Api) -> None:
    # A storefront token reads nothing here; a deploy token cannot touch store data.
    error = api.error("{ products { nodes { id } } }", token=api.a.storefront)
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert error["extensions"]["requiredScopes"] == ["admin"] or "admin" in error["message"]
    error = api.error(
        'mutation { productCreate(input: {handle: "x", title: "X"}) { id } }', token=api.a.deploy
    )
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert api.error(SHOP, token=api.a.storefront)["extensions"]["code"] == "FORBIDDEN"
    # Nothing was written by the refused mutation.
    assert api.ok("{ products { nodes { id } } }", token=api.a.admin)["products"]["nodes"] == []


def test_another_shops_ids_are_not_found_and_never_returned(api: Api) -> None:
    created = api.ok(
        """mutation { productCreate(input: {handle: "secret-b", title: "B only"}) { id } }""",
        token=api.b.admin,
    )
    b_product = created["productCreate"]["id"]
    for query, variables in [
        ("query($id: ID!) { product(id: $id) { id title } }", {"id": b_product}),
        (
            'mutation($id: ID!) { productUpdate(id: $id, input: {title: "pwned"}) { id } }',
            {"id": b_product},
        ),
        ("mutation($id: ID!) { productDelete(id: $id) }", {"id": b_product}),
        (
            'mutation($id: ID!) { productVariantCreate(productId: $id, input: {price: "1"}) '
            "{ id } }",
            {"id": b_product},
        ),
        ("query($id: ID!) { metafields(ownerId: $id) { id } }", {"id": b_product}),
    ]:
        body = api.gql(query, variables, token=api.a.admin)
        assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND", (query, body)
        assert "B only" not in json.dumps(body)
    assert api.ok(
        "query($id: ID!) { product(id: $id) { title } }", {"id": b_product}, token=api.b.admin
    )["product"] == {"title": "B only"}


def test_malformed_id_is_invalid_id(api: Api) -> None:
    error = api.error('{ product(id: "42") { id } }', token=api.a.admin)
    assert error["extensions"]["code"] == "INVALID_ID"
    error = api.error('{ product(id: "gid://cartwheel/Customer/1") { id } }', token=api.a.admin)
    assert error["extensions"]["code"] == "INVALID_ID"


# --- GraphQL limits and error transport -----------------------------------------------


def test_syntax_error_has_a_code(api: Api) -> None:
    error = api.error("{ shop { id ", token=api.a.admin)
    assert error["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"
    assert error["locations"][0]["line"] == 1


def test_unknown_field_is_a_validation_error(api: Api) -> None:
    error = api.error("{ shop { password } }", token=api.a.admin)
    assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"


def test_query_depth_is_limited(api: Api) -> None:
    from cartwheel.api.schema import MAX_QUERY_DEPTH

    # Function -> activeVersion -> function -> ... is a cycle: depth is the only bound.
    def nested(levels: int) -> str:
        names = ["function" if i % 2 == 0 else "activeVersion" for i in range(levels)]
        inner = "id"
        for name in reversed(names):
            inner = f"{name} {{ {inner} }}"
        return "{ functions { nodes { activeVersion { " + inner + " } } } }"

    assert "errors" not in api.gql(nested(MAX_QUERY_DEPTH - 4), token=api.a.admin)
    body = api.gql(nested(MAX_QUERY_DEPTH), token=api.a.admin)
    assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert "depth" in body["errors"][0]["message"]
    # Introspection (what GraphiQL sends) is deep by nature and not counted.
    introspection = "{ __schema { types { fields { type { ofType { ofType { ofType { ofType { name } } } } } } } } }"  # noqa: E501
    assert "errors" not in api.gql(introspection, token=None)


def test_aliases_are_limited(api: Api) -> None:
    from cartwheel.api.schema import MAX_ALIASES

    many = " ".join(f"s{i}: shop {{ id }}" for i in range(MAX_ALIASES + 1))
    error = api.error("{ " + many + " }", token=api.a.admin)
    assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert "aliases" in error["message"]


def test_tokens_are_limited(api: Api) -> None:
    from cartwheel.api.schema import MAX_TOKENS

    error = api.error("{ shop { " + "id " * MAX_TOKENS + "} }", token=api.a.admin)
    assert error["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"
    assert "tokens" in error["message"]


def test_variable_that_does_not_coerce_is_bad_user_input(api: Api) -> None:
    # A value of the wrong enum or scalar type in the variables is the client's mistake.
    query = """mutation($m: [MetafieldsSetInput!]!) { metafieldsSet(metafields: $m) { id } }"""
    bad = [{"ownerId": api.a.shop_gid, "namespace": "n", "key": "k", "type": "json", "value": "1"}]
    error = api.error(query, {"m": bad}, token=api.a.admin)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "$m" in error["message"]
    error = api.error("query($n: Int!) { shop { id } }", {"n": "x"}, token=api.a.admin)
    assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert "$n" in error["message"]


def test_page_size_is_limited(api: Api) -> None:
    error = api.error("{ products(first: 1000) { nodes { id } } }", token=api.a.admin)
    assert error["extensions"]["code"] == "BAD_REQUEST"
    assert "first" in error["message"]


def test_unexpected_errors_are_masked(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    from cartwheel.api import types

    def broken(cls: object, shop: object) -> None:
        raise RuntimeError("connection string postgres://secret@db")

    # Fault injection: a bug deep in a resolver.
    monkeypatch.setattr(types.Shop, "from_model", classmethod(broken))
    body = api.gql(SHOP, token=api.a.admin)
    assert body["errors"][0]["extensions"] == {"code": "INTERNAL_ERROR"}
    assert "secret" not in json.dumps(body)


def test_malformed_body_is_a_bad_request_with_a_code(api: Api) -> None:
    response = api.client.post(
        "/graphql", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    response = api.client.get("/graphql", params={"query": SHOP})
    assert response.status_code in (400, 405)
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


def test_unknown_route_is_json_not_found(api: Api) -> None:
    response = api.client.get("/nope")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"


# --- upload limit ---------------------------------------------------------------------


def test_oversize_body_is_rejected_from_its_content_length(
    migrated_pg_url: str, tmp_path: Path
) -> None:
    client, a, _ = limited_api(tmp_path, migrated_pg_url, max_upload_bytes=10_000)
    with client:
        response = client.post(
            "/graphql",
            content=b"x" * 20_000,
            headers={"content-type": "application/json", "Authorization": f"Bearer {a.admin}"},
        )
    assert response.status_code == 413
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "PAYLOAD_TOO_LARGE"
    assert "10000-byte limit" in error["message"]


@pytest.mark.anyio
async def test_oversize_streamed_body_is_cut_before_it_is_all_read(
    migrated_pg_url: str, tmp_path: Path
) -> None:
    a, _ = seed_tenants(migrated_pg_url)
    app = create_app(make_settings(tmp_path, migrated_pg_url, max_upload_bytes=10_000))
    sent: list[int] = []

    async def body() -> AsyncIterator[bytes]:
        # A well-formed multipart upload of 100 kB in 1 kB chunks without Content-Length
        # (chunked): only the stream tells the size.
        yield (
            b'--x\r\nContent-Disposition: form-data; name="0"; filename="big.wasm"\r\n'
            b"Content-Type: application/wasm\r\n\r\n"
        )
        for i in range(100):
            sent.append(i)
            yield b"\0" * 1_000
        yield b"\r\n--x--\r\n"

    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        response = await client.post(
            "/graphql",
            content=body(),
            headers={
                "content-type": "multipart/form-data; boundary=x",
                "Authorization": f"Bearer {a.admin}",
            },
        )
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"
    assert len(sent) <= 12, f"the server read {len(sent)} kB of a body over a 10 kB limit"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# --- rate limits --------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["memory", "redis", "redis-down"])
def test_rate_limit_per_token(
    migrated_pg_url: str, tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    overrides: dict[str, Any] = {"rate_limit_per_minute": 3}
    if backend == "redis":
        overrides["redis_url"] = request.getfixturevalue("redis_url")
    if backend == "redis-down":
        # Redis configured but gone: limits fall back to in-process counting, no 500s.
        overrides["redis_url"] = "redis://127.0.0.1:1/0"
    client, a, _b = limited_api(tmp_path, migrated_pg_url, **overrides)
    with client:

        def call(token: str) -> httpx.Response:
            return client.post(
                "/graphql", json={"query": SHOP}, headers={"Authorization": f"Bearer {token}"}
            )

        statuses = [call(a.admin).status_code for _ in range(3)]
        assert statuses == [200, 200, 200]
        limited = call(a.admin)
        assert limited.status_code == 429
        assert limited.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
        assert 1 <= int(limited.headers["Retry-After"]) <= 61
        # The budget is per token: another token of the same shop is unaffected.
        fresh = call(a.deploy)
        assert fresh.status_code == 200
        assert fresh.headers["RateLimit-Remaining"] == "2"
        metrics = client.get("/metrics").text
    assert "cartwheel_rate_limited_requests_total 1.0" in metrics
    if backend == "redis":
        import redis

        keys = redis.Redis.from_url(overrides["redis_url"]).keys("cartwheel:ratelimit:*")
        assert len(keys) == 2
        assert all(a.admin.encode() not in k for k in keys)


# --- health, metrics, GraphiQL -----------------------------------------------------------


def test_healthz_checks_the_database(api: Api) -> None:
    response = api.client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok"}


def test_healthz_checks_redis_when_configured(
    migrated_pg_url: str, tmp_path: Path, redis_url: str
) -> None:
    with bare_api(tmp_path, migrated_pg_url, redis_url=redis_url) as client:
        assert client.get("/healthz").json()["checks"] == {"database": "ok", "redis": "ok"}
    # A Redis nobody listens on: unhealthy, and it says which dependency.
    dead = bare_api(tmp_path, migrated_pg_url, redis_url="redis://127.0.0.1:1/0")
    with dead:
        response = dead.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "ok", "redis": "unreachable"}
    assert response.json()["code"] == "DEPENDENCY_UNAVAILABLE"


def test_healthz_reports_an_unreachable_database(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, "postgresql+psycopg://postgres@127.0.0.1:1/none")
    with AppClient(create_app(settings)) as client:
        response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "unreachable"}


def test_metrics_count_requests_per_route(api: Api) -> None:
    api.ok(SHOP, token=api.a.admin)
    api.client.get("/healthz")
    text = api.client.get("/metrics").text
    assert 'cartwheel_http_requests_total{method="POST",route="/graphql",status="200"} 1.0' in text
    assert 'cartwheel_http_requests_total{method="GET",route="/healthz",status="200"} 1.0' in text
    assert "cartwheel_http_request_duration_seconds_bucket" in text
    api.error(SHOP, token=None)
    api.error("{ shop { nope } }", token=api.a.admin)
    text = api.client.get("/metrics").text
    assert 'cartwheel_graphql_errors_total{code="UNAUTHENTICATED"} 1.0' in text
    assert 'cartwheel_graphql_errors_total{code="GRAPHQL_VALIDATION_FAILED"} 1.0' in text


def test_metrics_registry_is_per_app(api: Api, migrated_pg_url: str, tmp_path: Path) -> None:
    api.ok(SHOP, token=api.a.admin)
    other = AppClient(create_app(make_settings(tmp_path / "other", migrated_pg_url)))
    with other:
        text = other.get("/metrics").text
    assert 'route="/graphql"' not in text


def test_graphiql_page_uses_local_assets(api: Api) -> None:
    page = api.client.get("/graphql", headers={"accept": "text/html"})
    assert page.status_code == 200
    assert "/static/graphiql/graphiql.min.js" in page.text
    assert "unpkg.com" not in page.text
    assert "jsdelivr" not in page.text
    asset = api.client.get("/static/graphiql/graphiql.min.js")
    assert asset.status_code == 200
    assert len(asset.content) > 1_000_000


# --- store data ---------------------------------------------------------------------

PRODUCT_FIELDS = "id handle title vendor productType isGiftCard tags variants { id title sku price { amount currencyCode } compareAtPrice { amount } requiresShipping position }"  # noqa: E501


def test_products_and_variants(api: Api) -> None:
    t = api.a.admin
    product = api.ok(
        f"""mutation {{ productCreate(input: {{handle: "tee", title: "Tee", vendor: "Acme",
        productType: "Shirts", tags: ["summer"]}}) {{ {PRODUCT_FIELDS} }} }}""",
        token=t,
    )["productCreate"]
    assert product["handle"] == "tee"
    assert product["tags"] == ["summer"]
    assert product["variants"] == []
    variant = api.ok(
        """mutation($p: ID!) { productVariantCreate(productId: $p, input: {title: "M",
        sku: "TEE-M", price: "19.99", compareAtPrice: "25"}) { id productId price { amount
        currencyCode } compareAtPrice { amount } requiresShipping } }""",
        {"p": product["id"]},
        token=t,
    )["productVariantCreate"]
    assert variant["price"] == {"amount": "19.99", "currencyCode": "USD"}
    assert variant["compareAtPrice"] == {"amount": "25.00"}
    assert variant["productId"] == product["id"]
    updated = api.ok(
        """mutation($v: ID!) { productVariantUpdate(id: $v, input: {price: "17.5",
        requiresShipping: false}) { price { amount } requiresShipping } }""",
        {"v": variant["id"]},
        token=t,
    )["productVariantUpdate"]
    assert updated == {"price": {"amount": "17.50"}, "requiresShipping": False}
    bad = api.error(
        'mutation($v: ID!) { productVariantUpdate(id: $v, input: {price: "-1"}) { id } }',
        {"v": variant["id"]},
        token=t,
    )
    assert bad["extensions"]["code"] == "BAD_REQUEST"
    got = api.ok(
        """query($id: ID!) { product(id: $id) { title variants { sku } }
        productVariant(id: $vid) { sku } }""".replace(
            "query($id: ID!)", "query($id: ID!, $vid: ID!)"
        ),
        {"id": product["id"], "vid": variant["id"]},
        token=t,
    )
    assert got == {
        "product": {"title": "Tee", "variants": [{"sku": "TEE-M"}]},
        "productVariant": {"sku": "TEE-M"},
    }
    renamed = api.ok(
        'mutation($id: ID!) { productUpdate(id: $id, input: {title: "Tee 2", tags: []}) '
        "{ title tags vendor } }",
        {"id": product["id"]},
        token=t,
    )["productUpdate"]
    assert renamed == {"title": "Tee 2", "tags": [], "vendor": "Acme"}
    duplicate = api.error(
        'mutation { productCreate(input: {handle: "tee", title: "Again"}) { id } }', token=t
    )
    assert duplicate["extensions"]["code"] == "CONFLICT"
    assert api.ok(
        "mutation($v: ID!) { productVariantDelete(id: $v) }", {"v": variant["id"]}, token=t
    ) == {"productVariantDelete": variant["id"]}
    assert api.ok(
        "mutation($id: ID!) { productDelete(id: $id) }", {"id": product["id"]}, token=t
    ) == {"productDelete": product["id"]}
    gone = api.error("query($id: ID!) { product(id: $id) { id } }", {"id": product["id"]}, token=t)
    assert gone["extensions"]["code"] == "NOT_FOUND"


def test_products_are_paginated_with_cursors(api: Api) -> None:
    t = api.a.admin
    for i in range(5):
        api.ok(
            f'mutation {{ productCreate(input: {{handle: "p{i}", title: "P{i}"}}) {{ id }} }}',
            token=t,
        )
    api.ok(
        'mutation { productCreate(input: {handle: "b0", title: "B"}) { id } }', token=api.b.admin
    )
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        page = api.ok(
            """query($after: String) { products(first: 2, after: $after) {
            edges { cursor node { handle } } pageInfo { hasNextPage endCursor } } }""",
            {"after": after},
            token=t,
        )["products"]
        pages += 1
        seen += [e["node"]["handle"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == ["p0", "p1", "p2", "p3", "p4"]
    assert pages == 3
    bad = api.error('{ products(after: "???") { nodes { id } } }', token=t)
    assert bad["extensions"]["code"] == "INVALID_CURSOR"


def test_collections(api: Api) -> None:
    t = api.a.admin
    p1 = api.ok('mutation { productCreate(input: {handle: "a", title: "A"}) { id } }', token=t)
    p2 = api.ok('mutation { productCreate(input: {handle: "b", title: "B"}) { id } }', token=t)
    ids = [p1["productCreate"]["id"], p2["productCreate"]["id"]]
    col = api.ok(
        'mutation { collectionCreate(input: {handle: "sale", title: "Sale"}) { id productIds } }',
        token=t,
    )["collectionCreate"]
    assert col["productIds"] == []
    added = api.ok(
        "mutation($c: ID!, $p: [ID!]!) { collectionAddProducts(id: $c, productIds: $p) "
        "{ productIds } }",
        {"c": col["id"], "p": [*ids, ids[0]]},
        token=t,
    )
    assert added["collectionAddProducts"]["productIds"] == ids
    removed = api.ok(
        "mutation($c: ID!, $p: [ID!]!) { collectionRemoveProducts(id: $c, productIds: $p) "
        "{ productIds } }",
        {"c": col["id"], "p": [ids[0]]},
        token=t,
    )
    assert removed["collectionRemoveProducts"]["productIds"] == [ids[1]]
    updated = api.ok(
        'mutation($c: ID!) { collectionUpdate(id: $c, input: {title: "Big sale"}) { title } }',
        {"c": col["id"]},
        token=t,
    )
    assert updated == {"collectionUpdate": {"title": "Big sale"}}
    listed = api.ok("{ collections { nodes { handle productIds } } }", token=t)
    assert listed["collections"]["nodes"] == [{"handle": "sale", "productIds": [ids[1]]}]
    assert api.ok("query($c: ID!) { collection(id: $c) { title } }", {"c": col["id"]}, token=t)
    # Another shop's product cannot be put in this shop's collection.
    other = api.ok(
        'mutation { productCreate(input: {handle: "x", title: "X"}) { id } }', token=api.b.admin
    )["productCreate"]["id"]
    err = api.error(
        "mutation($c: ID!, $p: [ID!]!) { collectionAddProducts(id: $c, productIds: $p) { id } }",
        {"c": col["id"], "p": [other]},
        token=t,
    )
    assert err["extensions"]["code"] == "NOT_FOUND"
    assert api.ok("mutation($c: ID!) { collectionDelete(id: $c) }", {"c": col["id"]}, token=t)


def test_customers(api: Api) -> None:
    t = api.a.admin
    customer = api.ok(
        """mutation { customerCreate(input: {email: "ann@example.com", firstName: "Ann",
        tags: ["vip"], numberOfOrders: 3, amountSpent: "120.5"}) { id displayName tags
        numberOfOrders amountSpent { amount currencyCode } } }""",
        token=t,
    )["customerCreate"]
    assert customer["displayName"] == "Ann"
    assert customer["amountSpent"] == {"amount": "120.50", "currencyCode": "USD"}
    updated = api.ok(
        'mutation($id: ID!) { customerUpdate(id: $id, input: {lastName: "Lee", tags: []}) '
        "{ displayName tags } }",
        {"id": customer["id"]},
        token=t,
    )
    assert updated["customerUpdate"] == {"displayName": "Ann Lee", "tags": []}
    assert api.ok("{ customers { nodes { email } } }", token=t)["customers"]["nodes"] == [
        {"email": "ann@example.com"}
    ]
    assert api.ok("query($id: ID!) { customer(id: $id) { id } }", {"id": customer["id"]}, token=t)
    assert api.ok("mutation($id: ID!) { customerDelete(id: $id) }", {"id": customer["id"]}, token=t)


def test_delivery_options_and_payment_methods(api: Api) -> None:
    t = api.a.admin
    option = api.ok(
        """mutation { deliveryOptionCreate(input: {handle: "express", title: "Express",
        cost: "15", deliveryMethodType: SHIPPING}) { id handle cost { amount currencyCode }
        deliveryMethodType active } }""",
        token=t,
    )["deliveryOptionCreate"]
    assert option["cost"] == {"amount": "15.00", "currencyCode": "USD"}
    assert option["deliveryMethodType"] == "SHIPPING"
    assert option["active"] is True
    changed = api.ok(
        "mutation($id: ID!) { deliveryOptionUpdate(id: $id, input: {active: false, "
        "deliveryMethodType: PICK_UP}) { active deliveryMethodType } }",
        {"id": option["id"]},
        token=t,
    )["deliveryOptionUpdate"]
    assert changed == {"active": False, "deliveryMethodType": "PICK_UP"}
    assert api.ok("{ deliveryOptions { nodes { handle } } }", token=t) == {
        "deliveryOptions": {"nodes": [{"handle": "express"}]}
    }
    assert api.ok(
        "mutation($id: ID!) { deliveryOptionDelete(id: $id) }", {"id": option["id"]}, token=t
    )
    method = api.ok(
        'mutation { paymentMethodCreate(input: {name: "Card", position: 1}) '
        "{ id name position active } }",
        token=t,
    )["paymentMethodCreate"]
    assert method["name"] == "Card"
    assert method["position"] == 1
    renamed = api.ok(
        'mutation($id: ID!) { paymentMethodUpdate(id: $id, input: {name: "Credit card"}) '
        "{ name } }",
        {"id": method["id"]},
        token=t,
    )
    assert renamed == {"paymentMethodUpdate": {"name": "Credit card"}}
    assert api.ok("{ paymentMethods { nodes { name } } }", token=t) == {
        "paymentMethods": {"nodes": [{"name": "Credit card"}]}
    }
    assert api.ok(
        "mutation($id: ID!) { paymentMethodDelete(id: $id) }", {"id": method["id"]}, token=t
    )
    missing = api.error("mutation { paymentMethodCreate(input: {position: 1}) { id } }", token=t)
    assert missing["extensions"]["code"] == "BAD_REQUEST"


def test_metafields(api: Api) -> None:
    t = api.a.admin
    product = api.ok(
        'mutation { productCreate(input: {handle: "m", title: "M"}) { id } }', token=t
    )["productCreate"]["id"]
    set_ = """mutation($m: [MetafieldsSetInput!]!) { metafieldsSet(metafields: $m)
        { id ownerId namespace key type value } }"""
    created = api.ok(
        set_,
        {
            "m": [
                {
                    "ownerId": product,
                    "namespace": "app",
                    "key": "cfg",
                    "type": "JSON",
                    "value": '{"a": 1}',
                },
                {
                    "ownerId": api.a.shop_gid,
                    "namespace": "app",
                    "key": "n",
                    "type": "NUMBER_INTEGER",
                    "value": "5",
                },
            ]
        },
        token=t,
    )["metafieldsSet"]
    assert [m["ownerId"] for m in created] == [product, api.a.shop_gid]
    replaced = api.ok(
        set_,
        {
            "m": [
                {
                    "ownerId": product,
                    "namespace": "app",
                    "key": "cfg",
                    "type": "JSON",
                    "value": '{"a": 2}',
                }
            ]
        },
        token=t,
    )["metafieldsSet"][0]
    assert replaced["id"] == created[0]["id"]
    assert replaced["value"] == '{"a": 2}'
    bad = api.error(
        set_,
        {
            "m": [
                {
                    "ownerId": product,
                    "namespace": "app",
                    "key": "x",
                    "type": "JSON",
                    "value": "{nope",
                }
            ]
        },
        token=t,
    )
    assert bad["extensions"]["code"] == "INVALID_METAFIELD"
    listed = api.ok(
        "query($o: ID!) { metafields(ownerId: $o) { key value } }", {"o": product}, token=t
    )
    assert listed == {"metafields": [{"key": "cfg", "value": '{"a": 2}'}]}
    assert api.ok(
        "mutation($id: ID!) { metafieldDelete(id: $id) }", {"id": replaced["id"]}, token=t
    )
    assert api.ok(
        "query($o: ID!) { metafields(ownerId: $o) { key } }", {"o": product}, token=t
    ) == {"metafields": []}
    # Another shop's product as owner: NOT_FOUND, nothing written there.
    other = api.ok(
        'mutation { productCreate(input: {handle: "o", title: "O"}) { id } }', token=api.b.admin
    )["productCreate"]["id"]
    err = api.error(
        set_,
        {"m": [{"ownerId": other, "namespace": "app", "key": "x", "type": "JSON", "value": "{}"}]},
        token=t,
    )
    assert err["extensions"]["code"] == "NOT_FOUND"
    other_shop = api.error(
        set_,
        {
            "m": [
                {
                    "ownerId": api.b.shop_gid,
                    "namespace": "app",
                    "key": "x",
                    "type": "JSON",
                    "value": "{}",
                }
            ]
        },
        token=t,
    )
    assert other_shop["extensions"]["code"] == "NOT_FOUND"
    engine = make_engine(api.settings)
    with engine.connect() as conn:
        count = conn.execute(
            sa.text("SELECT count(*) FROM metafields WHERE shop_id = :s"), {"s": api.b.shop_id}
        ).scalar()
    engine.dispose()
    assert count == 0


def test_list_pages_cost_a_constant_number_of_statements(api: Api) -> None:
    t = api.a.admin
    engine = api.client.app.state.services.engine
    statements: list[str] = []

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    def add_products(start: int, stop: int) -> None:
        for i in range(start, stop):
            pid = api.ok(
                f'mutation {{ productCreate(input: {{handle: "c{i}", title: "C{i}"}}) {{ id }} }}',
                token=t,
            )["productCreate"]["id"]
            for size in ("S", "M"):
                api.ok(
                    "mutation($p: ID!, $t: String) { productVariantCreate(productId: $p, "
                    'input: {title: $t, price: "1"}) { id } }',
                    {"p": pid, "t": size},
                    token=t,
                )
            api.ok(
                "mutation($p: ID!) { metafieldsSet(metafields: [{ownerId: $p, namespace: "
                '"a", key: "b", type: JSON, value: "{}"}]) { id } }',
                {"p": pid},
                token=t,
            )

    def page_cost() -> int:
        statements.clear()
        sa.event.listen(engine, "before_cursor_execute", count)
        try:
            body = api.ok(
                "{ products(first: 100) { nodes { id variants { id price { amount } } } } "
                "collections { nodes { productIds } } functions { nodes { activeVersion "
                "{ id } } } discounts { metafields { key } } }",
                token=t,
            )
        finally:
            sa.event.remove(engine, "before_cursor_execute", count)
        assert all(len(p["variants"]) == 2 for p in body["products"]["nodes"])
        return len(statements)

    add_products(0, 2)
    few = page_cost()
    add_products(2, 12)
    assert page_cost() == few, statements


def test_a_request_on_a_connection_the_database_dropped_is_retried_once(
    migrated_pg_url: str, tmp_path: Path, drop_connections: Callable[[str], int]
) -> None:
    a, _ = seed_tenants(migrated_pg_url)
    url = migrated_pg_url + "?application_name=admin-dropped"
    with bare_api(tmp_path, url) as client:
        headers = {"Authorization": f"Bearer {a.admin}"}
        first = client.post("/graphql", json={"query": SHOP}, headers=headers)
        assert first.json()["data"]["shop"]["handle"] == "shop-a"
        # The pool's idle connections die (a database restart); none is pinged before
        # use, so the next request's first statement meets a dead one.
        assert drop_connections("admin-dropped") >= 1
        again = client.post("/graphql", json={"query": SHOP}, headers=headers)
        assert again.status_code == 200
        assert again.json() == first.json()
