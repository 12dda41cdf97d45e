"""``gymstream.integrations.nemo_gym.RolloutCollectionHelper.run_examples`` vs NeMo Gym 0.7.0's own.

Over the same NeMo Gym servers (``nemo_gym_examples``: both seed examples' resources servers and
simple_agents, NeMo Gym's openai_model in front of gymstream's scripted model), the same rows go
through NeMo Gym's ``RolloutCollectionHelper.run_examples`` (in its venv, as a subprocess) and
through ours (Kafka, our workers); the ``(row, result)`` pairs must be equal, in any completion
order: the same rows, the same rewards and verifier fields, the same trajectory (item types,
tool calls and outputs; response ids and timestamps differ by nature). Our result may hold more:
the row's other task fields (docs: the contract's superset).

Both sides read the agents from a head server, as a trainer does: a small stand-in for
``ng_run``'s head server answers the two requests both make (``/global_config_dict_yaml``, the
merged config the servers run with, and ``/server_instances``).
"""

from __future__ import annotations

import http.server
import json
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fixtures.nemo_gym_rows import NOT_VERIFIER_FIELDS, rows_of, trajectory
from fixtures.nemo_gym_servers import (
    _START_TIMEOUT_S,
    EXAMPLE_CONFIGS,
    EXAMPLE_INSTANCES,
    MS_AGENT,
    MS_RESOURCES,
    STC_AGENT,
    STC_RESOURCES,
    Instance,
    NemoGymServers,
    run_nemo_gym_servers,
)

from gymstream.integrations.nemo_gym import RolloutCollectionHelper
from gymstream.kafka.topics import load_layout
from gymstream.settings import KafkaSettings, RolloutSettings, WorkerSettings
from gymstream.testing.thread import ScriptedThread

# starting the servers may take their own start deadline on a shared box (nemo_gym_fixtures.py)
pytestmark = [pytest.mark.kafka, pytest.mark.timeout(_START_TIMEOUT_S + 180)]
_THEIRS_DEADLINE_S = 120.0  # NeMo Gym's side of a few rows takes seconds; a hang shows its stack

_THEIRS = """
import asyncio, faulthandler, json, sys
faulthandler.dump_traceback_later(float(sys.argv[4]), exit=True)  # a hang fails, with its stack
from nemo_gym import server_utils
from nemo_gym.rollout_collection import RolloutCollectionHelper
from nemo_gym.server_utils import BaseServerConfig

_setup = server_utils.set_global_aiohttp_client
def _debug_setup(*args, **kwargs):  # NeMo Gym retries internal calls silently: show why
    client = _setup(*args, **kwargs)
    server_utils._GLOBAL_AIOHTTP_CLIENT_REQUEST_DEBUG = True
    return client
server_utils.set_global_aiohttp_client = _debug_setup

rows = json.loads(open(sys.argv[1]).read())
head = BaseServerConfig(host="127.0.0.1", port=int(sys.argv[2]))

async def main():
    helper = RolloutCollectionHelper()
    return [await future for future in helper.run_examples(rows, head_server_config=head)]

open(sys.argv[3], "w").write(json.dumps(asyncio.run(main())))
"""


# NeMo Gym 0.7.0's run_examples posts an agent's rows to the environment server that wraps it
# (``<env>_environment_server``, a legacy_agent in front of the simple_agent): run those too.
_INSTANCES = (
    *EXAMPLE_INSTANCES,
    Instance(f"{STC_RESOURCES}_environment_server", "environment_servers", "legacy_agent"),
    Instance(
        MS_RESOURCES.replace("_resources_server", "_environment_server"),
        "environment_servers",
        "legacy_agent",
    ),
)


@pytest.fixture(scope="module")
def nemo_gym_servers(
    scripted_model: ScriptedThread, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NemoGymServers]:
    """Both seed examples with their environment servers, and the policy model."""
    with run_nemo_gym_servers(
        _INSTANCES,
        EXAMPLE_CONFIGS,
        policy_base_url=scripted_model.url,
        log_dir=tmp_path_factory.mktemp("run_examples_servers"),
    ) as servers:
        yield servers


@pytest.fixture(scope="module")
def head(nemo_gym_servers: NemoGymServers) -> Iterator[int]:
    """A head server stand-in for ``nemo_gym_servers``: its port."""
    nemo_gym_examples = nemo_gym_servers
    config_text = json.dumps(nemo_gym_examples.config_yaml).encode()
    instances = json.dumps(
        [{"process_name": n, "url": nemo_gym_examples.url(n)} for n in nemo_gym_examples.ports]
    ).encode()

    class Head(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = {"/global_config_dict_yaml": config_text, "/server_instances": instances}
            answer = body.get(self.path)
            self.send_response(200 if answer is not None else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(answer or b"{}")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Head)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def _rows() -> list[dict[str, Any]]:
    rows = []
    for environment, agent in (
        ("example_single_tool_call", STC_AGENT),
        ("example_multi_step", MS_AGENT),
    ):
        for row in rows_of(environment):
            rows.append({**row, "agent_ref": {"type": "responses_api_agents", "name": agent}})
    return [{**row, "_rowidx": index} for index, row in enumerate(rows)]


def _theirs(servers: NemoGymServers, port: int, rows: list[dict[str, Any]], tmp: Path) -> Any:
    (tmp / "rows.json").write_text(json.dumps(rows))
    done = subprocess.run(
        [
            *(str(servers.python), "-c", _THEIRS),
            *(str(tmp / "rows.json"), str(port), str(tmp / "out"), str(_THEIRS_DEADLINE_S)),
        ],
        cwd=servers.site_packages,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    return json.loads((tmp / "out").read_text())


async def _ours(helper: RolloutCollectionHelper, rows: list[dict[str, Any]], port: int) -> Any:
    head = {"host": "127.0.0.1", "port": port}
    return [await future for future in helper.run_examples(rows, head_server_config=head)]


async def test_run_examples_pairs_equal_nemo_gyms(
    nemo_gym_servers: NemoGymServers, head: int, kafka_bootstrap: str, tmp_path: Path
) -> None:
    rows = _rows()
    theirs = _theirs(nemo_gym_servers, head, rows, tmp_path)
    settings = RolloutSettings.from_environment()
    settings = RolloutSettings(
        model=settings.model,
        retry=settings.retry,
        worker=WorkerSettings(commit_interval_s=0.1, shutdown_grace_s=5),
    )
    helper = RolloutCollectionHelper(
        kafka=KafkaSettings(bootstrap=kafka_bootstrap),
        layout=load_layout(prefix=f"t{id(rows):x}p"),
        settings=settings,
    )
    try:
        ours = await _ours(helper, rows, head)
    finally:
        helper.close()
    assert len(theirs) == len(ours) == len(rows)
    theirs_by_row = {row["_rowidx"]: (row, result) for row, result in theirs}
    ours_by_row = {row["_rowidx"]: (row, result) for row, result in ours}
    assert sorted(theirs_by_row) == sorted(ours_by_row) == list(range(len(rows)))
    rewards = set()
    for index in range(len(rows)):
        (their_row, their_result), (our_row, our_result) = theirs_by_row[index], ours_by_row[index]
        assert our_row == their_row == rows[index], index  # the row as given
        fields = set(their_result) - NOT_VERIFIER_FIELDS
        assert {k: our_result.get(k) for k in fields} == {k: their_result[k] for k in fields}
        assert trajectory(our_result["response"]) == trajectory(their_result["response"]), index
        rewards.add(their_result["reward"])
    assert rewards == {0.0, 1.0}  # both outcomes compared
