"""The demo shop with the example functions: `install_demo_functions` (PostgreSQL), and
`cartwheel demo --serve` on the embedded default (SQLite, no Redis) checked out through
the storefront API over HTTP."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from cartwheel.db import make_engine, session_factory
from cartwheel.demo import (
    DEMO_DISCOUNT_TITLE,
    install_demo_functions,
    issue_demo_tokens,
    seed_demo,
)
from cartwheel.errors import NotFoundError
from cartwheel.models import (
    Collection,
    Function,
    FunctionInstance,
    FunctionVersion,
    InstanceKind,
)
from cartwheel.settings import Settings
from cartwheel.tenancy import ShopScope

CARTWHEEL = Path(sys.executable).parent / "cartwheel"


def test_install_is_idempotent_and_keeps_the_merchants_configuration(
    migrated_pg_url: str, tmp_path: Path
) -> None:
    settings = Settings(database_url=migrated_pg_url, data_dir=tmp_path)
    engine = make_engine(settings)
    factory = session_factory(engine)
    try:
        with factory() as session, session.begin():
            shop_id = seed_demo(session).shop_id
            issue_demo_tokens(session, shop_id)
        first = install_demo_functions(settings, factory, shop_id)
        assert [f.handle for f in first] == ["tiered-vip-discount", "remote-area-delivery"]
        assert [f.instance_kind for f in first] == [
            InstanceKind.DISCOUNT,
            InstanceKind.DELIVERY_CUSTOMIZATION,
        ]
        assert all(f.created for f in first)
        with factory() as session:
            scope = ShopScope(session, shop_id)
            for installed in first:
                function = scope.get(Function, installed.function_id)
                assert function.active_version_id == installed.version_id
            discount = scope.get(FunctionInstance, first[0].instance_id)
            assert discount.title == DEMO_DISCOUNT_TITLE
            assert discount.discount_codes == []  # automatic
            (config,) = scope.metafields(discount)
            value = json.loads(config.value)
            (sale,) = scope.list(Collection, Collection.handle == "sale")
            assert value["excludedCollectionIds"] == [sale.gid]
            assert value["vipTags"] == ["vip"]
            scope.set_metafield(
                discount, config.namespace, config.key, config.type, '{"tiers": []}'
            )
            session.commit()

        second = install_demo_functions(settings, factory, shop_id)
        assert [(f.function_id, f.version_id, f.instance_id) for f in second] == [
            (f.function_id, f.version_id, f.instance_id) for f in first
        ]
        assert not any(f.created for f in second)
        with factory() as session:
            scope = ShopScope(session, shop_id)
            assert len(scope.list(FunctionVersion)) == 2
            assert len(scope.list(FunctionInstance)) == 2
            (config,) = scope.metafields(scope.get(FunctionInstance, first[0].instance_id))
            assert config.value == '{"tiers": []}'  # the merchant's edit survives

        with pytest.raises(NotFoundError) as missing:
            install_demo_functions(settings, factory, shop_id, examples_dir=tmp_path / "none")
        assert "--no-functions" in missing.value.message
    finally:
        engine.dispose()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _first_json(path: Path, process: subprocess.Popen[bytes]) -> dict[str, Any]:
    """The JSON document `cartwheel demo --json` prints before serving."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        text = path.read_text()
        if text.strip():
            try:
                document, _ = json.JSONDecoder().raw_decode(text.lstrip())
            except json.JSONDecodeError:
                pass
            else:
                return document  # type: ignore[no-any-return]
        assert process.poll() is None, f"cartwheel demo exited: {text}"
        time.sleep(0.2)
    pytest.fail("cartwheel demo printed no JSON in 120 s")


@pytest.mark.sqlite
def test_demo_serve_on_sqlite_checks_out_with_the_example_functions(tmp_path: Path) -> None:
    env = {**os.environ, "CARTWHEEL_DATA_DIR": str(tmp_path / "data")}
    for name in ("DATABASE_URL", "REDIS_URL"):
        env.pop(name, None)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    out = tmp_path / "demo.out"
    with out.open("wb") as sink:
        demo = subprocess.Popen(
            [str(CARTWHEEL), "demo", "--serve", "--port", str(port), "--json"],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        document = _first_json(out, demo)
        assert [f["handle"] for f in document["functions"]] == [
            "tiered-vip-discount",
            "remote-area-delivery",
        ]
        deadline = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(f"{url}/healthz", timeout=2)
                if health.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert demo.poll() is None, out.read_text()
            assert time.monotonic() < deadline, "the demo server did not come up"
            time.sleep(0.2)
        assert health.json()["checks"] == {"database": "ok"}  # no Redis

        response = httpx.post(
            document["checkoutUrl"],
            headers={"Authorization": f"Bearer {document['tokens']['storefront']}"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        checkout = response.json()
        allocations = {
            line["title"]: [
                (a["title"], a["message"], a["amount"]) for a in line["discountAllocations"]
            ]
            for line in checkout["lines"]
        }
        # 2 tees + a tote count (the linen shirt is in the excluded Sale collection):
        # 3 items → 10%, VIP +5% → 15% of 79.50 and 24.00.
        assert allocations == {
            "M / Stone": [(DEMO_DISCOUNT_TITLE, "Buy 3+, save 10% + VIP 5%", "11.93")],
            "M / Sand": [],
            "Natural": [(DEMO_DISCOUNT_TITLE, "Buy 3+, save 10% + VIP 5%", "3.60")],
        }
        assert checkout["totals"]["lineDiscounts"] == "15.53"
        # The delivery customization: Ontario is a "remote" province in its configuration.
        options = checkout["deliveryGroups"][0]["deliveryOptions"]
        assert "express" not in [o["handle"] for o in options]
        assert all(o["title"].endswith("(remote area: allow 3-5 extra days)") for o in options)
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGTERM)
            try:
                demo.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(demo.pid, signal.SIGKILL)
                demo.wait()

    # Again, without serving: the same functions and instances, nothing new.
    again = subprocess.run(
        [str(CARTWHEEL), "demo", "--json"], env=env, capture_output=True, text=True, timeout=120
    )
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["functions"] == document["functions"]
