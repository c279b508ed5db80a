"""`cartwheel fn ...`: the merchant developer's commands.

A thin shell: parse, call the library, print (rich for people, `--json` for machines),
exit with a documented code. Each command lives in its own module and is registered
on the `fn` group below.

Exit codes: 0 success; 1 the function failed (its run ended with an error code);
2 usage error (click's own); 3 invalid input (module, query, cart, output);
4 server or network error; 5 authentication or permission error.
"""

from __future__ import annotations

import click

EXIT_OK = 0
EXIT_FUNCTION_FAILED = 1
EXIT_USAGE = 2
EXIT_INVALID_INPUT = 3
EXIT_SERVER = 4
EXIT_AUTH = 5


@click.group(name="fn")
def fn() -> None:
    """Build, run and ship Cartwheel functions (WebAssembly + an input query)."""


def _register() -> None:
    # Each command module adds itself to `fn`; importing here keeps `fn` complete for
    # both entry points (`cartwheel fn` and `python -m functions_sdk.cli`).
    import importlib
    import pkgutil

    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")


_register()
