"""Configuration mistakes through the real CLI (subprocesses, a real broker): each is one line
that says what is wrong and what to do, exit 2, never a traceback. A protocol mismatch exits 1:
from outside, a listener that accepts TCP and drops the handshake may also be a broker still
starting, so it is not called a user's mistake; it is not called a missing broker either."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures.pipeline import AGENT_ONE, cli_env, gymstream

pytestmark = [pytest.mark.kafka, pytest.mark.faults]

SASL = {
    "GYMSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
    "GYMSTREAM_KAFKA_SASL_MECHANISM": "PLAIN",
    "GYMSTREAM_KAFKA_SASL_USERNAME": "user",
}

# name: (command, extra environment, what the one line says)
CASES: dict[str, tuple[list[str], dict[str, str], str]] = {
    "input_is_a_directory": (
        ["produce", "{tmp}", "--run-id", "r"],
        {},
        "{tmp} is a directory: pass the JSONL file itself",
    ),
    "worker_before_topics_apply": (
        ["worker", "--agent", AGENT_ONE],
        {"GYMSTREAM_KAFKA_REQUEST_TIMEOUT_MS": "3000"},  # how long aiokafka looks for the topic
        "topic {prefix}.tasks." + AGENT_ONE + " does not exist: create it with "
        "`gymstream topics apply --agent " + AGENT_ONE + "`",
    ),
    "status_before_topics_apply": (
        ["status"],
        {},
        "topic {prefix}.runs does not exist: create the topics with `gymstream topics apply`",
    ),
    "missing_ssl_cafile": (
        ["sink", "--output", "{tmp}/out.jsonl", "--run-id", "r"],
        {"GYMSTREAM_KAFKA_SECURITY_PROTOCOL": "SSL", "GYMSTREAM_KAFKA_SSL_CAFILE": "/no/ca.pem"},
        "GYMSTREAM_KAFKA_SSL_CAFILE: no such file: /no/ca.pem",
    ),
    "unknown_security_protocol": (
        ["sink", "--output", "{tmp}/out.jsonl", "--run-id", "r"],
        {"GYMSTREAM_KAFKA_SECURITY_PROTOCOL": "TLS"},
        "GYMSTREAM_KAFKA_SECURITY_PROTOCOL: Input should be 'PLAINTEXT', 'SSL', 'SASL_PLAINTEXT' "
        "or 'SASL_SSL'",
    ),
    "sasl_without_password": (
        ["sink", "--output", "{tmp}/out.jsonl", "--run-id", "r"],
        SASL,
        "PLAIN needs sasl_username and sasl_password "
        "(GYMSTREAM_KAFKA_SASL_USERNAME, GYMSTREAM_KAFKA_SASL_PASSWORD)",
    ),
    "sink_output_is_a_directory": (
        ["sink", "--output", "{tmp}", "--overwrite", "--run-id", "r"],
        {},
        "--output {tmp} is a directory: give the output file",
    ),
    "sasl_against_a_plaintext_listener": (
        ["sink", "--output", "{tmp}/out.jsonl", "--run-id", "r"],
        {
            **SASL,
            "GYMSTREAM_KAFKA_SASL_PASSWORD": "pw",
            "GYMSTREAM_KAFKA_REQUEST_TIMEOUT_MS": "5000",
        },
        "accepts connections but the Kafka handshake failed",
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_configuration_mistake_is_one_line_and_exit_2(
    name: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    args, extra, expected = CASES[name]
    env = cli_env(kafka_bootstrap, **extra)  # its own prefix: no topics exist under it
    fill = {"tmp": str(tmp_path), "prefix": env["GYMSTREAM_TOPIC_PREFIX"]}
    result = gymstream(*(a.format(**fill) for a in args), env=env)
    text = (result.stdout + result.stderr).strip()
    assert "Traceback" not in text, text
    assert result.returncode == (1 if name == "sasl_against_a_plaintext_listener" else 2), text
    [line] = [x for x in text.splitlines() if x.strip()]
    assert line.startswith("error: "), text
    assert expected.format(**fill) in line, text
    if "start one with" in line:
        pytest.fail(f"a listening broker blamed on a missing one: {line}")
