"""`cartwheel`: the console script. Server operations plus the developer's `fn` group.

Operations: ``db upgrade|current``, ``shop create|list``, ``token create|revoke``,
``demo [--serve]``, ``serve``; ``worker`` and ``runlog`` are registered at the bottom from
the modules that own them. Each reads `Settings` from the environment; the
``--database-url`` option (env ``DATABASE_URL``) overrides the database. Human output by
default, ``--json`` for scripts. Exit codes are those of `functions_sdk.cli`: 3 for
invalid input (bad handle, unknown scope, missing shop), 4 when the database is
unreachable or not migrated.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from cartwheel import __version__
from cartwheel.settings import Settings
from functions_sdk.cli import EXIT_INVALID_INPUT, EXIT_SERVER, fn
from functions_sdk.errors import CartwheelError

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


@click.group()
@click.version_option(__version__, prog_name="cartwheel")
def main() -> None:
    """Cartwheel: an open platform for commerce functions.

    Server operations (db, shop, token, demo, serve, worker, runlog) and, under `fn`,
    the merchant developer's tools.
    """


main.add_command(fn)


def database_option(command: F) -> F:
    """``--database-url`` with ``DATABASE_URL`` as fallback (else the SQLite default)."""
    return click.option(
        "--database-url",
        envvar="DATABASE_URL",
        default=None,
        metavar="URL",
        help="SQLAlchemy URL of the database [env DATABASE_URL; default: SQLite file in "
        "CARTWHEEL_DATA_DIR].",
    )(command)


def json_option(command: F) -> F:
    """``--json``: print one JSON document instead of human output."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(command)


def _settings(database_url: str | None) -> Settings:
    settings = Settings.from_env()
    if database_url:
        settings = dataclasses.replace(settings, database_url=database_url)
    return settings


def _fail(exc: CartwheelError) -> None:
    from cartwheel.errors import DatabaseNotReadyError

    click.echo(f"error: [{exc.code}] {exc.message}", err=True)
    server_side = isinstance(exc, DatabaseNotReadyError) or exc.code == "INTERNAL_ERROR"
    sys.exit(EXIT_SERVER if server_side else EXIT_INVALID_INPUT)


@contextmanager
def _session(settings: Settings) -> Iterator[Session]:
    """A session in a transaction on a database that is migrated to head; errors become
    one line on stderr and an exit code."""
    from cartwheel.db import current_revision, head_revision, make_engine, session_factory
    from cartwheel.errors import DatabaseNotReadyError

    engine = make_engine(settings)
    try:
        try:
            current = current_revision(engine)
        except OperationalError as exc:
            raise DatabaseNotReadyError(
                f"Cannot reach the database ({exc.orig}); check DATABASE_URL."
            ) from None
        if current != head_revision():
            raise DatabaseNotReadyError(
                f"The database schema is at {current or 'nothing'}, not at the newest "
                "migration: run `cartwheel db upgrade` first."
            )
        with session_factory(engine)() as session, session.begin():
            yield session
    except CartwheelError as exc:
        _fail(exc)
    finally:
        engine.dispose()


def _print_json(document: Any) -> None:
    click.echo(json.dumps(document, indent=2, sort_keys=True))


# --- db -----------------------------------------------------------------------------------


@main.group()
def db() -> None:
    """Database schema (Alembic migrations)."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Target revision.")
@database_option
def db_upgrade(revision: str, database_url: str | None) -> None:
    """Create or migrate the database schema to the newest revision."""
    from cartwheel.db import upgrade

    settings = _settings(database_url)
    try:
        upgrade(settings.database_url, revision)
    except OperationalError as exc:
        from cartwheel.errors import DatabaseNotReadyError

        _fail(DatabaseNotReadyError(f"Cannot migrate the database ({exc.orig})."))
    except CartwheelError as exc:
        _fail(exc)
    click.echo(f"database at {revision}: {_safe_url(settings.database_url)}")


@db.command("current")
@database_option
@json_option
def db_current(database_url: str | None, as_json: bool) -> None:
    """Show the schema revision of the database and the newest one."""
    from cartwheel.db import current_revision, head_revision, make_engine

    engine = make_engine(_settings(database_url))
    try:
        current, head = current_revision(engine), head_revision()
    finally:
        engine.dispose()
    if as_json:
        _print_json({"current": current, "head": head, "upToDate": current == head})
    else:
        click.echo(f"current: {current or '(empty)'}  head: {head}")


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


# --- shop ---------------------------------------------------------------------------------


@main.group()
def shop() -> None:
    """Shops (tenants)."""


@shop.command("create")
@click.argument("handle")
@click.option("--name", help="Display name [default: the handle].")
@click.option("--currency", default="USD", show_default=True, help="ISO 4217 currency code.")
@click.option("--timezone", default="UTC", show_default=True, help="IANA time zone.")
@click.option("--country", default="US", show_default=True, help="ISO 3166 country code.")
@database_option
@json_option
def shop_create(
    handle: str,
    name: str | None,
    currency: str,
    timezone: str,
    country: str,
    database_url: str | None,
    as_json: bool,
) -> None:
    """Create the shop HANDLE."""
    from cartwheel.tenancy import create_shop

    with _session(_settings(database_url)) as session:
        created = create_shop(
            session,
            handle=handle,
            name=name or handle,
            currency_code=currency,
            timezone=timezone,
            country_code=country,
        )
        document = _shop_document(created)
    if as_json:
        _print_json(document)
    else:
        click.echo(f"created shop {handle} ({document['id']})")


@shop.command("list")
@database_option
@json_option
def shop_list(database_url: str | None, as_json: bool) -> None:
    """List shops."""
    import sqlalchemy as sa

    from cartwheel.models import Shop

    with _session(_settings(database_url)) as session:
        shops = [_shop_document(s) for s in session.scalars(sa.select(Shop).order_by(Shop.id))]
    if as_json:
        _print_json(shops)
    else:
        for item in shops:
            click.echo(f"{item['handle']:<24} {item['id']:<28} {item['currencyCode']}")


def _shop_document(shop: Any) -> dict[str, Any]:
    return {
        "id": shop.gid,
        "handle": shop.handle,
        "name": shop.name,
        "currencyCode": shop.currency_code,
        "timezone": shop.timezone,
    }


# --- token --------------------------------------------------------------------------------


@main.group()
def token() -> None:
    """API tokens (each belongs to one shop)."""


@token.command("create")
@click.option("--shop", "shop_handle", required=True, help="Handle of the shop.")
@click.option(
    "--scope",
    "scopes",
    required=True,
    multiple=True,
    type=click.Choice(["admin", "deploy", "storefront"]),
    help="What the token may do; repeat for several.",
)
@click.option("--name", default="", help="A label shown in token listings.")
@database_option
@json_option
def token_create(
    shop_handle: str, scopes: tuple[str, ...], name: str, database_url: str | None, as_json: bool
) -> None:
    """Create a token and print it. It is shown only this once: store it now."""
    from cartwheel.tenancy import issue_token, shop_by_handle

    with _session(_settings(database_url)) as session:
        target = shop_by_handle(session, shop_handle)
        created, raw = issue_token(session, target.id, scopes, name=name)
        document = {
            "id": created.gid,
            "shop": shop_handle,
            "scopes": created.scopes,
            "token": raw,
        }
    if as_json:
        _print_json(document)
    else:
        click.echo(raw)
        click.echo(
            f"token {document['id']} for shop {shop_handle} ({', '.join(created.scopes)}); "
            "it is not shown again",
            err=True,
        )


@token.command("revoke")
@click.option("--shop", "shop_handle", required=True, help="Handle of the shop.")
@click.argument("token_id")
@database_option
def token_revoke(shop_handle: str, token_id: str, database_url: str | None) -> None:
    """Revoke the token TOKEN_ID (its global id or number) of the shop."""
    from cartwheel.tenancy import ShopScope, shop_by_handle

    with _session(_settings(database_url)) as session:
        scope = ShopScope(session, shop_by_handle(session, shop_handle).id)
        key: int | str = int(token_id) if token_id.isdigit() else token_id
        revoked = scope.revoke_token(key)
        gid = revoked.gid
    click.echo(f"revoked {gid}")


# --- demo and serve -------------------------------------------------------------------------


def server_options(command: F) -> F:
    """``--host`` and ``--port``."""
    command = click.option(
        "--port", default=DEFAULT_PORT, show_default=True, type=int, help="TCP port."
    )(command)
    return click.option("--host", default=DEFAULT_HOST, show_default=True, help="Bind address.")(
        command
    )


@main.command()
@click.option("--serve", "then_serve", is_flag=True, help="Then run the server.")
@click.option(
    "--functions/--no-functions",
    "with_functions",
    default=True,
    show_default=True,
    help="Deploy, activate and configure the example functions (examples/) in the shop.",
)
@server_options
@database_option
@json_option
def demo(
    then_serve: bool,
    with_functions: bool,
    host: str,
    port: int,
    database_url: str | None,
    as_json: bool,
) -> None:
    """Migrate the database, seed the demo shop (once), install the example functions
    (once) and print fresh tokens for it."""
    from cartwheel.db import upgrade
    from cartwheel.demo import install_demo_functions, issue_demo_tokens, seed_demo
    from cartwheel.ids import encode_gid

    settings = _settings(database_url)
    try:
        upgrade(settings.database_url)
    except CartwheelError as exc:
        _fail(exc)
    with _session(settings) as session:
        seeded = seed_demo(session)
        tokens = issue_demo_tokens(session, seeded.shop_id)
    functions: list[dict[str, Any]] = []
    if with_functions:
        from cartwheel.db import make_engine, session_factory
        from cartwheel.models import INSTANCE_GID_TYPES

        engine = make_engine(settings)
        try:
            installed = install_demo_functions(settings, session_factory(engine), seeded.shop_id)
        except CartwheelError as exc:
            _fail(exc)
        finally:
            engine.dispose()
        functions = [
            {
                "handle": f.handle,
                "functionId": encode_gid("Function", f.function_id),
                "versionId": encode_gid("FunctionVersion", f.version_id),
                "instanceId": encode_gid(INSTANCE_GID_TYPES[f.instance_kind], f.instance_id),
            }
            for f in installed
        ]
    url = f"http://{host}:{port}"
    cart_key = seeded.cart_id
    document = {
        "shop": "demo",
        "shopId": encode_gid("Shop", seeded.shop_id),
        "cartId": encode_gid("Cart", seeded.cart_id),
        "tokens": tokens,
        "functions": functions,
        "url": url,
        "checkoutUrl": f"{url}/storefront/carts/{cart_key}/checkout",
        "database": _safe_url(settings.database_url),
    }
    if as_json:
        _print_json(document)
    else:
        click.echo(f"Demo shop 'demo' ready in {document['database']}")
        click.echo(f"  cart:             {document['cartId']}")
        for name, raw in tokens.items():
            click.echo(f"  {name + ' token:':<17} {raw}")
        for f in functions:
            click.echo(f"  function:         {f['handle']} (active, {f['instanceId']})")
        click.echo(f"  admin API:        {url}/graphql")
        click.echo("  check out the demo cart with the storefront token:")
        click.echo(
            f"    curl -X POST -H 'Authorization: Bearer {tokens['storefront']}' "
            f"{document['checkoutUrl']}"
        )
    if then_serve:
        _serve(settings, host, port, workers=1)


@main.command()
@server_options
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Worker processes. Each listens on its own SO_REUSEPORT socket, so the kernel "
    "spreads connections over them; a worker that dies is restarted.",
)
@click.option(
    "--access-log/--no-access-log",
    default=False,
    show_default=True,
    help="Log every request (uvicorn's access log). Off by default: the load balancer "
    "logs requests, and a log line per checkout costs CPU on the hot path.",
)
@database_option
def serve(host: str, port: int, workers: int, access_log: bool, database_url: str | None) -> None:
    """Run the API server (uvicorn) on the configured database."""
    _serve(_settings(database_url), host, port, workers=workers, access_log=access_log)


def _serve(
    settings: Settings, host: str, port: int, *, workers: int, access_log: bool = True
) -> None:
    import uvicorn

    if workers == 1:
        from cartwheel.app import create_app

        uvicorn.run(
            create_app(settings), host=host, port=port, log_level="info", access_log=access_log
        )
        return
    from cartwheel.serving import ServeOptions, serve_workers

    # Worker processes build their own app from the environment: hand the URL down.
    os.environ["DATABASE_URL"] = settings.database_url
    try:
        status = serve_workers(ServeOptions(host, port, access_log=access_log), workers)
    except OSError as exc:
        raise click.ClickException(
            f"Cannot listen on {host}:{port}: {exc.strerror or exc}."
        ) from None
    if status:
        sys.exit(status)


def app_from_env() -> Any:
    """The ASGI app for `Settings.from_env()`: the factory uvicorn's workers call."""
    from cartwheel.app import create_app

    return create_app(Settings.from_env())


# `cartwheel worker` (RQ): defined with the jobs it runs, in cartwheel.worker.
from cartwheel.worker import worker as _worker  # noqa: E402

main.add_command(_worker)

from cartwheel.runlog import runlog_cli as _runlog  # noqa: E402

main.add_command(_runlog)
