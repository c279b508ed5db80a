"""The demo shop: realistic content, seeded once, fresh tokens on demand."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from cartwheel.demo import issue_demo_tokens, seed_demo
from cartwheel.errors import AuthenticationError, NotFoundError
from cartwheel.models import (
    ApiToken,
    Cart,
    Collection,
    CollectionMembership,
    Customer,
    DeliveryMethodType,
    DeliveryOption,
    Metafield,
    PaymentMethod,
    Product,
    ProductVariant,
)
from cartwheel.tenancy import ShopScope, authenticate, create_shop


def test_demo_content(any_db_session: Session) -> None:
    demo = seed_demo(any_db_session)
    scope = ShopScope(any_db_session, demo.shop_id)
    assert scope.shop.handle == "demo"
    assert scope.count(Product) == len(demo.product_ids) == 7
    assert scope.count(ProductVariant) >= 7
    assert all(p.tags for p in scope.list(Product))
    assert scope.count(Collection) == 4
    assert scope.count(CollectionMembership) >= 6
    vip = scope.get(Customer, demo.vip_customer_id)
    assert "vip" in vip.tags
    assert vip.number_of_orders > 0
    assert {c.id for c in scope.list(Customer)} == set(demo.customer_ids)
    assert [o.handle for o in scope.list(DeliveryOption)] == [
        "standard",
        "express",
        "local",
        "pickup",
    ]
    assert scope.list(DeliveryOption)[3].delivery_method_type is DeliveryMethodType.PICK_UP
    assert scope.count(PaymentMethod) == 4
    gift = scope.list(Product, Product.handle == "gift-card")[0]
    assert gift.is_gift_card
    assert not any(v.requires_shipping for v in gift.variants)
    cart = scope.get(Cart, demo.cart_id)
    assert cart.customer_id == vip.id
    assert cart.discount_codes == ["WELCOME10"]
    assert len(cart.lines) == 3
    assert scope.count(Metafield) >= 5


def test_seeding_is_idempotent(any_db_session: Session) -> None:
    first = seed_demo(any_db_session)
    second = seed_demo(any_db_session)
    assert second == first
    assert ShopScope(any_db_session, first.shop_id).count(Product) == 7


def test_a_shop_with_the_handle_that_is_not_the_demo_is_left_alone(
    any_db_session: Session,
) -> None:
    create_shop(any_db_session, handle="demo", name="Someone's real shop")
    with pytest.raises(NotFoundError, match="another handle"):
        seed_demo(any_db_session)
    seeded = seed_demo(any_db_session, handle="demo-2")
    assert ShopScope(any_db_session, seeded.shop_id).shop.handle == "demo-2"


def test_demo_tokens_replace_the_previous_ones(any_db_session: Session) -> None:
    demo = seed_demo(any_db_session)
    first = issue_demo_tokens(any_db_session, demo.shop_id)
    assert set(first) == {"admin", "deploy", "storefront"}
    for scope_name, raw in first.items():
        assert authenticate(any_db_session, raw).scopes == {scope_name}
    second = issue_demo_tokens(any_db_session, demo.shop_id)
    for raw in first.values():
        with pytest.raises(AuthenticationError):
            authenticate(any_db_session, raw)
    assert authenticate(any_db_session, second["deploy"]).shop_id == demo.shop_id
    live = ShopScope(any_db_session, demo.shop_id).list(ApiToken, ApiToken.revoked_at.is_(None))
    assert len(live) == 3
