"""Renders a benchmark run as one Markdown table (plus its context) and as JSON."""
from __future__ import annotations

import dataclasses
import math

from bench.harness import CaseResult, Row

COLUMNS = ("case", "setting", "metric", "attnlab", "peak MiB", "reference", "reference figure", "ref peak MiB",
           "attnlab / ref", "goal", "status")


def number(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def with_spread(value: float, spread: float) -> str:
    return number(value) + (f" ±{100 * spread:.0f}%" if spread >= 0.005 else "")


def _status(row: Row, reference: str | None) -> tuple[str, str]:
    goals = [g for g in row.goals if g.reference == reference]
    if not goals:
        return "", ""
    texts, verdicts = [], []
    for goal in goals:
        met = goal.met(row)
        texts.append(goal.text)
        verdicts.append("—" if met is None else ("met" if met else "MISSED"))
    return "; ".join(texts), "; ".join(verdicts)


def row_lines(row: Row) -> list[list[str]]:
    """One line per reference (attnlab's figure on the first), then one per absolute goal."""
    head = [row.case, row.setting, row.metric, with_spread(row.attnlab.value, row.attnlab.spread), number(row.attnlab.peak_mib)]
    lines = []
    for index, ref in enumerate(row.references):
        goal, status = _status(row, ref.name)
        prefix = head if index == 0 else ["", "", "", "", ""]
        lines.append(prefix + [ref.name, with_spread(ref.value, ref.spread), number(ref.peak_mib),
                               f"{row.ratio(ref.name):.2f}x" if row.ratio(ref.name) else "—", goal, status])
    goal, status = _status(row, None)
    if not row.references or goal:
        prefix = head if not lines else ["", "", "", "", ""]
        lines.append(prefix + ["—", "", "", "", goal, status])
    return lines


def busy_warning(machine: dict, cases: list[CaseResult]) -> list[str]:
    """A warning line when other work competed for the cores (load average above the cores available)."""
    loads = [machine["load_average_1m"] or 0.0] + [max(c.load_average) for c in cases if c.load_average]
    if max(loads) <= machine["cores_available"]:
        return []
    return [f"- **WARNING: the machine was busy (load average up to {max(loads):.1f} on {machine['cores_available']} "
            f"cores): timings are unreliable; re-measure on an idle machine**"]


def markdown(meta: dict, cases: list[CaseResult]) -> str:
    m = meta["machine"]
    out = [
        f"# attnlab benchmark — {m['date']}",
        "",
        f"- machine: {m['cpu']} ({', '.join(m['cpu_flags']) or 'no AVX2'}), {m['cores_available']}/{m['cores']} cores, "
        f"{m['ram_gib']:.0f} GiB RAM; GPU {m['gpu'] or 'none'}; torch threads {m['torch_threads']}; "
        f"load average at start {m['load_average_1m']:.2f}",
        f"- python {m['python']}, torch {m['torch']}, pytorch-lightning {m['pytorch_lightning']}, "
        f"transformers {m['transformers'] or 'not installed'}, tokenizers {m['tokenizers']}",
        f"- causal_decoder on {meta['device']}; mode: {meta['mode']} (warm-up {meta['warmup']}, "
        f"{meta['repeats']} interleaved rounds, median; ± is half the interquartile range); peak MiB: allocator peak "
        f"of one step beyond what existed before it (torch profiler memory events; on CUDA the caching allocator's "
        f"peak); process peak RSS {number(meta.get('peak_rss_mib'))} MiB; total {meta['seconds']:.0f} s",
        f"- command: `{meta['command']}`",
        *busy_warning(m, cases),
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    for case in cases:
        if case.status != "ok":
            out.append("| " + " | ".join([case.name, case.title, "", f"{case.status}: {case.reason}"] + [""] * 7) + " |")
            continue
        for row in case.rows:
            for line in row_lines(row):
                out.append("| " + " | ".join(cell.replace("|", "/") for cell in line) + " |")
    out += ["", "## Notes", ""]
    for case in cases:
        load = ""
        if case.load_average:
            load = f" (load average {case.load_average[0]:.2f} -> {case.load_average[1]:.2f})"
        out.append(f"- **{case.name}** — {case.title}; {case.status}, {case.seconds:.0f} s{load}")
        out += [f"  - {note}" for note in case.notes]
    return "\n".join(out) + "\n"


def as_json(meta: dict, cases: list[CaseResult]) -> dict:
    def row_dict(row: Row) -> dict:
        data = dataclasses.asdict(row)
        data["ratios"] = {ref.name: row.ratio(ref.name) for ref in row.references}
        for goal, raw in zip(row.goals, data["goals"]):
            raw["met"] = goal.met(row)
        return data

    return {
        "meta": meta,
        "cases": [
            {"name": c.name, "title": c.title, "status": c.status, "reason": c.reason, "seconds": c.seconds,
             "load_average": c.load_average, "notes": c.notes, "rows": [row_dict(r) for r in c.rows]}
            for c in cases
        ],
    }
