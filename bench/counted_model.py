"""gymstream's scripted model in a process of its own that tells its request counts on demand.

``python -m bench.counted_model`` serves ``gymstream.testing``'s scripted model (Responses API
and Chat Completions, 0 ms) on a free port, prints ``listening on <url>``, then answers every
line on its stdin with its request counters as one JSON line (``ScriptedServer.stats``) and
stops at EOF. ``CountedModel`` runs it as a child: ``counts()`` between runs gives the HTTP hops
each run made to the fake model, ``cpu_s()`` its CPU, both read without restarting it (NeMo
Gym's model server keeps pooled connections to it).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

from bench.procs import ROOT, cpu_s

__all__ = ["CountedModel"]


class CountedModel:
    """The counted scripted model as a child process (stdout+stdin piped, stderr to ``log``)."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.counted_model"],
            env=env,
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
        )
        self.pid = self.proc.pid
        line = self._out.readline().decode()
        if "listening on" not in line:
            self.stop()
            raise RuntimeError(f"counted model did not start: {line!r}; see {log}")
        self.url = line.split()[-1]

    @property
    def _out(self) -> IO[bytes]:
        assert self.proc.stdout is not None
        return self.proc.stdout

    def counts(self) -> dict[str, int]:
        """Requests answered so far, by kind (``requests`` = all of them)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"counts\n")
        self.proc.stdin.flush()
        counts: dict[str, int] = json.loads(self._out.readline())
        return counts

    def cpu_s(self) -> float:
        return cpu_s(self.pid)

    def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()


async def _serve() -> None:
    from gymstream.testing.server import serve_scripted

    server = await serve_scripted(port=0)
    print(f"listening on {server.url}", flush=True)
    loop = asyncio.get_running_loop()
    done = asyncio.Event()

    def answer_stdin() -> None:
        for _ in sys.stdin:
            print(json.dumps(dict(server.stats)), flush=True)
        loop.call_soon_threadsafe(done.set)

    threading.Thread(target=answer_stdin, name="counts", daemon=True).start()
    await done.wait()
    server.close()
    await server.wait_closed()


if __name__ == "__main__":
    from gymstream import eventloop

    eventloop.run(_serve(), "uvloop")
