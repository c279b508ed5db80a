"""Functions in the admin API: deploy, versions, activation and rollback (`deploy`
scope, or `admin`), function instances (discounts, customizations, validations) and
their run logs (`admin` scope)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
import strawberry
from sqlalchemy.orm import selectinload
from strawberry.file_uploads import Upload

from cartwheel import models as m
from cartwheel.api.permissions import ADMIN, DEPLOY, field, mutation
from cartwheel.api.store import (
    DEFAULT_PAGE_SIZE,
    Info_,
    decode_cursor,
    each,
    id_page,
    page_size,
)
from cartwheel.api.types import (
    CartTransform,
    CombinesWithInput,
    Connection,
    DeliveryCustomization,
    Discount,
    DiscountClass,
    Edge,
    Function,
    FunctionInstance,
    FunctionRun,
    FunctionVersion,
    MetafieldInput,
    PageInfo,
    PaymentCustomization,
    Validation,
    encode_cursor,
)
from cartwheel.deploy import DeployRequest, activate_version, rollback_version
from cartwheel.errors import InvalidRequestError, NotFoundError
from cartwheel.tenancy import ShopScope
from functions_sdk.apis import get_target

KIND_BY_OWNER_FIELD: dict[str, m.InstanceKind] = {
    "discount": m.InstanceKind.DISCOUNT,
    "deliveryCustomization": m.InstanceKind.DELIVERY_CUSTOMIZATION,
    "paymentCustomization": m.InstanceKind.PAYMENT_CUSTOMIZATION,
    "validation": m.InstanceKind.VALIDATION,
    "cartTransform": m.InstanceKind.CART_TRANSFORM,
}
"""The kind of instance each target's function can back (by the target's owner field)."""

MAX_DISCOUNT_CODES = 100
MAX_INSTANCE_METAFIELDS = 25


# --- inputs -------------------------------------------------------------------------


@strawberry.input(description="The owner metafield whose JSON value supplies query variables.")
class InputVariablesInput:
    namespace: str
    key: str


@strawberry.input(description="A function deploy: everything but the module bytes.")
class FunctionDeployInput:
    handle: str
    title: str
    target: str
    input_query: str
    input_variables: InputVariablesInput | None = None


@strawberry.type(description="What a deploy resolved to.")
class FunctionDeployResult:
    function: Function
    version: FunctionVersion
    created: bool = strawberry.field(
        description="False when identical content was deployed before (idempotent deploy)."
    )


@strawberry.input(description="A new discount backed by a function.")
class DiscountCreateInput:
    function_id: strawberry.ID
    title: str
    discount_classes: list[DiscountClass]
    combines_with: CombinesWithInput | None = None
    codes: list[str] = strawberry.field(
        default_factory=list, description="Codes that trigger it; empty for an automatic one."
    )
    enabled: bool = True
    metafields: list[MetafieldInput] = strawberry.field(default_factory=list)


@strawberry.input(description="Changes to a discount; omitted fields stay as they are.")
class DiscountUpdateInput:
    title: str | None = strawberry.UNSET
    discount_classes: list[DiscountClass] | None = strawberry.UNSET
    combines_with: CombinesWithInput | None = strawberry.UNSET
    codes: list[str] | None = strawberry.UNSET
    enabled: bool | None = strawberry.UNSET
    metafields: list[MetafieldInput] | None = strawberry.UNSET


@strawberry.input(
    description="A new delivery or payment customization, or cart transform, backed by a function."
)
class CustomizationCreateInput:
    function_id: strawberry.ID
    title: str
    enabled: bool = True
    metafields: list[MetafieldInput] = strawberry.field(default_factory=list)


@strawberry.input(description="A new checkout validation backed by a function.")
class ValidationCreateInput:
    function_id: strawberry.ID
    title: str
    enabled: bool = True
    block_on_failure: bool = strawberry.field(
        default=False,
        description="Whether a failed run (not a validation error) blocks checkout.",
    )
    metafields: list[MetafieldInput] = strawberry.field(default_factory=list)


# --- helpers ------------------------------------------------------------------------


def _version_node(v: m.FunctionVersion) -> FunctionVersion:
    return FunctionVersion.from_model(v, v.function.active_version_id)


def _instance_nodes(scope: ShopScope, instances: list[m.FunctionInstance]) -> list[Any]:
    """The GraphQL nodes of `instances`, their metafields loaded in one query."""
    owner = m.MetafieldOwnerType.FUNCTION_INSTANCE
    metafields = scope.metafields_of({owner: [i.id for i in instances]})
    return [_node(i, metafields.get((owner, i.id), [])) for i in instances]


def _instance_node(scope: ShopScope, i: m.FunctionInstance) -> Any:
    return _instance_nodes(scope, [i])[0]


def _node(i: m.FunctionInstance, metafields: list[m.Metafield]) -> Any:
    if i.kind is m.InstanceKind.DISCOUNT:
        return Discount.from_model(i, metafields)
    if i.kind is m.InstanceKind.DELIVERY_CUSTOMIZATION:
        return DeliveryCustomization.from_model(i, metafields)
    if i.kind is m.InstanceKind.PAYMENT_CUSTOMIZATION:
        return PaymentCustomization.from_model(i, metafields)
    if i.kind is m.InstanceKind.VALIDATION:
        return Validation.from_model(i, metafields)
    return CartTransform.from_model(i, metafields)


def _instances_of_kind(info: Info_, kind: m.InstanceKind) -> list[Any]:
    """The GraphQL nodes of the shop's instances of `kind`."""
    scope = info.context.scope
    return _instance_nodes(scope, scope.list(m.FunctionInstance, m.FunctionInstance.kind == kind))


def _instance(scope: ShopScope, id: str, kind: m.InstanceKind | None) -> m.FunctionInstance:
    instance = scope.get(m.FunctionInstance, id)
    if kind is not None and instance.kind is not kind:
        raise NotFoundError(f"No {m.INSTANCE_GID_TYPES[kind]} {id!r} in this shop.", id=id)
    return instance


def _instance_function(scope: ShopScope, function_id: str, kind: m.InstanceKind) -> m.Function:
    function = scope.get(m.Function, function_id)
    owner_field = get_target(function.target).owner_field
    if KIND_BY_OWNER_FIELD[owner_field] is not kind:
        raise InvalidRequestError(
            f"{function.gid} targets {function.target!r}, which cannot back a "
            f"{m.INSTANCE_GID_TYPES[kind]}; pick a function of a matching target.",
            code="TARGET_MISMATCH",
            target=function.target,
        )
    return function


def _set_metafields(
    scope: ShopScope, instance: m.FunctionInstance, metafields: list[MetafieldInput]
) -> None:
    if len(metafields) > MAX_INSTANCE_METAFIELDS:
        raise InvalidRequestError(
            f"Set at most {MAX_INSTANCE_METAFIELDS} metafields per call.", field="metafields"
        )
    for mf in metafields:
        scope.set_metafield(instance, mf.namespace, mf.key, mf.type, mf.value)


def _codes(codes: list[str]) -> list[str]:
    cleaned = [c.strip() for c in codes]
    if len(cleaned) > MAX_DISCOUNT_CODES or any(not c or len(c) > 255 for c in cleaned):
        raise InvalidRequestError(
            f"Discount codes: at most {MAX_DISCOUNT_CODES}, each 1 to 255 characters.",
            field="codes",
        )
    if len({c.upper() for c in cleaned}) != len(cleaned):
        raise InvalidRequestError("Discount codes must be unique (case-insensitive).")
    return cleaned


def _classes(classes: list[m.DiscountClass]) -> list[str]:
    if not classes:
        raise InvalidRequestError(
            "A discount needs at least one discount class (ORDER, PRODUCT, SHIPPING).",
            field="discountClasses",
        )
    return sorted({c.value for c in classes})


def _combines(values: dict[str, Any], combines: CombinesWithInput | None) -> None:
    combines = combines or CombinesWithInput()
    values["combines_with_order_discounts"] = combines.order_discounts
    values["combines_with_product_discounts"] = combines.product_discounts
    values["combines_with_shipping_discounts"] = combines.shipping_discounts


def _create_instance(
    info: Info_,
    kind: m.InstanceKind,
    function_id: str,
    title: str,
    enabled: bool,
    metafields: list[MetafieldInput],
    **values: Any,
) -> Any:
    if not title.strip():
        raise InvalidRequestError("A title is required.", field="title")
    scope = info.context.scope
    function = _instance_function(scope, function_id, kind)
    instance = scope.create(
        m.FunctionInstance,
        function_id=function.id,
        kind=kind,
        title=title,
        enabled=enabled,
        **values,
    )
    _set_metafields(scope, instance, metafields)
    info.context.session.commit()
    return _instance_node(scope, instance)


# --- queries ------------------------------------------------------------------------


@strawberry.type
class FunctionsQuery:
    @field(ADMIN, DEPLOY, description="The shop's functions.")
    def functions(
        self, info: Info_, first: int = DEFAULT_PAGE_SIZE, after: str | None = None
    ) -> Connection[Function]:
        return id_page(
            info.context.scope,
            m.Function,
            first,
            after,
            each(Function.from_model),
            options=(selectinload(m.Function.active_version),),
        )

    @field(ADMIN, DEPLOY, description="A function by id.")
    def function(self, info: Info_, id: strawberry.ID) -> Function:
        return Function.from_model(info.context.scope.get(m.Function, id))

    @field(ADMIN, DEPLOY, description="A function's versions, oldest first.")
    def function_versions(
        self,
        info: Info_,
        function_id: strawberry.ID,
        first: int = DEFAULT_PAGE_SIZE,
        after: str | None = None,
    ) -> Connection[FunctionVersion]:
        scope = info.context.scope
        function = scope.get(m.Function, function_id)
        return id_page(
            scope,
            m.FunctionVersion,
            first,
            after,
            each(lambda v: FunctionVersion.from_model(v, function.active_version_id)),
            m.FunctionVersion.function_id == function.id,
        )

    @field(ADMIN, DEPLOY, description="A version by id.")
    def function_version(self, info: Info_, id: strawberry.ID) -> FunctionVersion:
        return _version_node(info.context.scope.get(m.FunctionVersion, id))

    @field(ADMIN, description="A function instance by id.")
    def function_instance(self, info: Info_, id: strawberry.ID) -> FunctionInstance:
        scope = info.context.scope
        return _instance_node(scope, _instance(scope, id, None))  # type: ignore[no-any-return]

    @field(ADMIN, description="The shop's discounts.")
    def discounts(self, info: Info_) -> list[Discount]:
        return _instances_of_kind(info, m.InstanceKind.DISCOUNT)

    @field(ADMIN, description="The shop's delivery customizations.")
    def delivery_customizations(self, info: Info_) -> list[DeliveryCustomization]:
        return _instances_of_kind(info, m.InstanceKind.DELIVERY_CUSTOMIZATION)

    @field(ADMIN, description="The shop's payment customizations.")
    def payment_customizations(self, info: Info_) -> list[PaymentCustomization]:
        return _instances_of_kind(info, m.InstanceKind.PAYMENT_CUSTOMIZATION)

    @field(ADMIN, description="The shop's validations.")
    def validations(self, info: Info_) -> list[Validation]:
        return _instances_of_kind(info, m.InstanceKind.VALIDATION)

    @field(ADMIN, description="The shop's cart transforms.")
    def cart_transforms(self, info: Info_) -> list[CartTransform]:
        return _instances_of_kind(info, m.InstanceKind.CART_TRANSFORM)

    @field(
        ADMIN,
        description="Logged runs, newest first, optionally of one function, with one status "
        "(succeeded, failed) and since a time.",
    )
    def function_runs(
        self,
        info: Info_,
        function_id: strawberry.ID | None = None,
        status: str | None = None,
        since: datetime | None = None,
        first: int = DEFAULT_PAGE_SIZE,
        after: str | None = None,
    ) -> Connection[FunctionRun]:
        scope = info.context.scope
        first = page_size(first)
        stmt = scope.select(m.RunLog)
        if function_id is not None:
            stmt = stmt.where(m.RunLog.function_id == scope.get(m.Function, function_id).id)
        if status is not None:
            stmt = stmt.where(m.RunLog.status == status)
        if since is not None:
            if since.tzinfo is None:
                raise InvalidRequestError(
                    "`since` needs a time zone, e.g. 2026-01-01T00:00:00Z.", field="since"
                )
            stmt = stmt.where(m.RunLog.created_at >= since)
        if after is not None:
            created_raw, id_raw = decode_cursor(after, 2)
            try:
                created, key = datetime.fromisoformat(created_raw), int(id_raw)
            except ValueError:
                raise InvalidRequestError(
                    "Invalid `after` cursor.", code="INVALID_CURSOR"
                ) from None
            stmt = stmt.where(
                sa.or_(
                    m.RunLog.created_at < created,
                    sa.and_(m.RunLog.created_at == created, m.RunLog.id < key),
                )
            )
        rows = scope.scalars(
            stmt.order_by(m.RunLog.created_at.desc(), m.RunLog.id.desc()).limit(first + 1)
        )
        edges = [
            Edge(
                cursor=encode_cursor(r.created_at.isoformat(), r.id), node=FunctionRun.from_model(r)
            )
            for r in rows[:first]
        ]
        return Connection(
            edges=edges,
            page_info=PageInfo(
                has_next_page=len(rows) > first, end_cursor=edges[-1].cursor if edges else None
            ),
        )

    @field(ADMIN, description="One logged run by id.")
    def function_run(self, info: Info_, id: strawberry.ID) -> FunctionRun:
        return FunctionRun.from_model(info.context.scope.get(m.RunLog, id))


# --- mutations ----------------------------------------------------------------------


@strawberry.type
class FunctionsMutation:
    @mutation(
        DEPLOY,
        ADMIN,
        description="Upload a module (GraphQL multipart request) and its input query. Checks "
        "run now and fail with a code; the version is then prepared (precompile + smoke "
        "run) and becomes READY or FAILED. Identical content returns the same version.",
    )
    def function_deploy(
        self, info: Info_, wasm: Upload, input: FunctionDeployInput
    ) -> FunctionDeployResult:
        ctx = info.context
        scope = ctx.scope
        data = wasm.file.read()  # type: ignore[attr-defined]
        variables = input.input_variables
        outcome = ctx.services.deployer.deploy(
            scope,
            DeployRequest(
                handle=input.handle,
                title=input.title,
                target=input.target,
                wasm=data,
                input_query=input.input_query,
                input_variables_namespace=variables.namespace if variables else None,
                input_variables_key=variables.key if variables else None,
            ),
        )
        ctx.services.metrics.deploys.labels("created" if outcome.created else "existing").inc()
        version = outcome.version
        if version.status is m.VersionStatus.PENDING:
            # New, or an identical deploy of a version whose preparation never ran to
            # the end (lost job, Redis down): (re)schedule it.
            ctx.services.deployer.schedule(scope.shop_id, version)
            ctx.session.expire_all()
        version = scope.get(m.FunctionVersion, version.id)
        return FunctionDeployResult(
            function=Function.from_model(version.function),
            version=_version_node(version),
            created=outcome.created,
        )

    @mutation(
        DEPLOY,
        ADMIN,
        description="Make a READY version the one checkout runs (atomic).",
    )
    def function_activate_version(self, info: Info_, version_id: strawberry.ID) -> Function:
        scope = info.context.scope
        version = scope.get(m.FunctionVersion, version_id)
        function = version.function
        activate_version(scope, function, version)
        return Function.from_model(function)

    @mutation(
        DEPLOY,
        ADMIN,
        description="Activate the newest READY version older than the active one.",
    )
    def function_rollback(self, info: Info_, function_id: strawberry.ID) -> Function:
        scope = info.context.scope
        function = scope.get(m.Function, function_id)
        rollback_version(scope, function)
        return Function.from_model(function)

    @mutation(ADMIN, description="Create a discount.")
    def discount_create(self, info: Info_, input: DiscountCreateInput) -> Discount:
        values: dict[str, Any] = {
            "discount_classes": _classes(input.discount_classes),
            "discount_codes": _codes(input.codes),
        }
        _combines(values, input.combines_with)
        return _create_instance(  # type: ignore[no-any-return]
            info,
            m.InstanceKind.DISCOUNT,
            input.function_id,
            input.title,
            input.enabled,
            input.metafields,
            **values,
        )

    @mutation(ADMIN, description="Change a discount.")
    def discount_update(
        self, info: Info_, id: strawberry.ID, input: DiscountUpdateInput
    ) -> Discount:
        scope = info.context.scope
        instance = _instance(scope, id, m.InstanceKind.DISCOUNT)
        values: dict[str, Any] = {}
        if input.title is not strawberry.UNSET:
            if not input.title or not input.title.strip():
                raise InvalidRequestError("A title is required.", field="title")
            values["title"] = input.title
        if input.enabled is not strawberry.UNSET:
            values["enabled"] = bool(input.enabled)
        if input.discount_classes is not strawberry.UNSET:
            values["discount_classes"] = _classes(input.discount_classes or [])
        if input.codes is not strawberry.UNSET:
            values["discount_codes"] = _codes(input.codes or [])
        if input.combines_with is not strawberry.UNSET:
            _combines(values, input.combines_with)
        scope.update(instance, **values)
        if input.metafields is not strawberry.UNSET and input.metafields is not None:
            _set_metafields(scope, instance, input.metafields)
        info.context.session.commit()
        return _instance_node(scope, instance)  # type: ignore[no-any-return]

    @mutation(ADMIN, description="Delete a discount and its metafields.")
    def discount_delete(self, info: Info_, id: strawberry.ID) -> strawberry.ID:
        scope = info.context.scope
        scope.delete(_instance(scope, id, m.InstanceKind.DISCOUNT))
        info.context.session.commit()
        return id

    @mutation(ADMIN, description="Create a delivery customization.")
    def delivery_customization_create(
        self, info: Info_, input: CustomizationCreateInput
    ) -> DeliveryCustomization:
        return _create_instance(  # type: ignore[no-any-return]
            info,
            m.InstanceKind.DELIVERY_CUSTOMIZATION,
            input.function_id,
            input.title,
            input.enabled,
            input.metafields,
        )

    @mutation(ADMIN, description="Create a payment customization.")
    def payment_customization_create(
        self, info: Info_, input: CustomizationCreateInput
    ) -> PaymentCustomization:
        return _create_instance(  # type: ignore[no-any-return]
            info,
            m.InstanceKind.PAYMENT_CUSTOMIZATION,
            input.function_id,
            input.title,
            input.enabled,
            input.metafields,
        )

    @mutation(ADMIN, description="Create a validation.")
    def validation_create(self, info: Info_, input: ValidationCreateInput) -> Validation:
        return _create_instance(  # type: ignore[no-any-return]
            info,
            m.InstanceKind.VALIDATION,
            input.function_id,
            input.title,
            input.enabled,
            input.metafields,
            block_on_failure=input.block_on_failure,
        )

    @mutation(
        ADMIN,
        description="Create a cart transform (a function of target cart.transform.run).",
    )
    def cart_transform_create(self, info: Info_, input: CustomizationCreateInput) -> CartTransform:
        return _create_instance(  # type: ignore[no-any-return]
            info,
            m.InstanceKind.CART_TRANSFORM,
            input.function_id,
            input.title,
            input.enabled,
            input.metafields,
        )

    @mutation(
        ADMIN,
        description="Enable a function instance (discount, customization, validation or cart "
        "transform).",
    )
    def function_instance_enable(self, info: Info_, id: strawberry.ID) -> FunctionInstance:
        return _set_enabled(info, id, True)  # type: ignore[no-any-return]

    @mutation(
        ADMIN,
        description="Disable a function instance: checkout stops running it.",
    )
    def function_instance_disable(self, info: Info_, id: strawberry.ID) -> FunctionInstance:
        return _set_enabled(info, id, False)  # type: ignore[no-any-return]


def _set_enabled(info: Info_, id: str, enabled: bool) -> Any:
    scope = info.context.scope
    instance = scope.update(_instance(scope, id, None), enabled=enabled)
    info.context.session.commit()
    return _instance_node(scope, instance)
