"""The storefront API through the real app (ASGI stack, lifespan), on PostgreSQL."""

from __future__ import annotations

import dataclasses
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from cartwheel.api.testclient import AppClient
from cartwheel.app import create_app
from cartwheel.db import make_engine, session_factory
from cartwheel.demo import create_product
from cartwheel.deploy import Deployer, DeployRequest, activate_version
from cartwheel.models import (
    DeliveryOption,
    Function,
    FunctionInstance,
    FunctionVersion,
    InstanceKind,
    PaymentMethod,
    ProductVariant,
)
from cartwheel.settings import Settings
from cartwheel.tenancy import ShopScope, create_shop, issue_token

FIXTURES = Path(__file__).parent / "checkout_fixtures"
LINES = "cart.lines.discounts.generate.run"


@dataclass
class Env:
    client: AppClient
    storefront: dict[str, str]
    admin: dict[str, str]
    other_shop: dict[str, str]
    variants: list[str]
    settings: Settings
    shop_id: int

    def post(self, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        return self.client.post(
            path, content=orjson.dumps(body), headers=headers or self.storefront
        )


def _shop(session: Any, handle: str, currency: str = "USD") -> tuple[int, list[str]]:
    shop = create_shop(session, handle=handle, name=handle, currency_code=currency)
    session.flush()
    scope = ShopScope(session, shop.id)
    for n, price in enumerate(("20.00", "5.00")):
        create_product(
            scope,
            handle=f"p{n}",
            title=f"Product {n}",
            variants=[("Default", f"S{n}", price, None)],
        )
    scope.create(
        DeliveryOption,
        handle="standard",
        title="Standard",
        cost=Decimal("5.00"),
        currency_code=currency,
    )
    scope.create(PaymentMethod, name="Card")
    variants = [v.gid for v in scope.list(ProductVariant, order_by=(ProductVariant.id,))]
    return shop.id, variants


@pytest.fixture
def env(migrated_pg_url: str, tmp_path: Path) -> Iterator[Env]:
    settings = Settings(database_url=migrated_pg_url, data_dir=tmp_path)
    engine = make_engine(settings)
    factory = session_factory(engine)
    with factory() as session, session.begin():
        shop_id, variants = _shop(session, "main")
        other_id, _ = _shop(session, "other")
        _, storefront = issue_token(session, shop_id, ["storefront"])
        _, admin = issue_token(session, shop_id, ["admin"])
        _, deploy_only = issue_token(session, shop_id, ["deploy"])
        _, other = issue_token(session, other_id, ["storefront"])
    engine.dispose()
    with AppClient(create_app(settings)) as client:
        env = Env(
            client,
            {"Authorization": f"Bearer {storefront}"},
            {"Authorization": f"Bearer {admin}"},
            {"Authorization": f"Bearer {other}"},
            variants,
            settings,
            shop_id,
        )
        env.deploy_only = {"Authorization": f"Bearer {deploy_only}"}  # type: ignore[attr-defined]
        yield env


def deploy_echo_discount(env: Env, tmp_path: Path, ops: list[dict[str, Any]]) -> None:
    wasm_path = tmp_path / "echo.wasm"
    subprocess.run(
        [
            "clang",
            "--target=wasm32-wasi",
            "-Oz",
            "-s",
            "-o",
            str(wasm_path),
            str(FIXTURES / "echo_config.c"),
        ],
        check=True,
    )
    engine = make_engine(env.settings)
    factory = session_factory(engine)
    deployer = Deployer(env.settings, factory)
    query = 'query Input { discount { metafield(namespace: "test", key: "ops") { jsonValue } } }'
    with factory() as session:
        outcome = deployer.deploy(
            ShopScope(session, env.shop_id),
            DeployRequest(
                handle="echo",
                title="Echo",
                target=LINES,
                wasm=wasm_path.read_bytes(),
                input_query=query,
            ),
        )
    deployer.schedule(env.shop_id, outcome.version)
    with factory() as session:
        scope = ShopScope(session, env.shop_id)
        function = scope.get(Function, outcome.version.function_id)
        activate_version(scope, function, scope.get(FunctionVersion, outcome.version.id))
        function_id = function.id
    with factory() as session, session.begin():
        scope = ShopScope(session, env.shop_id)
        instance = scope.create(
            FunctionInstance,
            function_id=function_id,
            kind=InstanceKind.DISCOUNT,
            title="Ten off",
            discount_classes=["PRODUCT"],
        )
        scope.set_metafield(
            instance, "test", "ops", "json", orjson.dumps({"operations": ops}).decode()
        )
    engine.dispose()


def cart_now(env: Env, key: str) -> Any:
    return env.client.get(f"/storefront/carts/{key}", headers=env.storefront).json()


def test_authentication_and_scopes(env: Env) -> None:
    response = env.client.post("/storefront/carts")
    assert (response.status_code, response.json()["error"]["code"]) == (401, "UNAUTHENTICATED")
    response = env.client.post("/storefront/carts", headers=env.deploy_only)  # type: ignore[attr-defined]
    assert (response.status_code, response.json()["error"]["code"]) == (403, "FORBIDDEN")


def test_cart_lifecycle(env: Env) -> None:
    v0, v1 = env.variants
    response = env.post("/storefront/carts", {"lines": [{"merchandiseId": v0, "quantity": 2}]})
    assert response.status_code == 201
    cart = response.json()
    key = cart["id"].rsplit("/", 1)[1]
    assert cart["currencyCode"] == "USD"
    cart = env.post(
        f"/storefront/carts/{key}/lines",
        {"lines": [{"merchandiseId": v0, "quantity": 1}, {"merchandiseId": v1}]},
    ).json()
    assert [(ln["merchandiseId"], ln["quantity"]) for ln in cart["lines"]] == [(v0, 3), (v1, 1)]
    line_key = cart["lines"][1]["id"].rsplit("/", 1)[1]
    cart = env.client.request(
        "PATCH",
        f"/storefront/carts/{key}/lines/{line_key}",
        content=b'{"quantity": 4}',
        headers=env.storefront,
    ).json()
    assert cart["lines"][1]["quantity"] == 4
    cart = env.client.request(
        "DELETE", f"/storefront/carts/{key}/lines/{line_key}", headers=env.storefront
    ).json()
    assert len(cart["lines"]) == 1

    def put(path, body):
        return env.client.request(
            "PUT",
            f"/storefront/carts/{key}/{path}",
            content=orjson.dumps(body),
            headers=env.storefront,
        )

    assert put("buyer-identity", {"email": "a@b.co"}).json()["buyerIdentity"]["email"] == "a@b.co"
    address = {"countryCode": "US", "provinceCode": "NY", "city": "New York", "zip": "10001"}
    assert put("delivery-address", address).json()["deliveryAddress"] == address
    assert (
        put("selected-delivery-option", {"handle": "standard"}).json()[
            "selectedDeliveryOptionHandle"
        ]
        == "standard"
    )
    codes = put("discount-codes", {"discountCodes": ["TEN", "ten", "Other"]}).json()[
        "discountCodes"
    ]
    assert codes == ["TEN", "Other"]
    assert env.client.get(f"/storefront/carts/{key}", headers=env.storefront).json() == cart_now(
        env, key
    )


def test_bad_requests_name_the_field(env: Env) -> None:
    v0 = env.variants[0]
    response = env.post("/storefront/carts", {"lines": [{"merchandiseId": v0, "quantity": 0}]})
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "quantity"
    response = env.post(
        "/storefront/carts", {"lines": [{"merchandiseId": "gid://cartwheel/ProductVariant/999999"}]}
    )
    assert response.status_code == 404
    response = env.client.post("/storefront/carts", content=b"{nope", headers=env.storefront)
    assert response.json()["error"]["code"] == "BAD_REQUEST"


def test_carts_of_another_shop_are_not_found(env: Env) -> None:
    cart = env.post("/storefront/carts", {"lines": [{"merchandiseId": env.variants[0]}]}).json()
    key = cart["id"].rsplit("/", 1)[1]
    assert env.client.get(f"/storefront/carts/{key}", headers=env.other_shop).status_code == 404
    assert env.post(f"/storefront/carts/{key}/checkout", headers=env.other_shop).status_code == 404


def test_checkout_prices_and_debug_only_for_admin(env: Env, tmp_path: Path) -> None:
    cart = env.post(
        "/storefront/carts", {"lines": [{"merchandiseId": env.variants[0], "quantity": 3}]}
    ).json()
    key = cart["id"].rsplit("/", 1)[1]
    line_id = cart["lines"][0]["id"]
    deploy_echo_discount(
        env,
        tmp_path,
        [
            {
                "productDiscountsAdd": {
                    "selectionStrategy": "FIRST",
                    "candidates": [
                        {
                            "message": "10%",
                            "targets": [{"cartLine": {"id": line_id}}],
                            "value": {"percentage": {"value": "10"}},
                        }
                    ],
                }
            }
        ],
    )
    body = env.post(f"/storefront/carts/{key}/checkout?debug=1").json()
    assert "diagnostics" not in body
    assert body["totals"] == {
        "subtotal": "60.00",
        "lineDiscounts": "6.00",
        "orderDiscounts": "0.00",
        "shipping": "5.00",
        "shippingDiscounts": "0.00",
        "discounts": "6.00",
        "total": "59.00",
    }
    assert body["lines"][0]["discountAllocations"][0]["amount"] == "6.00"
    assert body["deliveryGroups"][0]["deliveryOptions"][0]["total"] == "5.00"
    assert body["paymentMethods"][0]["name"] == "Card"
    assert body["blocked"] is False
    debug = env.post(f"/storefront/carts/{key}/checkout?debug=1", headers=env.admin).json()
    (fn,) = debug["diagnostics"]["functions"]
    assert (fn["status"], fn["operations"]) == ("succeeded", 1)
    assert debug["diagnostics"]["timingsMs"]["wasm"] > 0


def _peak_connections_in_use(settings: Settings, storefront: dict[str, str], cart: str) -> int:
    """Most pooled database connections in use at once while 8 threads each send 15
    checkouts of `cart` to an app built with `settings` (a storefront request holds
    one for as long as it runs in its worker thread)."""
    app = create_app(settings)
    peak = 0
    with AppClient(app) as client:
        pool = app.state.services.engine.pool
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, pool.checkedout())
                time.sleep(0.0002)

        def checkouts() -> None:
            for _ in range(15):
                response = client.post(f"/storefront/carts/{cart}/checkout", headers=storefront)
                assert response.status_code == 200

        sampler = threading.Thread(target=sample)
        sampler.start()
        buyers = [threading.Thread(target=checkouts) for _ in range(8)]
        for t in buyers:
            t.start()
        for t in buyers:
            t.join()
        done.set()
        sampler.join()
    return peak


def test_storefront_threads_bound_the_checkouts_a_process_runs_at_once(env: Env) -> None:
    cart = env.post("/storefront/carts", {"lines": [{"merchandiseId": env.variants[0]}]})
    key = cart.json()["id"].rsplit("/", 1)[1]
    bounded = dataclasses.replace(env.settings, storefront_threads=2)
    assert 1 <= _peak_connections_in_use(bounded, env.storefront, key) <= 2
    # The same load with room for 8 does run more at once (the sampling sees it).
    roomy = dataclasses.replace(env.settings, storefront_threads=8)
    assert _peak_connections_in_use(roomy, env.storefront, key) > 2


def test_storefront_threads_setting() -> None:
    assert Settings.from_env({}).storefront_threads == 2
    assert Settings.from_env({"CARTWHEEL_STOREFRONT_THREADS": "4"}).storefront_threads == 4
    with pytest.raises(ValueError, match="CARTWHEEL_STOREFRONT_THREADS must be at least 1"):
        Settings.from_env({"CARTWHEEL_STOREFRONT_THREADS": "0"})


def test_a_checkout_on_a_connection_the_database_dropped_is_retried_once(
    env: Env, drop_connections: Callable[[str], int]
) -> None:
    cart = env.post("/storefront/carts", {"lines": [{"merchandiseId": env.variants[0]}]})
    key = cart.json()["id"].rsplit("/", 1)[1]
    tagged = dataclasses.replace(
        env.settings, database_url=env.settings.database_url + "?application_name=dropped"
    )
    with AppClient(create_app(tagged)) as client:
        path = f"/storefront/carts/{key}/checkout"
        first = client.post(path, headers=env.storefront)
        assert first.status_code == 200
        # This app's pooled connections die while idle (as in a database restart); no
        # connection is pinged before use, so the next request meets a dead one first.
        assert drop_connections("dropped") >= 1
        again = client.post(path, headers=env.storefront)
        assert again.status_code == 200, again.text
        assert again.json()["totals"] == first.json()["totals"]
