"""Render the bench's results (the JSON document) as a table: plain text or Markdown.

Every figure shown is read from the results document, so the printed table, the JSON file
and docs/performance.md (``python -m bench --markdown``) always agree.
"""

from __future__ import annotations

from typing import Any

__all__ = ["render", "sections"]

NEMO_GYM_RATE = 65.0  # rollouts/s, whole command (the comparison figure of the issue)
NEMO_GYM_CPU_MS = 21.0  # CPU ms per rollout

Row = tuple[str, str, str]


def _f(value: Any, spec: str = ",.0f", unit: str = "") -> str:
    if value is None:
        return "n/a"
    return f"{value:{spec}}{unit}"


def _pct(part: Any, whole: Any) -> str:
    if part is None or not whole:
        return "n/a"
    return f"{part / whole:.0%}"


def _of_bare(doc: dict[str, Any], rate: Any) -> str:
    """``rate`` as a share of the bare limit (plain asyncio), and of the bare limit on uvloop."""
    bare = doc.get("bare", {})
    text = f"{_pct(rate, bare.get('raw', {}).get('rate'))} of the bare limit"
    on_uvloop = bare.get("raw_uvloop", {}).get("rate")
    if on_uvloop:
        text += f" ({_pct(rate, on_uvloop)} of it on uvloop)"
    return text


def _p(lat: dict[str, float] | None) -> str:
    if not lat:
        return "n/a"
    return f"{lat['p50']:,.0f} / {lat['p99']:,.0f} ms"


def _other(run: dict[str, Any]) -> str:
    share = run.get("other_cpu_share")
    return "" if share is None else f"; other work on the machine: {share:.0%} of CPU"


def _repeats(run: dict[str, Any]) -> str:
    runs = run.get("repeats") or []
    if len(runs) < 2:
        return ""
    return f"; best of {len(runs)} runs: " + ", ".join(f"{r['rate_whole']:,.0f}/s" for r in runs)


def _bare(doc: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    labels = {
        "raw": "bare limit: 2 model calls per rollout",
        "raw_uvloop": "bare limit on uvloop (the loop gymstream runs on)",
        "agent": "bare + agent (run_rollout, tool, verifier)",
        "chat": "bare + agent over Chat Completions",
        "chat_tokens": "bare + agent over Chat Completions, token ids + log-probs",
        "httpx1": "bare over one plain httpx.AsyncClient pool",
    }
    for mode, label in labels.items():
        b = doc.get("bare", {}).get(mode)
        if b:
            rows.append(
                (
                    label,
                    _f(b["rate"], unit=" rollouts/s"),
                    f"client CPU {b['cpu_ms_per_rollout']:.2f} ms/rollout, model CPU "
                    f"{b['model_cpu_ms_per_rollout']:.2f} ms/rollout, "
                    f"{b['turns_per_rollout']:.1f} turns, C={b['concurrency']}",
                )
            )
    return rows


def _collect(doc: dict[str, Any]) -> list[Row]:
    c = doc.get("collect")
    if not c:
        return []
    cpu = c["cpu_ms_per_rollout"]
    return [
        (
            "collect: whole command",
            _f(c["rate_whole"], unit=" rollouts/s"),
            f"{c['wall_s']:.1f} s spawn to exit; target {10 * NEMO_GYM_RATE:,.0f}/s "
            f"(10x NeMo Gym's {NEMO_GYM_RATE:.0f}/s): {c['rate_whole'] / NEMO_GYM_RATE:.1f}x"
            + _other(c)
            + _repeats(c),
        ),
        (
            "collect: steady state",
            _f(c["rate_steady"], unit=" rollouts/s"),
            f"middle 80% of rollouts by finish time; {_of_bare(doc, c['rate_steady'])} "
            f"(target >= 75%); at the sink {_f(c['rate_steady_sink'], unit='/s')}",
        ),
        (
            "collect: CPU per rollout",
            _f(cpu["collect"], ".2f", " ms"),
            f"whole process incl. start-up; {cpu['collect_without_startup']:.2f} ms without it; "
            f"target <= {NEMO_GYM_CPU_MS / 10:.1f} ms (NeMo Gym ~{NEMO_GYM_CPU_MS:.0f} ms)",
        ),
        (
            "collect: broker / model CPU per rollout",
            f"{_f(cpu['broker'], '.2f')} / {_f(cpu['model'], '.2f')} ms",
            "Kafka JVM and scripted model, apart from the command",
        ),
        (
            "collect: peak RSS",
            _f(c["peak_rss_mib"]["collect"], ",.0f", " MiB"),
            "",
        ),
        (
            "collect: latency produce -> sink p50 / p99",
            _p(c["latency_ms"]["produce_to_sink"]),
            "mostly queueing: all N tasks are produced at once",
        ),
    ]


def _staged(doc: dict[str, Any]) -> list[Row]:
    s = doc.get("staged")
    if not s:
        return []
    cpu = s["cpu_ms_per_rollout"]
    rss = s["peak_rss_mib"]
    lat = s["latency_ms"]
    size = s["message_bytes"]
    return [
        (
            "staged (produce, worker, sink processes): whole",
            _f(s["rate_whole"], unit=" rollouts/s"),
            f"{s['wall_s']:.1f} s from spawning the producer to the sink's exit; "
            "worker and sink started beforehand" + _other(s) + _repeats(s),
        ),
        (
            "staged: steady state",
            _f(s["rate_steady"], unit=" rollouts/s"),
            f"middle 80% of rollouts by finish time; at the sink "
            f"{_f(s['rate_steady_sink'], unit='/s')}; {_of_bare(doc, s['rate_steady'])}",
        ),
        (
            "staged: CPU per rollout producer / worker / sink",
            f"{cpu['producer']:.2f} / {cpu['workers']:.2f} / {cpu['sink']:.2f} ms",
            f"gymstream total {cpu['gymstream']:.2f} ms; producer without its "
            f"{doc['meta'].get('startup_cpu_s', 0):.2f} s start-up",
        ),
        (
            "staged: CPU per rollout broker / model",
            f"{_f(cpu['broker'], '.2f')} / {cpu['model']:.2f} ms",
            "Kafka JVM (1 broker) and scripted model, reported apart",
        ),
        (
            "staged: peak RSS producer / worker / sink",
            f"{rss['producer']:,.0f} / {rss['worker']:,.0f} / {rss['sink']:,.0f} MiB",
            f"broker {_f(rss['broker'], ',.0f', ' MiB')} (JVM VmHWM), "
            f"model {rss['model']:,.0f} MiB",
        ),
        (
            "staged: latency produce -> sink p50 / p99",
            _p(lat["produce_to_sink"]),
            "task created (producer) to row in the output file (+-10 ms)",
        ),
        (
            "  of which queue wait p50 / p99",
            _p(lat["queue_wait"]),
            "task created to rollout start (waiting in Kafka for a free slot)",
        ),
        ("  of which rollout p50 / p99", _p(lat["rollout"]), "2 model turns + tool + verify"),
        (
            "  of which worker -> sink p50 / p99",
            _p(lat["worker_to_sink"]),
            "result ready to row on disk (publish, sink fetch, fsync)",
        ),
        (
            "message sizes task / result / output row",
            f"{size['task']:,.0f} / {size['result']:,.0f} / {s['output_row_bytes']:,.0f} B",
            "measured from this run's topics and output",
        ),
    ]


def _latency_bound(doc: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for r in doc.get("latency_bound", []):
        span = r["worker_span"]
        rows.append(
            (
                f"C={r['concurrency'] * r['workers']}"
                + (f" ({r['workers']} workers x {r['concurrency']})" if r["workers"] > 1 else "")
                + f", N={r['n']}, {r['model_latency_ms']:g}"
                + (f" +- {r['model_jitter_ms']:g}" if r.get("model_jitter_ms") else "")
                + " ms/turn",
                f"{span['steady_rate']:,.0f} of {r['bound']:,.0f} rollouts/s ({r['ratio']:.1%})",
                f"target >= 95%; steady (while tasks were waiting): "
                f"{span['steady_in_flight']:,.0f} in flight x 1 / "
                f"{span.get('steady_rollout_s', span['mean_rollout_s']):.3f} s mean rollout "
                f"(model calls {span['mean_model_s']:.3f} s of the overall "
                f"{span['mean_rollout_s']:.3f} s); "
                f"whole span {span['rate']:,.0f}/s ({r['ratio_whole_span']:.0%}); "
                f"worker CPU {r['cpu_ms_per_rollout']['workers']:.2f} ms/rollout" + _other(r),
            )
        )
    return rows


def _scaling(doc: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for r in doc.get("scaling", []):
        rows.append(
            (
                f"{r['workers']} worker process(es), C={r['concurrency']} each",
                f"{r['rate_whole']:,.0f} whole / {_f(r['rate_steady'])} steady rollouts/s",
                f"{_of_bare(doc, r['rate_steady'])}; "
                f"worker CPU {r['cpu_ms_per_rollout']['workers']:.2f} ms/rollout, "
                f"peak RSS per worker {r['peak_rss_mib']['worker']:,.0f} MiB" + _other(r),
            )
        )
    big = doc.get("produce_big")
    if big:
        rows.append(
            (
                f"gymstream produce, {big['rows']:,} rows ({big['input_mib']:,.0f} MiB)",
                f"{big['rate']:,.0f} rows/s, peak RSS {big['peak_rss_mib']:,.0f} MiB",
                f"{big['wall_s']:.1f} s; CPU {big['cpu_us_per_row']:.0f} us/row; broker "
                f"{_f(big.get('broker_cpu_us_per_row'), '.0f')} us/row",
            )
        )
    return rows


def _floor(doc: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for kind, f in doc.get("kafka_floor", {}).items():
        for phase in ("produce", "consume"):
            p = f[phase]
            rows.append(
                (
                    f"{phase} {kind}-size messages ({f['size']:,} B)",
                    f"{p['rate']:,.0f} msg/s ({p['mib_s']:,.1f} MiB/s)",
                    f"client CPU {p['cpu_us_per_msg']:.0f} us/msg; {f['count']:,} messages, "
                    f"{f['partitions']} partitions",
                )
            )
        if "broker_cpu_us_per_msg" in f:
            rows.append(
                (
                    f"  broker CPU, {kind}-size (produce + consume)",
                    f"{f['broker_cpu_us_per_msg']:.0f} us/msg",
                    "",
                )
            )
    return rows


def _profile(doc: dict[str, Any]) -> list[Row]:
    prof = doc.get("profile")
    if not prof or "by_package" not in prof:
        return []
    rows: list[Row] = [
        (
            f"package {p['package']}",
            f"{p['share']:.0%}",
            f"{p['tottime_s']:.2f} s own time",
        )
        for p in prof["by_package"][:8]
    ]
    rows += [
        (
            f["function"],
            f"{f['tottime_s']:.2f} s",
            f"{f['calls']} calls, cumulative {f['cumtime_s']:.2f} s",
        )
        for f in prof["top_tottime"][:8]
    ]
    return rows


def sections(doc: dict[str, Any]) -> list[tuple[str, list[Row]]]:
    """(title, rows) per section; a section the run skipped is left out."""
    p = doc["params"]
    found = [
        ("1. Bare limit: model calls only, no Kafka", _bare(doc)),
        (
            f"2. gymstream end to end: N={p['n']}, concurrency {p['concurrency']}, model 0 ms",
            _collect(doc) + _staged(doc),
        ),
        ("3. Latency-bound: Little's bound = C / (2 turns x latency)", _latency_bound(doc)),
        ("4. Scaling: worker processes for one agent; a big input", _scaling(doc)),
        ("5. Kafka's floor: raw aiokafka, acks=all, idempotent", _floor(doc)),
        (
            "Worker profile: cProfile own time (share of busy CPU), from an extra staged run",
            _profile(doc),
        ),
    ]
    return [(title, rows) for title, rows in found if rows]


def _md(cell: str) -> str:
    """A table cell safe for Markdown (profiled names hold '<', '>' and '|')."""
    return cell.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def render(doc: dict[str, Any], markdown: bool = False) -> str:
    m = doc["meta"]
    head = (
        f"gymstream bench ({'quick' if m['quick'] else 'full'}), {m.get('finished')}: "
        f"{m['machine']['nproc']} CPUs ({m['machine']['cpu_model']}), "
        f"{m['machine']['ram_gib']:.1f} GiB RAM, Python {m['machine']['python']}; "
        f"Kafka: {m.get('kafka', 'n/a')}; took {m.get('elapsed_s', 0):.0f} s; load average "
        f"{m['loadavg_start'][0]:.1f} at start, {m.get('loadavg_end', [0])[0]:.1f} at end"
    )
    out = [head, ""]
    for title, rows in sections(doc):
        if markdown:
            out += [f"**{title}**", "", "| figure | value | notes |", "|---|---:|---|"]
            out += [f"| {_md(a)} | {_md(b)} | {_md(c)} |" for a, b, c in rows]
        else:
            width_a = max(len(a) for a, _, _ in rows)
            width_b = max(len(b) for _, b, _ in rows)
            out.append(title)
            out += [f"  {a:<{width_a}}  {b:>{width_b}}  {c}".rstrip() for a, b, c in rows]
        out.append("")
    return "\n".join(out)
