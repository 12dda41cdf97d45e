"""The remote agent: a NeMo Gym agent or environment server that runs a whole rollout itself.

For the environments with agents of their own (any agent type but ``simple_agent``, and every
``environment_servers`` instance): ``POST /run`` with the row; the answer is the verify result
(NeMo Gym's ``/run`` never stamps ``_ng_*`` keys: the worker's output row does, like any result).
Same pooled client as the resources servers: real timeouts, bounded retries for connection
errors, timeouts and 502/503/504 (``remote_agent_unavailable``); a 4xx, the same other 5xx twice
in a row, or an answer without a numeric ``reward`` is ``remote_agent_error`` (terminal).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import msgspec

from gymstream.errors import RowError, ServerResponseError
from gymstream.nemo_gym.outputs.output_row import PARAMS, verify_result
from gymstream.nemo_gym.outputs.result import RolloutResult
from gymstream.nemo_gym.servers.client import ServerClient
from gymstream.wire.messages import FailureClass

__all__ = ["RemoteAgent"]

_ENCODER = msgspec.json.Encoder()


@dataclass(frozen=True)
class RemoteAgent:
    """Runs rollouts by ``POST /run`` on one server (``client``); ``name`` is its instance."""

    name: str
    client: ServerClient

    async def run(self, row: dict[str, Any]) -> RolloutResult:
        """One rollout of ``row``; raises ServerCallError / ServerResponseError (typed)."""
        params = row.get(PARAMS)
        if not isinstance(params, dict):
            raise RowError("<row>", 0, PARAMS, "missing or not a JSON object")
        started = time.perf_counter()
        answer = await self.client.post("/run", _ENCODER.encode(row))
        run_s = time.perf_counter() - started
        try:
            fields = json.loads(answer.text) if answer.status < 300 else None
        except ValueError:
            fields = None
        reward = fields.get("reward") if isinstance(fields, dict) else None
        if (
            not isinstance(fields, dict)
            or isinstance(reward, bool)
            or not isinstance(reward, int | float)
        ):
            raise ServerResponseError(
                f"remote agent '{self.name}' /run answered HTTP {answer.status}, not a verify "
                f"result with a numeric 'reward': {answer.text[:300]}",
                failure_class=FailureClass.REMOTE_AGENT_ERROR,
                http_status=answer.status,
            )
        response = fields.get("response")
        result = verify_result(
            row,
            params=params,
            response=response if isinstance(response, dict) else {},
            reward=float(reward),
            fields=fields,
        )
        return RolloutResult(verify_result=result, timings={"run_s": run_s}, turns=0)
