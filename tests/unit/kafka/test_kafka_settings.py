"""KafkaSettings: every client setting, validated once; clients.py builds clients from it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from aiokafka.abc import AbstractTokenProvider
from pydantic import ValidationError
from typer.testing import CliRunner

from gymstream.cli.main import app
from gymstream.errors import ConfigError
from gymstream.kafka.clients import build_consumer, build_producer, client_options
from gymstream.settings import DEFAULT_COMPRESSION, KafkaSettings


def _oauth(**fields: object) -> KafkaSettings:
    base = {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "OAUTHBEARER"}
    return KafkaSettings.model_validate(base | fields)


def test_every_field_is_read_from_its_environment_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GYMSTREAM_KAFKA_CLIENT_ID", "team-a")
    monkeypatch.setenv("GYMSTREAM_KAFKA_COMPRESSION", "lz4")
    monkeypatch.setenv("GYMSTREAM_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("GYMSTREAM_KAFKA_SASL_MECHANISM", "scram-sha-512")
    monkeypatch.setenv("GYMSTREAM_KAFKA_SASL_USERNAME", "u")
    monkeypatch.setenv("GYMSTREAM_KAFKA_SASL_PASSWORD", "p")
    settings = KafkaSettings()
    assert (settings.client_id, settings.compression) == ("team-a", "lz4")
    assert settings.sasl_mechanism == "SCRAM-SHA-512"
    options = client_options(settings)
    assert options["client_id"] == "team-a"
    assert options["sasl_plain_username"] == "u"
    assert options["sasl_plain_password"] == "p"  # noqa: S105
    assert "ssl_context" in options


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"sasl_mechanism": "PLAIN"}, "needs security_protocol SASL_SSL or SASL_PLAINTEXT"),
        ({"security_protocol": "SASL_SSL"}, "needs a sasl_mechanism"),
        (
            {"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN", "sasl_username": "u"},
            "PLAIN needs sasl_username and sasl_password",
        ),
        (
            {"security_protocol": "SASL_SSL", "sasl_mechanism": "OAUTHBEARER"},
            "needs exactly one of sasl_oauth_token",
        ),
        ({"security_protocol": "SASL_SSL", "sasl_mechanism": "KERBEROS5"}, "unknown SASL"),
        ({"compression": "brotli"}, "Input should be 'none', 'gzip'"),
    ],
)
def test_inconsistent_settings_are_refused(fields: dict[str, object], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        KafkaSettings.model_validate(fields)


def test_a_bad_kafka_variable_is_one_line_and_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GYMSTREAM_KAFKA_COMPRESSION", "brotli")
    result = CliRunner().invoke(app, ["topics", "apply"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert "GYMSTREAM_KAFKA_COMPRESSION" in lines[0]
    assert "Traceback" not in result.output


async def test_producers_compress_with_the_default_codec_and_clients_carry_the_client_id() -> None:
    settings = KafkaSettings(client_id="me")
    producer = build_producer(settings)
    assert producer.client._client_id == "me"
    assert producer._compression_type == DEFAULT_COMPRESSION
    assert build_producer(KafkaSettings(compression="none"))._compression_type is None
    consumer = build_consumer(settings, "t", group_id="g")
    assert consumer._client._client_id == "me"


async def test_a_static_oauth_token_reaches_aiokafka_as_a_token_provider() -> None:
    secret = "s3cret"  # noqa: S105
    provider = client_options(_oauth(sasl_oauth_token=secret))["sasl_oauth_token_provider"]
    assert isinstance(provider, AbstractTokenProvider)
    assert await provider.token() == secret
    assert secret not in repr(_oauth(sasl_oauth_token=secret))


async def test_a_token_file_is_read_again_once_the_token_is_old(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("first\n")
    fresh = client_options(_oauth(sasl_oauth_token_file=str(path), sasl_oauth_refresh_s=1e-9))
    path_provider = fresh["sasl_oauth_token_provider"]
    assert await path_provider.token() == "first"
    path.write_text("second\n")
    assert await path_provider.token() == "second"
    cached = client_options(_oauth(sasl_oauth_token_file=str(path)))["sasl_oauth_token_provider"]
    assert await cached.token() == "second"
    path.write_text("third\n")
    assert await cached.token() == "second"  # within sasl_oauth_refresh_s: reused


async def test_a_token_command_gives_its_stdout_and_its_failure_is_named() -> None:
    ok = _oauth(sasl_oauth_token_command=f"{sys.executable} -c \"print('tok-1')\"")
    assert await client_options(ok)["sasl_oauth_token_provider"].token() == "tok-1"
    bad = _oauth(sasl_oauth_token_command=f"{sys.executable} -c \"import sys; sys.exit('no')\"")
    with pytest.raises(ConfigError, match=r"token command .* exited with 1: no"):
        await client_options(bad)["sasl_oauth_token_provider"].token()


async def test_a_missing_token_file_is_a_config_error(tmp_path: Path) -> None:
    settings = _oauth(sasl_oauth_token_file=str(tmp_path / "absent"))
    with pytest.raises(ConfigError, match="cannot read the OAUTHBEARER token file"):
        await client_options(settings)["sasl_oauth_token_provider"].token()


def test_the_help_lists_every_kafka_variable() -> None:
    result = CliRunner().invoke(app, ["--help"], terminal_width=200)
    for name in KafkaSettings.model_fields:
        assert f"GYMSTREAM_KAFKA_{name.upper()}" in result.output


def test_version_and_bootstrap_server_alias() -> None:
    assert CliRunner().invoke(app, ["--version"]).output.startswith("gymstream 0.1.0")
    result = CliRunner().invoke(app, ["topics", "apply", "--help"], terminal_width=200)
    assert "--bootstrap-server" in result.output
