"""A drop-in for NeMo Gym 0.7.0's ``nemo_gym.rollout_collection.RolloutCollectionHelper``.

Change one import in a trainer script and its rollouts go through gymstream::

    from gymstream.integrations.nemo_gym import RolloutCollectionHelper

    helper = RolloutCollectionHelper()
    for future in helper.run_examples(rows, head_server_config=head):
        row, result = await future

``run_examples`` has NeMo Gym's meaning: an iterator of awaitables, each resolving to one
``(row, result)`` pair in completion order; ``row`` is the caller's dict, ``result`` what NeMo
Gym's agent ``/run`` returns (``client/outcome.py``); rows start in the order given, once the
iterator is first consumed; a failed rollout raises (ending the batch) unless
``route_failures_to_sidecar``, which makes it a ``_ng_failure_*`` row. Each call is one
gymstream run (``RolloutClient.run``) on a client that lives as long as the helper: its workers
(started when no ``gymstream worker`` serves an agent) and its event loop run in a background
thread, so they keep serving while the trainer trains, whatever loop the caller awaits in.

The agents come from, in order: the helper's ``config``; else the NeMo Gym head server of
``head_server_config`` (its merged config and its servers' addresses, as ``--nemo-gym-head``
reads them; simple_agent agents run gymstream's agent loop over the same resources servers and
model, other agents are POSTed ``/run``); else gymstream's native environments.

Arguments that have no meaning here are accepted and ignored: ``semaphore`` and
``max_resident_tasks`` (the workers' ``concurrency`` bounds rollouts in flight),
``latency_tracker``, and ``dispatch_budget_s`` / ``drain_margin_s`` (not applied: every row
runs; a warning says so). ``environment_server_name`` routes every row to that instance, which
gymstream's config names as an agent.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import json
import logging
from collections.abc import Awaitable, Iterator, Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

from gymstream.client.sync import SyncRolloutClient
from gymstream.errors import ConfigError
from gymstream.nemo_gym.config.agents import GymConfig, load_config
from gymstream.nemo_gym.config.translate import translate
from gymstream.nemo_gym.outputs.output_row import AGENT_REF, PARAMS, ROLLOUT_INDEX, TASK_INDEX
from gymstream.nemo_gym.servers.head import head_config_yaml, server_urls

__all__ = ["RolloutCollectionHelper", "config_from_head", "head_url"]

log = logging.getLogger("gymstream.integrations")

Pair = tuple[dict[str, Any], dict[str, Any]]


def head_url(head_server_config: Any) -> str:
    """The head server's URL from a NeMo Gym ``BaseServerConfig`` (host, port), a mapping with
    those keys, or a URL string."""
    if isinstance(head_server_config, str):
        return head_server_config.rstrip("/")
    if isinstance(head_server_config, Mapping):
        host, port = head_server_config.get("host"), head_server_config.get("port")
    else:
        host = getattr(head_server_config, "host", None)
        port = getattr(head_server_config, "port", None)
    if not host or not port:
        raise ConfigError(f"head_server_config {head_server_config!r} names no host and port")
    host = "127.0.0.1" if host == "0.0.0.0" else host  # noqa: S104 (a listen address, mapped)
    return f"http://{host}:{port}"


def config_from_head(url: str) -> GymConfig:
    """The agents of the NeMo Gym head server at ``url``: its merged config, with the
    addresses of the servers ``ng_run`` started (``--nemo-gym-head``)."""
    merged = OmegaConf.create(head_config_yaml(url))
    if not isinstance(merged, DictConfig):
        raise ConfigError(f"NeMo Gym head server {url}: its config is not a mapping")
    return translate(merged, server_urls(url))


class RolloutCollectionHelper:
    """NeMo Gym's helper over gymstream (see the module doc). ``client_options`` go to the
    ``RolloutClient`` (``kafka``, ``layout``, ``settings``, ``workers``, ``worker_processes``,
    ``concurrency``, ``model_overrides``)."""

    def __init__(self, config: GymConfig | None = None, **client_options: Any) -> None:
        self.config = config
        self._options = client_options
        self._client: SyncRolloutClient | None = None
        self._head: str | None = None

    def _client_for(self, head_server_config: Any) -> SyncRolloutClient:
        url = head_url(head_server_config) if head_server_config is not None else None
        if self._client is not None:
            if url is not None and url != self._head and self.config is None:
                raise ConfigError(f"this helper reads agents from {self._head}, not {url}")
            return self._client
        config = self.config
        if config is None:
            config = config_from_head(url) if url is not None else load_config()
        self._head = url
        client = SyncRolloutClient(config, **self._options)
        client.__enter__()
        self._client = client
        atexit.register(self.close)
        return client

    def close(self) -> None:
        """Stop the helper's own workers and its event loop (also done at exit)."""
        client, self._client = self._client, None
        if client is not None:
            client.__exit__(None, None, None)

    def run_examples(
        self,
        examples: list[dict[str, Any]],
        head_server_config: Any = None,
        semaphore: Any = None,
        route_failures_to_sidecar: bool = False,
        environment_server_name: str | None = None,
        *,
        max_resident_tasks: int | None = None,
        dispatch_budget_s: float | None = None,
        drain_margin_s: float | None = None,
        latency_tracker: Any = None,
    ) -> Iterator[Awaitable[Pair]]:
        """One rollout per example; see the module doc for each argument's meaning here."""
        del semaphore, max_resident_tasks, latency_tracker  # no meaning here (module doc)
        if dispatch_budget_s is not None or drain_margin_s is not None:
            log.warning("run_examples: dispatch_budget_s / drain_margin_s are not applied")
        if environment_server_name is not None:
            for row in examples:
                row[AGENT_REF] = {"name": environment_server_name}
        return self._outcomes(examples, head_server_config, route_failures_to_sidecar)

    def _outcomes(
        self, examples: list[dict[str, Any]], head_server_config: Any, routed: bool
    ) -> Iterator[Awaitable[Pair]]:
        client = self._client_for(head_server_config)
        futures: list[concurrent.futures.Future[Pair]] = [
            concurrent.futures.Future() for _ in examples
        ]
        client.submit(_fill(client, examples, futures, routed))
        for future in futures:
            yield _wait(future)

    def preprocess_examples(
        self,
        examples: list[dict[str, Any]],
        *,
        agent_map: Mapping[str, str] | None = None,
        fan_out: Mapping[str, list[str]] | None = None,
        num_repeats: int | Mapping[str, int] = 1,
        num_repeats_add_seed: bool = False,
        global_config_dict: Any = None,
    ) -> list[dict[str, Any]]:
        """NeMo Gym's ``preprocess_examples`` for agent-routed rows: ``agent_map`` (an agent
        name or ``_default``), ``num_repeats`` (an int, or per agent with ``_default``) in
        order a a b b, ``num_repeats_add_seed``; stamps ``_ng_task_index`` (identical rows
        share one, a caller's own is kept) and ``_ng_rollout_index``. ``fan_out`` and
        task_source rows are not supported (ConfigError); ``global_config_dict`` is ignored."""
        del global_config_dict
        if fan_out:
            raise ConfigError("preprocess_examples: fan_out is not supported by gymstream")
        task_of: dict[str, int] = {}
        next_rollout: dict[int, int] = {}
        rows: list[dict[str, Any]] = []
        for index, example in enumerate(examples):
            row = dict(example)
            ref = row.get(AGENT_REF)
            original = ref.get("name") if isinstance(ref, dict) else None
            agent = _route(row, agent_map or {}, index)
            repeats = _repeats(num_repeats, [agent, original], index)
            if TASK_INDEX not in row:
                key = json.dumps(example, sort_keys=True)
                row[TASK_INDEX] = task_of.setdefault(key, len(task_of))
            for _ in range(repeats):
                copy = dict(row)
                copy[ROLLOUT_INDEX] = next_rollout.get(row[TASK_INDEX], 0)
                next_rollout[row[TASK_INDEX]] = copy[ROLLOUT_INDEX] + 1
                if num_repeats_add_seed:
                    _add_seed(copy, copy[ROLLOUT_INDEX])
                rows.append(copy)
        return rows


async def _fill(
    client: SyncRolloutClient,
    examples: list[dict[str, Any]],
    futures: list[concurrent.futures.Future[Pair]],
    routed: bool,
) -> None:
    """Resolve ``futures`` in completion order; an error fails every one not yet resolved."""
    done = 0
    try:
        async for pair in client.client.run(examples, route_failures_to_sidecar=routed):
            futures[done].set_result(pair)
            done += 1
        if done < len(futures):
            raise RuntimeError(f"the run ended after {done} of {len(futures)} rollouts")
    except BaseException as exc:
        for future in futures[done:]:
            future.set_exception(exc)
        if not isinstance(exc, Exception):
            raise


async def _wait(future: concurrent.futures.Future[Pair]) -> Pair:
    return await asyncio.wrap_future(future)


def _route(row: dict[str, Any], agent_map: Mapping[str, str], index: int) -> str:
    ref = row.get(AGENT_REF)
    name = ref.get("name") if isinstance(ref, dict) else None
    mapped = agent_map.get(name) if name is not None else None
    mapped = mapped or agent_map.get("_default")
    if mapped is not None and mapped != name:
        row[AGENT_REF] = {"name": mapped}
        name = mapped
    if not isinstance(name, str):
        raise ConfigError(f"example {index}: agent_ref.name: missing (and no agent_map entry)")
    return name


def _repeats(num_repeats: int | Mapping[str, int], names: list[str | None], index: int) -> int:
    """The row's repeats: an int, or the first of its names (the agent it goes to, then the one
    it named before ``agent_map``) that ``num_repeats`` has, else ``_default``."""
    if isinstance(num_repeats, int):
        return num_repeats
    found = [num_repeats[n] for n in names if n is not None and n in num_repeats]
    count = found[0] if found else num_repeats.get("_default")
    if count is None:
        raise ConfigError(f"example {index}: num_repeats names neither {names[0]!r} nor _default")
    return count


def _add_seed(row: dict[str, Any], seed: int) -> None:
    """NeMo Gym's num_repeats_add_seed: ``metadata.extra_body``'s ``seed`` = the rollout index."""
    params = dict(row.get(PARAMS) or {})
    metadata = dict(params.get("metadata") or {})
    extra_body = json.loads(metadata.get("extra_body", "{}"))
    extra_body["seed"] = seed
    metadata["extra_body"] = json.dumps(extra_body)
    params["metadata"] = metadata
    row[PARAMS] = params
