"""``feast-spark serve``: the HTTP feature server (:mod:`feast_spark.server`).

The server's libraries (starlette, uvicorn, prometheus-client) are imported only when the
command runs.
"""

from __future__ import annotations

import click

from feast_spark.cli.context import CliContext, common_options, handle_errors


@click.command("serve")
@click.option("--host", help="Address to listen on [feature_server.host, default 127.0.0.1].")
@click.option("--port", type=click.IntRange(1, 65535), help="Port [feature_server.port, 6566].")
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    help="Worker processes sharing the port [feature_server.workers, 1].",
)
@click.option(
    "--max-entities",
    type=click.IntRange(1, 100_000),
    help="Entity rows per request at most [feature_server.max_entities, 1000].",
)
@click.option(
    "--log-level",
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
    default="info",
    show_default=True,
)
@common_options
@handle_errors
def serve(
    host: str | None,
    port: int | None,
    workers: int | None,
    max_entities: int | None,
    log_level: str,
) -> None:
    """Serve the online store over HTTP with Feast's JSON contract (POST /get-online-features).

    Settings come from the feature_server section of feature_store.yaml; flags override them.
    SIGTERM drains the requests in flight and exits 0.
    """
    from feast_spark.config import load_config
    from feast_spark.registry import Registry
    from feast_spark.server.settings import ServeSettings
    from feast_spark.server.workers import serve as run

    context = CliContext.current()
    config = load_config(context.config_path).with_project(context.project)
    Registry(config.registry).list_feature_tables(config.project)  # fail here, in one line
    settings = ServeSettings(str(config.source), context.project, config.feature_server).with_flags(
        host=host, port=port, workers=workers, max_entities=max_entities
    )
    server = settings.server
    click.echo(
        f"serving project '{config.project}' from the {config.online_store.type} online store "
        f"on http://{server.host}:{server.port} ({server.workers} worker(s)); try:\n"
        f"  curl -s http://{server.host}:{server.port}/ready"
    )
    run(settings, log_level=log_level)
