"""Instructions (wasmtime fuel) of the example functions on the cart fixtures.

Runs each example's input query on examples/carts/{small,large}.json (3 and 200 lines)
with `functions_sdk.query`, feeds the input JSON to the committed module through
`functions_sdk.runner.run` and prints the fuel beside the 11,000,000-instruction limit
and beside a baseline measured in the same run: the same module on an empty cart (its
fixed cost: WASI start-up, reading stdin, parsing, writing the output). Each example's
`owner.json` and `configuration.json` give the configuration.

    .venv/bin/python benchmarks/bench_examples.py
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

from functions_sdk.apis import get_target
from functions_sdk.project import Project, load_project
from functions_sdk.query import compile_query
from functions_sdk.runner import load_module, run

ROOT = Path(__file__).resolve().parent.parent
CARTS = ROOT / "examples" / "carts"
REPEAT = 20

EXAMPLES = ("discount-function", "delivery-customization")


def sample(example: str, name: str) -> Any:
    """The example's sample `configuration.json` (the variables metafield's value) or
    `owner.json` (the discount / customization carrying it)."""
    return json.loads((ROOT / "examples" / example / name).read_text())


def measure(project: Project, example: str, snapshot: dict[str, Any]) -> dict[str, Any]:
    query = compile_query(get_target(project.target), project.read_input_query())
    variables = query.variables_from_metafield(json.dumps(sample(example, "configuration.json")))
    run_owner = sample(example, "owner.json")
    query.execute(snapshot, owner=run_owner, variables=variables)  # compiles the plan
    started = time.perf_counter()
    input_json = query.execute(snapshot, owner=run_owner, variables=variables)
    query_ms = (time.perf_counter() - started) * 1000
    module = load_module(project.read_wasm(), limits=project.limits, export=project.export)
    results = [run(module, input_json, project.limits) for _ in range(REPEAT)]
    first = results[0]
    if not first.ok:
        raise SystemExit(f"{project.handle} failed: {first.error_code} {first.message}")
    assert all(r.fuel_consumed == first.fuel_consumed for r in results), "fuel must be exact"
    return {
        "lines": len(snapshot["cart"]["lines"]),
        "input_bytes": len(input_json),
        "fuel": first.fuel_consumed,
        "run_ms": statistics.median(r.duration_ms for r in results),
        "query_ms": query_ms,
        "operations": len(json.loads(first.output)["operations"]),
    }


def main() -> None:
    small = json.loads((CARTS / "small.json").read_text())
    large = json.loads((CARTS / "large.json").read_text())
    empty = {**small, "cart": {**small["cart"], "lines": []}}
    limit = None
    print(
        f"{'example':<24}{'cart':>7}{'lines':>6}{'input B':>9}{'fuel':>11}"
        f"{'x empty':>9}{'% limit':>9}{'run ms':>8}{'query ms':>9}"
    )
    for name in EXAMPLES:
        project = load_project(ROOT / "examples" / name)
        limit = project.limits.instructions
        baseline = measure(project, name, empty)
        for cart, snapshot in (("empty", empty), ("small", small), ("large", large)):
            m = baseline if cart == "empty" else measure(project, name, snapshot)
            print(
                f"{name:<24}{cart:>7}{m['lines']:>6}{m['input_bytes']:>9,}{m['fuel']:>11,}"
                f"{m['fuel'] / baseline['fuel']:>8.1f}x{100 * m['fuel'] / limit:>8.1f}%"
                f"{m['run_ms']:>8.2f}{m['query_ms']:>9.2f}"
            )
    print(f"instruction limit: {limit:,} (Shopify's; scaled only above 200 lines)")


if __name__ == "__main__":
    main()
