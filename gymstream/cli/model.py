"""The `gymstream model` command group: serve the scripted test-double model."""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Annotated, cast

import typer

from gymstream import eventloop
from gymstream.errors import GymstreamError
from gymstream.settings import EventLoopSettings
from gymstream.testing.server import LogprobsMode, ScriptedServer, serve_scripted

app = typer.Typer(
    help="Model endpoints: a scripted stand-in for demos, tests and benchmarks.",
    no_args_is_help=True,
)


async def _serve(
    host: str,
    port: int,
    latency_ms: float,
    error_rate: float,
    hang_rate: float,
    seed: int,
    latency_jitter_ms: float,
    logprobs: LogprobsMode,
) -> ScriptedServer:
    server = await serve_scripted(
        host, port, latency_ms, error_rate, hang_rate, seed, latency_jitter_ms, logprobs
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    # The first line is machine-readable on purpose: scripts read the URL from it (port 0).
    typer.echo(f"scripted model listening on {server.url}")
    sys.stdout.flush()
    try:
        await stop.wait()
    finally:
        server.close()
        await server.wait_closed()
    return server


_SERVE_HELP = (
    "Serve a scripted OpenAI-compatible model: a TEST DOUBLE for demo, tests and benchmarks, "
    "not a language model.\n\n"
    "Speaks POST /v1/responses, POST /v1/chat/completions and GET /v1/models. A deterministic "
    "policy plays the example environments (it solves most example_multi_step rows, not all) "
    "and fills other tools' arguments from their schemas. The first line printed is "
    "'scripted model listening on <base url>'. Stop with Ctrl-C or SIGTERM."
)


@app.command("serve-scripted", help=_SERVE_HELP)
def serve_scripted_command(
    port: Annotated[int, typer.Option(help="TCP port; 0 picks a free one (printed).")] = 8123,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    latency_ms: Annotated[
        float, typer.Option(min=0, help="Added latency per request, in milliseconds.")
    ] = 0.0,
    latency_jitter_ms: Annotated[
        float,
        typer.Option(
            min=0,
            help="Spread each request's latency uniformly over latency +- this many ms "
            "(mean unchanged; at most --latency-ms). A real model's latency varies; a fixed "
            "one answers concurrent rollouts in lockstep bursts.",
        ),
    ] = 0.0,
    error_rate: Annotated[
        float, typer.Option(min=0, max=1, help="Fraction of model requests answered 500/503.")
    ] = 0.0,
    hang_rate: Annotated[
        float,
        typer.Option(min=0, max=1, help="Fraction of model requests never answered (hangs)."),
    ] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed for the policy's mistakes and fault draws.")] = 0,
    logprobs: Annotated[
        str,
        typer.Option(
            help="Token ids and log-probs: 'asked' (Chat Completions requests that ask, as "
            "vLLM), 'always' (also on the Responses API, as NeMo Gym's model server with "
            "return_token_id_information) or 'never' (a server that drops them).",
        ),
    ] = "asked",
) -> None:
    """Run the scripted model server until SIGINT/SIGTERM; exit 2 if it cannot listen."""
    if error_rate + hang_rate > 1:
        raise typer.BadParameter("--error-rate plus --hang-rate must not exceed 1")
    if latency_jitter_ms > latency_ms:
        raise typer.BadParameter("--latency-jitter-ms must not exceed --latency-ms")
    if logprobs not in ("asked", "always", "never"):
        raise typer.BadParameter("--logprobs must be asked, always or never")
    try:
        server = eventloop.run(
            _serve(
                host,
                port,
                latency_ms,
                error_rate,
                hang_rate,
                seed,
                latency_jitter_ms,
                cast(LogprobsMode, logprobs),
            ),
            EventLoopSettings().event_loop,
        )
    except OSError as exc:
        typer.echo(f"error: cannot listen on {host}:{port}: {exc.strerror or exc}", err=True)
        raise typer.Exit(2) from None
    except GymstreamError as exc:  # e.g. a bad GYMSTREAM_EVENT_LOOP
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    stats = ", ".join(f"{k}={v}" for k, v in sorted(server.stats.items())) or "no requests"
    typer.echo(f"scripted model stopped: {stats}", err=True)
