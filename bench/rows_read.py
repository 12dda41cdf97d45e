"""Benchmark read_rows and expand over a generated NeMo Gym dataset; prints figures only.

Usage: ``python bench/rows_read.py [--rows 1000000] [--repeats 1]``

Writes ``--rows`` example_single_tool_call-like rows (every 100th a repeat of an earlier line)
to a temporary file, then times two passes and prints rows/s and the process's peak RSS after
each: ``read_rows`` alone (memory should stay flat), then ``read_rows`` + ``expand`` (which
also keeps a 16-byte digest per distinct row to share task indices between identical lines).
Peak RSS is a high-water mark, so the passes run in that order.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import msgspec

from gymstream.nemo_gym.rows.reader import InputRow, read_rows
from gymstream.nemo_gym.rows.rollouts import expand

AGENT = "example_single_tool_call_simple_agent"
CITIES = ["sf", "nyc", "paris", "tokyo", "lagos", "lima", "oslo", "delhi", "cairo", "perth"]
QUESTIONS = ["what's it like in {}?", "going out in {} tn", "humidity in {}", "is {} cold today"]


def make_row(i: int) -> dict[str, object]:
    city = CITIES[i % len(CITIES)]
    question = QUESTIONS[(i // len(CITIES)) % len(QUESTIONS)].format(city)
    return {
        "responses_create_params": {
            "input": [
                {
                    "content": "You are a helpful personal assistant that aims to be helpful and "
                    "reduce any pain points the user has.",
                    "role": "developer",
                },
                {"content": f"{question} (#{i})", "role": "user"},
            ],
            "tools": [
                {
                    "name": "get_weather",
                    "parameters": {
                        "type": "object",
                        "properties": {"city": {"type": "string", "description": ""}},
                        "required": ["city"],
                        "additionalProperties": False,
                    },
                    "strict": True,
                    "type": "function",
                    "description": "",
                }
            ],
        },
        "agent_ref": {"type": "responses_api_agents", "name": AGENT},
    }


def write_dataset(path: Path, rows: int) -> None:
    """Write in batches so that generating the file does not raise the RSS high-water mark."""
    encoder = msgspec.json.Encoder()
    batch: list[bytes] = []
    with path.open("wb") as file:
        for i in range(rows):
            source = i - 37 if i % 100 == 99 else i  # every 100th line repeats an earlier one
            batch.append(encoder.encode(make_row(source)))
            if len(batch) == 10_000:
                file.write(b"\n".join(batch) + b"\n")
                batch.clear()
        if batch:
            file.write(b"\n".join(batch) + b"\n")


def peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024  # bytes vs KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows to generate")
    parser.add_argument("--repeats", type=int, default=1, help="num_repeats for expand")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rows.jsonl"
        started = time.perf_counter()
        write_dataset(path, args.rows)
        size_mib = path.stat().st_size / (1024 * 1024)
        print(
            f"generated {args.rows:,} rows, {size_mib:,.1f} MiB "
            f"in {time.perf_counter() - started:.1f} s; peak RSS {peak_rss_mib():,.1f} MiB"
        )

        started = time.perf_counter()
        good = bad = 0
        for item in read_rows(path, default_agent=None, known_agents=[AGENT]):
            if isinstance(item, InputRow):
                good += 1
            else:
                bad += 1
        elapsed = time.perf_counter() - started
        print(
            f"read_rows:          {good:,} rows ({bad} bad) in {elapsed:.2f} s = "
            f"{good / elapsed:,.0f} rows/s, {size_mib / elapsed:,.0f} MiB/s; "
            f"peak RSS {peak_rss_mib():,.1f} MiB"
        )

        started = time.perf_counter()
        rollouts = 0
        tasks = -1
        items = read_rows(path, default_agent=None, known_agents=[AGENT])
        for rollout in expand(
            (r for r in items if isinstance(r, InputRow)), num_repeats=args.repeats
        ):
            rollouts += 1
            tasks = max(tasks, rollout.task_index)
        elapsed = time.perf_counter() - started
        print(
            f"read_rows + expand: {rollouts:,} rollouts of {tasks + 1:,} distinct tasks in "
            f"{elapsed:.2f} s = {args.rows / elapsed:,.0f} rows/s; "
            f"peak RSS {peak_rss_mib():,.1f} MiB"
        )


if __name__ == "__main__":
    main()
