"""Input queries: deploy-time checks and compiled execution against cart snapshots.

query = compile_query(get_target("cart.lines.discounts.generate.run"), text)
variables = query.variables_from_metafield(instance_variables_json)
input_json: bytes = query.execute(snapshot, owner=owner, variables=variables)
"""

from functions_sdk.query.checks import LIST_ITEMS_LIMIT, QUERY_BYTES_LIMIT, QUERY_COST_LIMIT
from functions_sdk.query.errors import InvalidInputQueryError, InvalidVariableValueError
from functions_sdk.query.input_query import InputQuery, compile_query

__all__ = [
    "LIST_ITEMS_LIMIT",
    "QUERY_BYTES_LIMIT",
    "QUERY_COST_LIMIT",
    "InputQuery",
    "InvalidInputQueryError",
    "InvalidVariableValueError",
    "compile_query",
]
