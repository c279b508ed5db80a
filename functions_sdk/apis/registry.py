"""The Function API targets: name, input schema, owner, limits and checkout order.

A *target* is one extension point of checkout (Shopify's names). Checkout runs the
active functions of each target in `TARGETS` order: cart transform → cart-line
discounts → delivery customization → delivery discounts → payment customization →
validation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Literal

import strawberry
from graphql import GraphQLSchema

from functions_sdk.apis import inputs
from functions_sdk.errors import CartwheelError
from functions_sdk.limits import Limits

OwnerField = Literal[
    "cartTransform", "discount", "deliveryCustomization", "paymentCustomization", "validation"
]


class UnknownTargetError(CartwheelError):
    """A target name that is not one of `TARGETS`."""

    code = "UNKNOWN_TARGET"


@dataclass(frozen=True, slots=True)
class Target:
    """One Function API target.

    `owner_field` is the root field of the input schema that exposes the function
    instance's owner (its configuration metafields), e.g. `discount`. The input schema
    is defined in `functions_sdk.apis.inputs`, the output schema in
    `functions_sdk.apis.outputs` (looked up by target name).
    """

    name: str
    title: str
    owner_field: OwnerField
    order: int
    input_root: type = field(repr=False)
    limits: Limits = field(default_factory=Limits)

    @property
    def input_schema(self) -> strawberry.Schema:
        """The Strawberry input schema (reference execution, SDL)."""
        return _schema(self.input_root)

    @property
    def graphql_schema(self) -> GraphQLSchema:
        """The graphql-core schema behind `input_schema`: validation and execution."""
        return _schema(self.input_root)._schema

    def input_sdl(self) -> str:
        """The input schema in GraphQL SDL, as `cartwheel fn schema` prints it."""
        return self.input_schema.as_str()

    @property
    def output_schema(self) -> GraphQLSchema:
        """The output schema (GraphQL input types, `functions_sdk.apis.outputs`)."""
        from functions_sdk.apis import outputs

        return outputs.output_schema(self.name)

    def output_sdl(self) -> str:
        """The output schema in GraphQL SDL, as `cartwheel fn schema --output` prints it."""
        from functions_sdk.apis import outputs

        return outputs.output_sdl(self.name)


@cache
def _schema(root: type) -> strawberry.Schema:
    return inputs.build_schema(root)


TARGETS: tuple[Target, ...] = (
    Target("cart.transform.run", "Cart transform", "cartTransform", 0, inputs.CartTransformInput),
    Target(
        "cart.lines.discounts.generate.run",
        "Cart line discounts",
        "discount",
        1,
        inputs.DiscountInput,
    ),
    Target(
        "cart.delivery-options.transform.run",
        "Delivery customization",
        "deliveryCustomization",
        2,
        inputs.DeliveryCustomizationInput,
    ),
    Target(
        "cart.delivery-options.discounts.generate.run",
        "Delivery discounts",
        "discount",
        3,
        inputs.DiscountInput,
    ),
    Target(
        "cart.payment-methods.transform.run",
        "Payment customization",
        "paymentCustomization",
        4,
        inputs.PaymentCustomizationInput,
    ),
    Target(
        "cart.validations.generate.run",
        "Cart validation",
        "validation",
        5,
        inputs.ValidationInput,
    ),
)
"""Every target, in checkout order."""

_BY_NAME = {t.name: t for t in TARGETS}


def get_target(name: str) -> Target:
    """The target called `name`.

    Raises:
        UnknownTargetError: `name` is not a target; the message lists the valid names.
    """
    try:
        return _BY_NAME[name]
    except KeyError:
        valid = ", ".join(t.name for t in TARGETS)
        raise UnknownTargetError(
            f"Unknown Function API target {name!r}. Use one of: {valid}.", target=name
        ) from None
