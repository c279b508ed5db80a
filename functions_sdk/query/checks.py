"""Deploy-time checks of an input query beyond GraphQL validation: size, cost, lists.

The limits are Shopify's, so a query that deploys here deploys there:

- size: at most `QUERY_BYTES_LIMIT` bytes of UTF-8, comments excluded;
- cost: at most `QUERY_COST_LIMIT` with Shopify's static cost model (`field_cost`);
- lists: at most `LIST_ITEMS_LIMIT` items in any list literal (arguments and variable
  defaults) and in any list variable value.
"""

from __future__ import annotations

from collections.abc import Iterator

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    ListValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    get_named_type,
    is_leaf_type,
    visit,
)
from graphql.language import Lexer, Node, Source, TokenKind, Visitor

from functions_sdk.query.errors import (
    LIST_TOO_LONG,
    TOO_COSTLY,
    TOO_LARGE,
    InvalidInputQueryError,
    Location,
)

QUERY_BYTES_LIMIT = 3_000
"""Largest input query, in UTF-8 bytes with comments removed."""

QUERY_COST_LIMIT = 30
"""Highest static cost of an input query (see `field_cost`)."""

LIST_ITEMS_LIMIT = 100
"""Most items in a list argument, list variable default or list variable value."""

QUERY_RAW_BYTES_LIMIT = 100_000
"""Largest query text accepted at all, comments included: a guard against parsing a
huge upload before the real size check."""

COSTLY_FIELDS = frozenset({"hasAnyTag", "hasTags", "inAnyCollection", "inCollections"})
"""Computed fields that cost 3 (their sub-fields cost nothing)."""


def query_size(text: str) -> int:
    """Size of `text` in UTF-8 bytes, comments excluded. `text` must lex."""
    return len(text.encode()) - sum(len(text[s:e].encode()) for s, e in _comment_spans(text))


def _comment_spans(text: str) -> Iterator[tuple[int, int]]:
    lexer = Lexer(Source(text))
    first = lexer.token
    while lexer.advance().kind != TokenKind.EOF:
        pass
    # advance() skips comments but links them into the token chain.
    token = first.next
    while token is not None:
        if token.kind == TokenKind.COMMENT:
            yield token.start, token.end
        token = token.next


def check_raw_size(text: str) -> None:
    """Reject a query text too large to be worth parsing."""
    if len(text) > QUERY_RAW_BYTES_LIMIT or len(text.encode()) > QUERY_RAW_BYTES_LIMIT:
        raise InvalidInputQueryError(
            f"Input query text is over {QUERY_RAW_BYTES_LIMIT:,} bytes; an input query may be "
            f"at most {QUERY_BYTES_LIMIT:,} bytes without comments. Select fewer fields.",
            code=TOO_LARGE,
            locations=[{"line": 1, "column": 1}],
        )


def check_size(text: str) -> int:
    """The query's size (bytes, comments excluded).

    Raises:
        InvalidInputQueryError: code `INPUT_QUERY_TOO_LARGE`, located at the first
            character past the limit.
    """
    size = query_size(text)
    if size <= QUERY_BYTES_LIMIT:
        return size
    comments = sorted(_comment_spans(text))
    counted = 0
    offset = 0
    for i, ch in enumerate(text):
        if comments and i >= comments[0][1]:
            comments.pop(0)
        if comments and comments[0][0] <= i < comments[0][1]:
            continue
        counted += len(ch.encode())
        if counted > QUERY_BYTES_LIMIT:
            offset = i
            break
    raise InvalidInputQueryError(
        f"Input query is {size:,} bytes without comments, over the limit of "
        f"{QUERY_BYTES_LIMIT:,}. Select fewer fields or use shorter aliases.",
        code=TOO_LARGE,
        locations=[_location(text, offset)],
        size=size,
        limit=QUERY_BYTES_LIMIT,
    )


def _location(text: str, offset: int) -> Location:
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return {"line": line, "column": column}


def field_cost(parent: GraphQLObjectType, node: FieldNode) -> tuple[int, bool]:
    """Shopify's cost of one field and whether its sub-fields count.

    `__typename` costs 0; a field returning `Metafield` and the tag and collection tests
    (`COSTLY_FIELDS`) cost 3 and their sub-fields nothing; any other leaf costs 1; an
    object field costs nothing by itself, only its sub-fields.
    """
    name = node.name.value
    if name.startswith("__"):
        return 0, False
    field = parent.fields[name]
    named = get_named_type(field.type)
    if name in COSTLY_FIELDS or named.name == "Metafield":
        return 3, False
    if is_leaf_type(named):
        return 1, False
    return 0, True


def check_cost(
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    fragments: dict[str, FragmentDefinitionNode],
) -> int:
    """The query's static cost: every field as written, fragments counted at each spread.

    The query must have passed validation (known fields, no fragment cycles).

    Raises:
        InvalidInputQueryError: code `INPUT_QUERY_TOO_COSTLY`, located at the field that
            takes the cost over the limit.
    """
    root = schema.query_type
    assert root is not None
    total = 0
    over: FieldNode | None = None

    def walk(parent: GraphQLObjectType, selection_set: SelectionSetNode) -> None:
        nonlocal total, over
        for sel in selection_set.selections:
            if isinstance(sel, FieldNode):
                cost, descend = field_cost(parent, sel)
                total += cost
                if over is None and total > QUERY_COST_LIMIT:
                    over = sel
                if descend and sel.selection_set is not None:
                    walk(_object_type(schema, parent, sel), sel.selection_set)
            elif isinstance(sel, InlineFragmentNode):
                walk(_fragment_parent(schema, parent, sel.type_condition), sel.selection_set)
            elif isinstance(sel, FragmentSpreadNode):
                frag = fragments[sel.name.value]
                walk(_fragment_parent(schema, parent, frag.type_condition), frag.selection_set)

    walk(root, operation.selection_set)
    if over is not None:
        loc = over.loc.source.get_location(over.loc.start) if over.loc else None
        raise InvalidInputQueryError(
            f"Input query cost is {total}, over the limit of {QUERY_COST_LIMIT} (each leaf "
            f"field costs 1, a metafield or a tag/collection test 3, __typename 0). "
            f"Field {over.name.value!r} takes it over; select fewer fields.",
            code=TOO_COSTLY,
            locations=[{"line": loc.line, "column": loc.column}] if loc else [],
            cost=total,
            limit=QUERY_COST_LIMIT,
        )
    return total


def _object_type(
    schema: GraphQLSchema, parent: GraphQLObjectType, node: FieldNode
) -> GraphQLObjectType:
    named = get_named_type(parent.fields[node.name.value].type)
    if isinstance(named, GraphQLObjectType):
        return named
    # An abstract type: its fields are only reached through fragments, which name
    # their own type condition, so any member serves as the parent.
    return schema.get_possible_types(named)[0]


def _fragment_parent(
    schema: GraphQLSchema, parent: GraphQLObjectType, condition: Node | None
) -> GraphQLObjectType:
    if condition is None:
        return parent
    named = schema.get_type(condition.name.value)  # type: ignore[attr-defined]
    return named if isinstance(named, GraphQLObjectType) else parent


class _ListLimit(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.too_long: ListValueNode | None = None

    def enter_list_value(self, node: ListValueNode, *_: object) -> None:
        if self.too_long is None and len(node.values) > LIST_ITEMS_LIMIT:
            self.too_long = node


def check_lists(document: Node) -> None:
    """Reject any list literal with more than `LIST_ITEMS_LIMIT` items.

    Raises:
        InvalidInputQueryError: code `INPUT_QUERY_LIST_TOO_LONG`, located at the list.
    """
    visitor = _ListLimit()
    visit(document, visitor)
    node = visitor.too_long
    if node is not None:
        loc = node.loc.source.get_location(node.loc.start) if node.loc else None
        raise InvalidInputQueryError(
            f"A list in the input query has {len(node.values)} items, over the limit of "
            f"{LIST_ITEMS_LIMIT}. Pass fewer items.",
            code=LIST_TOO_LONG,
            locations=[{"line": loc.line, "column": loc.column}] if loc else [],
            items=len(node.values),
            limit=LIST_ITEMS_LIMIT,
        )
