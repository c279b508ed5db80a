"""`compile_query`: check an input query once, then execute it many times.

Deploy time: `compile_query(target, text)` runs every check (syntax, size, validation
against the target's input schema, variables, list literals, cost) and returns an
`InputQuery`. Checkout time: `InputQuery.execute(snapshot, owner=..., variables=...)`
returns the input JSON bytes through a compiled plan (`functions_sdk.query.plan`),
cached per distinct variable values. `execute_reference` runs the same query through
graphql-core over the Strawberry schema: the reference the plan is tested against.
"""

from __future__ import annotations

import gc
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from threading import Lock
from typing import Any

import orjson
from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    GraphQLError,
    OperationDefinitionNode,
    OperationType,
    execute,
    parse,
    specified_rules,
    validate,
    visit,
)
from graphql.execution.values import VariableValues, get_variable_values
from graphql.language import Visitor
from graphql.validation import (
    NoUndefinedVariablesRule,
    NoUnusedVariablesRule,
    UniqueVariableNamesRule,
    VariablesAreInputTypesRule,
    VariablesInAllowedPositionRule,
)

from functions_sdk.apis.registry import Target
from functions_sdk.errors import CartwheelError
from functions_sdk.query import checks
from functions_sdk.query.errors import (
    INVALID,
    SYNTAX,
    VARIABLE,
    InvalidInputQueryError,
    InvalidVariableValueError,
    locations_of,
)
from functions_sdk.query.plan import Plan, compile_plan
from functions_sdk.snapshot import Owner, Snapshot

PLAN_CACHE_SIZE = 64
"""Compiled plans kept per query, one per distinct set of variable values."""

_VARIABLE_RULES = (
    UniqueVariableNamesRule,
    VariablesAreInputTypesRule,
    NoUndefinedVariablesRule,
    NoUnusedVariablesRule,
    VariablesInAllowedPositionRule,
)
_OTHER_RULES = tuple(r for r in specified_rules if r not in _VARIABLE_RULES)

_NO_OWNER: Owner = {"id": "", "metafields": [], "discountClasses": []}


def compile_query(target: Target, text: str) -> InputQuery:
    """Check `text` as an input query of `target` and compile it.

    Checks, in order: raw size guard, syntax, size (≤ 3,000 bytes without comments),
    one query operation and no introspection, variables, validation against the input
    schema, list literals (≤ 100 items), cost (≤ 30).

    Raises:
        InvalidInputQueryError: with `code` naming the failed check
            (`INPUT_QUERY_SYNTAX`, `INPUT_QUERY_TOO_LARGE`, `INPUT_QUERY_INVALID`,
            `INPUT_QUERY_VARIABLE`, `INPUT_QUERY_LIST_TOO_LONG`,
            `INPUT_QUERY_TOO_COSTLY`) and `locations` in `text`.
    """
    checks.check_raw_size(text)
    try:
        document = parse(text, no_location=False)
    except GraphQLError as e:
        raise InvalidInputQueryError.from_graphql(
            e, code=SYNTAX, hint="Fix the query's GraphQL syntax at that position."
        ) from None
    size = checks.check_size(text)
    operation, fragments = _single_query(document)
    schema = target.graphql_schema
    schema_hint = f"See `cartwheel fn schema --target {target.name}` for the input schema."
    variable_hint = (
        "Declare each variable the query uses (`query Input($ids: [ID!]) {...}`) with a "
        "type that fits where it is used, and use each variable it declares."
    )
    for rules, code, hint in (
        (_VARIABLE_RULES, VARIABLE, variable_hint),
        (_OTHER_RULES, INVALID, schema_hint),
    ):
        errors = validate(schema, document, rules)
        if errors:
            raise InvalidInputQueryError.from_graphql(errors[0], code=code, hint=hint)
    checks.check_lists(document)
    cost = checks.check_cost(schema, operation, fragments)
    query = InputQuery(
        target=target,
        text=text,
        document=document,
        operation=operation,
        fragments=fragments,
        size=size,
        cost=cost,
    )
    if not query.variable_names:
        query.plan(None)
    return query


def _single_query(
    document: DocumentNode,
) -> tuple[OperationDefinitionNode, dict[str, FragmentDefinitionNode]]:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    if len(operations) != 1:
        where = operations[1] if len(operations) > 1 else document
        raise InvalidInputQueryError(
            f"An input query has exactly one operation; this one has {len(operations)}. "
            "Keep a single `query { ... }`.",
            code=INVALID,
            locations=_node_locations(where),
        )
    operation = operations[0]
    if operation.operation is not OperationType.QUERY:
        raise InvalidInputQueryError(
            f"An input query is a `query`, not a `{operation.operation.value}`.",
            code=INVALID,
            locations=_node_locations(operation),
        )
    introspection = _introspection_fields(document)
    if introspection:
        node = introspection[0]
        raise InvalidInputQueryError(
            f"Introspection ({node.name.value}) is not available in input queries; "
            "use `cartwheel fn schema` to read the schema.",
            code=INVALID,
            locations=_node_locations(node),
        )
    return operation, fragments


def _introspection_fields(document: DocumentNode) -> list[FieldNode]:
    found: list[FieldNode] = []

    class Finder(Visitor):
        def enter_field(self, node: FieldNode, *_: object) -> None:
            if node.name.value in ("__schema", "__type"):
                found.append(node)

    visit(document, Finder())
    return found


def _node_locations(node: Any) -> list[dict[str, int]]:
    loc = getattr(node, "loc", None)
    if loc is None:
        return []
    where = loc.source.get_location(loc.start)
    return [{"line": where.line, "column": where.column}]


@dataclass(eq=False)
class InputQuery:
    """A checked input query of one target, ready to execute against snapshots.

    Thread-safe: plans are compiled under a lock and cached per variable values.
    """

    target: Target
    text: str
    document: DocumentNode = field(repr=False)
    operation: OperationDefinitionNode = field(repr=False)
    fragments: dict[str, FragmentDefinitionNode] = field(repr=False)
    size: int
    """Bytes without comments."""
    cost: int
    """Static cost (Shopify's model)."""
    _plans: OrderedDict[bytes, tuple[Plan, str]] = field(
        default_factory=OrderedDict, init=False, repr=False
    )
    _lock: Lock = field(default_factory=Lock, init=False, repr=False)

    @property
    def variable_names(self) -> list[str]:
        """The declared variables, in declaration order."""
        return [d.variable.name.value for d in self.operation.variable_definitions or ()]

    def variables_from_metafield(self, value: str | None) -> dict[str, Any]:
        """The variables of a run from the instance's variables metafield (a JSON object
        whose top-level keys are variable names).

        A declared variable missing from the object (or every variable when `value` is
        None) is null, unless the query declares a default for it. Keys that are not
        declared variables are ignored. The values are checked against the declared
        types right away.

        Raises:
            InvalidVariableValueError: the value is not a JSON object, a non-null
                variable is null or missing, a value has the wrong type, or a list has
                more than 100 items.
        """
        if value is None or value.strip() == "":
            raw: Any = {}
        else:
            try:
                raw = orjson.loads(value)
            except orjson.JSONDecodeError as e:
                raise InvalidVariableValueError(
                    f"The variables metafield is not valid JSON ({e}). Store a JSON object "
                    "whose keys are the query's variable names."
                ) from None
        if not isinstance(raw, dict):
            raise InvalidVariableValueError(
                "The variables metafield must be a JSON object whose keys are the query's "
                f"variable names, not {type(raw).__name__}."
            )
        variables = self._complete(raw)
        self._coerce(variables)
        return variables

    def _complete(self, values: Mapping[str, Any]) -> dict[str, Any]:
        # Missing keys read as null, except where the query declares a default.
        out: dict[str, Any] = {}
        for d in self.operation.variable_definitions or ():
            name = d.variable.name.value
            if name in values:
                out[name] = values[name]
            elif d.default_value is None:
                out[name] = None
        return out

    def _coerce(self, variables: Mapping[str, Any]) -> VariableValues:
        defs = self.operation.variable_definitions or ()
        result = get_variable_values(self.target.graphql_schema, defs, dict(variables))
        if isinstance(result, list):
            error = result[0]
            message = error.message if error.message.endswith(".") else f"{error.message}."
            raise InvalidVariableValueError(
                f"{message} Fix the function instance's variables metafield.",
                locations=locations_of(error.locations),
            )
        for d in defs:
            name = d.variable.name.value
            value = result.coerced.get(name)
            if isinstance(value, list) and len(value) > checks.LIST_ITEMS_LIMIT:
                raise InvalidVariableValueError(
                    f"Variable ${name} has {len(value)} items, over the limit of "
                    f"{checks.LIST_ITEMS_LIMIT}. Pass fewer items.",
                    locations=_node_locations(d),
                )
        return result

    def plan(self, variables: Mapping[str, Any] | None) -> tuple[Plan, str]:
        """The compiled plan (and its source) for these variable values.

        Raises:
            InvalidVariableValueError: the variables do not fit the query.
        """
        key = b"" if not variables else orjson.dumps(variables, option=orjson.OPT_SORT_KEYS)
        cached = self._plans.get(key)
        if cached is not None:
            return cached
        with self._lock:
            cached = self._plans.get(key)
            if cached is not None:
                return cached
            coerced = self._coerce(self._complete(variables or {}))
            compiled = compile_plan(
                self.target.graphql_schema,
                self.operation,
                self.fragments,
                coerced,
                owner_field=self.target.owner_field,
            )
            self._plans[key] = compiled
            while len(self._plans) > PLAN_CACHE_SIZE:
                self._plans.popitem(last=False)
            return compiled

    def execute(
        self,
        snapshot: Snapshot | Mapping[str, Any],
        *,
        owner: Owner | Mapping[str, Any] | None = None,
        variables: Mapping[str, Any] | None = None,
    ) -> bytes:
        """The input JSON of a run: the query projected over `snapshot`.

        `owner` is the function instance's owner (configuration metafields, discount
        classes); None reads as an owner without metafields. `variables` as returned by
        `variables_from_metafield` (missing keys read as null).

        Raises:
            InvalidVariableValueError: the variables do not fit the query.
        """
        plan, _ = self.plan(variables)
        # A plan allocates O(lines x fields) dicts and lists and no reference cycles.
        # Left on, the cyclic GC would run several times per execution on a large cart
        # and traverse the whole snapshot each time (measured: 1.3 ms instead of 0.7 ms
        # at 500 lines). Pause it for the build; restore the caller's setting.
        paused = gc.isenabled()
        if paused:
            gc.disable()
        try:
            document = plan(snapshot, _NO_OWNER if owner is None else owner)
        finally:
            if paused:
                gc.enable()
        return orjson.dumps(document)

    def execute_reference(
        self,
        snapshot: Snapshot | Mapping[str, Any],
        *,
        owner: Owner | Mapping[str, Any] | None = None,
        variables: Mapping[str, Any] | None = None,
    ) -> bytes:
        """The same result as `execute`, computed by graphql-core executing the
        target's Strawberry input schema (slow; for tests and benchmarks).

        Raises:
            InvalidVariableValueError: the variables do not fit the query.
            CartwheelError: code `INPUT_QUERY_EXECUTION` if graphql-core reports an
                error (a snapshot that does not match the snapshot format).
        """
        complete = self._complete(variables or {})
        self._coerce(complete)
        root = {**snapshot, self.target.owner_field: _NO_OWNER if owner is None else owner}
        result = execute(
            self.target.graphql_schema, self.document, root_value=root, variable_values=complete
        )
        # The Strawberry schema's resolvers are all synchronous.
        assert isinstance(result, ExecutionResult)
        if result.errors:
            raise CartwheelError(
                f"graphql-core failed to execute the input query: {result.errors[0]}",
                code="INPUT_QUERY_EXECUTION",
            )
        return orjson.dumps(result.data)
