"""Compile a validated input query into a plan: one generated Python function.

The plan is specialised to one query *and one set of variable values* (an instance's
variables never change between runs), so everything GraphQL decides per request is
decided here, once: field collection and merging (aliases, fragments, `@skip` /
`@include`), argument values, `__typename`, abstract-type dispatch. What is left is a
nested dict/list expression over the snapshot, e.g.

    def plan(root, owner):
        return {'cart': {'lines': [{'id': _i1['id'], 'q': _i1['quantity']}
                                   for _i1 in root['cart']['lines']]}}

with no per-field resolver dispatch, no coercion and no error bookkeeping. The result
is serialised once by orjson. Field collection follows graphql-core's algorithm, so the
output has the same keys in the same order as graphql-core's execution of the
Strawberry schema; tests/sdk/test_query_differential.py holds the two to byte equality.

The snapshot is trusted to match `functions_sdk.snapshot` (the server builds it; a
local fixture is checked by `cartwheel fn query`); the plan does not re-validate it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLAbstractType,
    GraphQLIncludeDirective,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    GraphQLSkipDirective,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    get_named_type,
    is_abstract_type,
    is_leaf_type,
)
from graphql.execution.values import VariableValues, get_argument_values, get_directive_values

from functions_sdk.apis import inputs

Plan = Callable[[Mapping[str, Any], Mapping[str, Any]], dict[str, Any]]
"""A compiled plan: `(snapshot, owner) -> input document` (JSON-ready dicts/lists)."""

RawFn = Callable[["_Generator", str, dict[str, Any]], str]

# Expressions for fields that are not a plain key read of the parent dict, keyed by
# (GraphQL type, field). Each gets the parent expression and the field's arguments.
_RAW: dict[tuple[str, str], RawFn] = {
    ("Input", "triggeringDiscountCode"): lambda g, s, a: f"{s}.get('triggeringDiscountCode')",
    ("Discount", "discountClasses"): lambda g, s, a: f"{s}.get('discountClasses', ())",
    ("Metafield", "jsonValue"): lambda g, s, a: f"_json_value({s})",
    ("Cart", "attribute"): lambda g, s, a: f"_attribute({s}['attributes'], {a['key']!r})",
    ("CartLine", "attribute"): lambda g, s, a: f"_attribute({s}['attributes'], {a['key']!r})",
    ("CartDeliveryGroup", "selectedDeliveryOption"): lambda g, s, a: f"_selected({s})",
    ("LocalTime", "date"): lambda g, s, a: f"{s}[:10]",
    ("Country", "isoCode"): lambda g, s, a: s,
    ("Language", "isoCode"): lambda g, s, a: s,
}
for _owner_type in ("Product", "Customer"):
    _RAW[(_owner_type, "hasAnyTag")] = lambda g, s, a: (
        f"(not {g.const(frozenset(a['tags'] or ()))}.isdisjoint({s}['tags']))"
    )
_RAW[("Product", "inAnyCollection")] = lambda g, s, a: (
    f"(not {g.const(frozenset(a['ids'] or ()))}.isdisjoint({s}['collectionIds']))"
)
# `hasTags` / `inCollections` list one synthetic object per requested item. The plan
# iterates the requested items (a constant) and answers membership inline instead of
# materialising the objects: (type, field) -> (argument, snapshot list, the item's
# field that echoes the requested item; its other field is the membership test).
_MEMBERSHIP: dict[tuple[str, str], tuple[str, str, str]] = {
    ("Product", "hasTags"): ("tags", "tags", "tag"),
    ("Customer", "hasTags"): ("tags", "tags", "tag"),
    ("Product", "inCollections"): ("ids", "collectionIds", "collectionId"),
}

_HELPERS: dict[str, Any] = {
    "_find_metafield": inputs.find_metafield,
    "_json_value": inputs.metafield_json_value,
    "_attribute": inputs.find_attribute,
    "_selected": inputs.selected_delivery_option,
}


class _Generator:
    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: dict[str, FragmentDefinitionNode],
        variables: VariableValues,
        owner_field: str,
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables
        self.owner_field = owner_field
        self.namespace: dict[str, Any] = dict(_HELPERS)
        # item variable of a hasTags/inCollections comprehension -> (the field echoing
        # the item, expression of the snapshot list it tests membership in)
        self.membership: dict[str, tuple[str, str]] = {}
        self._n = 0

    def name(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}{self._n}"

    def const(self, value: object) -> str:
        """A name bound to `value` in the plan's namespace."""
        name = self.name("_c")
        self.namespace[name] = value
        return name

    # -- field collection (graphql-core's CollectFields) ---------------------------

    def _included(self, node: FieldNode | InlineFragmentNode | FragmentSpreadNode) -> bool:
        skip = get_directive_values(GraphQLSkipDirective, node, self.variables)
        if skip and skip.get("if") is True:
            return False
        include = get_directive_values(GraphQLIncludeDirective, node, self.variables)
        return not (include and include.get("if") is False)

    def _matches(self, condition: Any, runtime: GraphQLObjectType) -> bool:
        if condition is None:
            return True
        cond = self.schema.get_type(condition.name.value)
        if cond is runtime:
            return True
        if is_abstract_type(cond):
            return self.schema.is_sub_type(cond, runtime)
        return False

    def collect(
        self, runtime: GraphQLObjectType, selection_sets: list[SelectionSetNode]
    ) -> dict[str, list[FieldNode]]:
        fields: dict[str, list[FieldNode]] = {}
        visited: set[str] = set()

        def walk(selection_set: SelectionSetNode) -> None:
            for sel in selection_set.selections:
                if not self._included(sel):  # type: ignore[arg-type]
                    continue
                if isinstance(sel, FieldNode):
                    key = sel.alias.value if sel.alias else sel.name.value
                    fields.setdefault(key, []).append(sel)
                elif isinstance(sel, InlineFragmentNode):
                    if self._matches(sel.type_condition, runtime):
                        walk(sel.selection_set)
                elif isinstance(sel, FragmentSpreadNode):
                    name = sel.name.value
                    if name in visited:
                        continue
                    visited.add(name)
                    frag = self.fragments[name]
                    if self._matches(frag.type_condition, runtime):
                        walk(frag.selection_set)

        for selection_set in selection_sets:
            walk(selection_set)
        return fields

    # -- expressions ---------------------------------------------------------------

    def object_expr(self, runtime: GraphQLObjectType, nodes: list[FieldNode], src: str) -> str:
        """A dict display projecting `src` (a name bound to the parent value)."""
        sets = [n.selection_set for n in nodes if n.selection_set is not None]
        return self.selection_expr(runtime, sets, src)

    def selection_expr(
        self, runtime: GraphQLObjectType, sets: list[SelectionSetNode], src: str
    ) -> str:
        """A dict display of `sets` merged, over the value bound to `src`."""
        items = []
        for key, field_nodes in self.collect(runtime, sets).items():
            items.append(f"{key!r}: {self.field_expr(runtime, field_nodes, src)}")
        return "{" + ", ".join(items) + "}"

    def field_expr(self, parent: GraphQLObjectType, nodes: list[FieldNode], src: str) -> str:
        name = nodes[0].name.value
        if name == "__typename":
            return repr(parent.name)
        member = self.membership.get(src)
        if member is not None:
            item_field, haystack = member
            return src if name == item_field else f"({src} in {haystack})"
        field = parent.fields[name]
        args = get_argument_values(field, nodes[0], self.variables)
        synthetic = _MEMBERSHIP.get((parent.name, name))
        if synthetic is not None:
            arg, facts, item_field = synthetic
            var = self.name("_x")
            self.membership[var] = (item_field, f"{src}[{facts!r}]")
            item_type = get_named_type(field.type)
            assert isinstance(item_type, GraphQLObjectType)
            wanted = self.const(tuple(args[arg] or ()))
            return f"[{self.object_expr(item_type, nodes, var)} for {var} in {wanted}]"
        raw_fn = _RAW.get((parent.name, name))
        if raw_fn is not None:
            raw = raw_fn(self, src, args)
        elif name == "metafield":
            raw = (
                f"_find_metafield({src}['metafields'], {args.get('namespace')!r}, {args['key']!r})"
            )
        elif parent is self.schema.query_type and name == self.owner_field:
            raw = "owner"
        else:
            raw = f"{src}[{name!r}]"
        return self.value_expr(field.type, nodes, raw)

    def value_expr(self, type_: GraphQLOutputType, nodes: list[FieldNode], raw: str) -> str:
        if isinstance(type_, GraphQLNonNull):
            return self.non_null_expr(type_.of_type, nodes, raw)
        if is_leaf_type(type_):
            return raw
        tmp = self.name("_t")
        inner = self.non_null_expr(type_, nodes, tmp)
        return f"(None if ({tmp} := {raw}) is None else {inner})"

    def non_null_expr(self, type_: GraphQLOutputType, nodes: list[FieldNode], raw: str) -> str:
        if is_leaf_type(type_):
            return raw
        if isinstance(type_, GraphQLList):
            item = type_.of_type
            if isinstance(item, GraphQLNonNull) and is_leaf_type(item.of_type):
                return raw  # a list of leaves is already its own JSON
            var = self.name("_i")
            return f"[{self.value_expr(item, nodes, var)} for {var} in {raw}]"
        if not raw.isidentifier() and not self._single_read(type_, nodes):
            # Bind once; the projection reads the value once per selected field.
            tmp = self.name("_t")
            inner = self.non_null_expr(type_, nodes, tmp)
            return f"({inner} if ({tmp} := {raw}) is not None else None)"
        if isinstance(type_, GraphQLObjectType):
            return self.object_expr(type_, nodes, raw)
        assert is_abstract_type(type_)
        branches = []
        for possible in self.schema.get_possible_types(type_):
            expr = self.object_expr(possible, nodes, raw)
            branches.append(f"{expr} if {raw}['__typename'] == {possible.name!r} else")
        unknown = self.const(_unknown_type(type_))
        return "(" + " ".join(branches) + f" {unknown}({raw}))"

    def _single_read(self, type_: GraphQLOutputType, nodes: list[FieldNode]) -> bool:
        # An object with one selected field reads its value once: no need to bind the
        # value to a name first (hasTags/inCollections read it once per item).
        if not isinstance(type_, GraphQLObjectType):
            return False
        sets = [n.selection_set for n in nodes if n.selection_set is not None]
        fields = self.collect(type_, sets)
        if len(fields) != 1:
            return False
        (field_nodes,) = fields.values()
        return (type_.name, field_nodes[0].name.value) not in _MEMBERSHIP


def _unknown_type(abstract: GraphQLAbstractType) -> Callable[[Mapping[str, Any]], Any]:
    def fail(value: Mapping[str, Any]) -> Any:
        raise ValueError(
            f"snapshot value of {abstract.name} has __typename "
            f"{value.get('__typename')!r}, which is not a member of {abstract.name}"
        )

    return fail


def compile_plan(
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    fragments: dict[str, FragmentDefinitionNode],
    variables: VariableValues,
    *,
    owner_field: str,
) -> tuple[Plan, str]:
    """Compile `operation` (validated against `schema`) with coerced `variables` into a
    plan. Returns the plan and its generated source (for debugging and tests)."""
    gen = _Generator(schema, fragments, variables, owner_field)
    root = schema.query_type
    assert root is not None
    body = gen.selection_expr(root, [operation.selection_set], "root")
    source = f"def plan(root, owner):\n    return {body}\n"
    code = compile(source, "<input query plan>", "exec")
    exec(code, gen.namespace)
    plan: Plan = gen.namespace["plan"]
    return plan, source
