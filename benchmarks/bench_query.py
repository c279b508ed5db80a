"""Input-query execution: compiled plan vs graphql-core executing the Strawberry schema.

Both produce the same bytes (checked here on every size before timing): the compiled
plan via `InputQuery.execute`, the baseline via `InputQuery.execute_reference`
(graphql-core `execute` over the target's Strawberry input schema, then orjson). Query
parsing and validation are excluded from both: they happen once, at deploy.

    .venv/bin/python benchmarks/bench_query.py [--quick]
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import platform
import sys
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import graphql
import orjson

from functions_sdk.apis import get_target
from functions_sdk.query import InputQuery, compile_query

ROOT = Path(__file__).resolve().parent.parent
LINES = (1, 10, 50, 200, 500)

QUERIES = {
    # 10 leaf fields per line plus __typename, the shape the issue measured.
    "lines-10-fields": (
        """query Input { cart { lines { id quantity
          cost { subtotalAmount { amount currencyCode } totalAmount { amount } }
          merchandise { __typename ... on ProductVariant { id sku
            product { id handle productType } } } } } }""",
        None,
    ),
    # The example discount function's query: variables, tag and collection tests,
    # a metafield with jsonValue on the owner.
    "discount-example": (
        (ROOT / "examples/discount-function/input.graphql").read_text(),
        {"excludedCollectionIds": ["gid://cartwheel/Collection/7"], "vipTags": ["vip"]},
    ),
}

OWNER = {
    "id": "gid://cartwheel/Discount/1",
    "discountClasses": ["PRODUCT", "ORDER"],
    "metafields": [
        {
            "namespace": "cartwheel",
            "key": "function-configuration",
            "type": "json",
            "value": '{"tiers": [{"minimum": "100.00", "percentage": 10}]}',
        }
    ],
}


def _generator() -> Any:
    path = ROOT / "examples/carts/generate.py"
    spec = importlib.util.spec_from_file_location("cart_fixture_generator", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _per_call(fn: Callable[[], object], budget_s: float) -> float:
    """Best mean CPU seconds per call over 5 rounds, each about `budget_s / 5` long.

    CPU time of this process (`time.process_time`), not wall time: the machine is
    shared, and CPU is what an input query costs a checkout."""
    fn()
    start = time.process_time()
    fn()
    once = max(time.process_time() - start, 1e-6)
    number = max(1, int(budget_s / 5 / once))
    best = float("inf")
    gc.collect()
    for _ in range(5):
        start = time.process_time()
        for _ in range(number):
            fn()
        best = min(best, (time.process_time() - start) / number)
    return best


def bench(query: InputQuery, variables: dict[str, Any] | None, budget_s: float) -> None:
    gen = _generator()
    print(f"{'lines':>5} {'input bytes':>11} {'graphql-core':>13} {'compiled':>10} {'ratio':>7}")
    for n in LINES:
        snapshot = gen.build(n, 2026, groups=2)
        compiled = query.execute(snapshot, owner=OWNER, variables=variables)
        reference = query.execute_reference(snapshot, owner=OWNER, variables=variables)
        if compiled != reference:
            sys.exit(f"compiled output differs from graphql-core at {n} lines")
        t_ref = _per_call(
            lambda s=snapshot: query.execute_reference(s, owner=OWNER, variables=variables),
            budget_s,
        )
        t_plan = _per_call(
            lambda s=snapshot: query.execute(s, owner=OWNER, variables=variables), budget_s
        )
        print(
            f"{n:>5} {len(compiled):>11,} {t_ref * 1e3:>10.3f} ms {t_plan * 1e3:>7.3f} ms "
            f"{t_ref / t_plan:>6.1f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="shorter timing rounds")
    args = parser.parse_args()
    budget = 0.25 if args.quick else 1.5
    print(
        f"Python {platform.python_version()}, graphql-core {graphql.__version__}, "
        f"strawberry-graphql {version('strawberry-graphql')}, orjson {orjson.__version__}; "
        "times are CPU time per execution, best of 5 rounds"
    )
    target = get_target("cart.lines.discounts.generate.run")
    assert target.graphql_schema.query_type  # build the schema outside the deploy timing
    for name, (text, variables) in QUERIES.items():
        start = time.perf_counter()
        query = compile_query(target, text)
        checked = time.perf_counter() - start
        query._plans.clear()  # time one plan compilation, normally cached per variables
        start = time.perf_counter()
        query.plan(variables)
        planned = time.perf_counter() - start
        print(
            f"\n## {name}: cost {query.cost}, {query.size} bytes; deploy checks "
            f"{checked * 1e3:.1f} ms, plan compile {planned * 1e3:.1f} ms (once per "
            "variable values)"
        )
        bench(query, variables, budget)


if __name__ == "__main__":
    main()
