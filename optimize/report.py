"""``optimize.md``: the candidates tried, the Pareto set and the recommended file with its export command."""
from __future__ import annotations


def _pct(x) -> str:
    return "-" if x is None else f"{x:.2%}"


def markdown(result: dict, run_name: str = "RUN") -> str:
    """The optimize report as Markdown.

    Args:
        result: what :func:`.search.optimize` returns.
        run_name: the run's name, for the title.
    """
    cfg, env = result["config"], result.get("environment") or {}
    ref = result.get("reference") or {}
    lines = [f"# edgesmith optimize: {run_name}", "",
             (f"{result['wall_s']:.0f} s of a {result['budget_s']:.0f} s budget on {env.get('cpu')} "
             f"({env.get('arch')}; ISA {' '.join(env.get('isa') or [])}); targets {', '.join(cfg['targets'])}; "
             f"accuracy budget {cfg['accuracy_budget']:g} pt against the float Keras model "
             f"({_pct(ref.get('top1'))} on {ref.get('n_test')} test images); top-1 below on "
             f"{result['n_test']} test images, batch-1 p50 at one thread."), "", "## Candidates", "",
             "| candidate | what | status | export s | files |", "|---|---|---|---:|---|"]
    for c in result["candidates"]:
        status = c["status"] + (f": {c['error']}" if c["error"] else "")
        files = ", ".join(c["artifacts"]) or ("none kept: the same files as the first candidate's"
                                              if c["status"] == "done" else "")
        lines.append(f"| {c['label']} | {c['why']} | {status} | {c['seconds']:.0f} | {files} |")
    float_top1 = (result.get("recommendation") or {}).get("float_top1", ref.get("top1"))
    lines += ["", "## Pareto set (no other file is both faster and more accurate)", "",
              "| artifact | runtime | top-1 | p50 ms | KiB | remake it |", "|---|---|---:|---:|---:|---|"]
    for p in result["pareto"]:
        lines.append(f"| {p['artifact']} | {p['runtime']} | {_pct(p['top1'])} | {p['p50_ms']:.3f} | "
                     f"{p['bytes'] / 1024:.1f} | `{p['export_command']}` |")
    lines += ["", "## Every file, fastest first", "",
              "| artifact | candidate | runtime | top-1 | Δ pt vs float | p50 ms | KiB | Pareto |",
              "|---|---|---|---:|---:|---:|---:|---|"]
    for f in result.get("files", []):
        delta = "-" if float_top1 is None else f"{(f['top1'] - float_top1) * 100:+.2f}"
        lines.append(f"| {f['artifact']} | {f['candidate']} | {f['runtime']} | {_pct(f['top1'])} | {delta} | "
                     f"{f['p50_ms']:.3f} | {f['bytes'] / 1024:.1f} | {'yes' if f['pareto'] else ''} |")
    lines += board_lines(result.get("board"))
    rec = result.get("recommendation") or {}
    lines += ["", "## Recommended", ""]
    if rec:
        lines += [rec.get("sentence") or rec["why"], "", f"Why: {rec['why']}."]
        if rec.get("tie_note"):
            lines += ["", f"{rec['tie_note']}."]
        lines += ["", "To remake the file in the run itself (export adds it to the run's artifacts; the other files "
                  "and the bench results stay):", "", "```bash", rec["export_command"], "```"]
    elif result.get("board"):
        lines.append(f"No Cortex-M file fits {result['board']['board']} as asked: see the table above for why.")
    else:
        lines.append("Nothing was measured, so nothing is recommended.")
    return "\n".join(lines) + "\n"


def board_lines(board: dict | None) -> list[str]:
    """``optimize --board``'s section: each Cortex-M file's top-1 under TFLite Micro, fit and estimated latency."""
    if not board:
        return []
    cap = f", estimated latency at most {board['max_latency_ms']:g} ms" if board.get("max_latency_ms") else ""
    chosen = (board.get("recommendation") or {}).get("artifact")
    lines = ["", f"## On {board['board']}: the most accurate file that fits{cap}", "",
             "Top-1 under TFLite Micro on this host; RAM = arena + overhead, flash = model + code; latency is an "
             "ESTIMATE from MACs x cycles per MAC / clock (see docs/mcu.md), not a measurement.", "",
             "| artifact | top-1 (TFLM) | RAM KB (need / has) | flash KB (need / has) | est. ms | chosen? |",
             "|---|---:|---|---|---:|---|"]
    for r in board["rows"]:
        ms = r["latency"]["ms"]
        lines.append(f"| {r['artifact']} | {_pct(r['top1'])} | {r['ram_need_kb']:.0f} / {r['ram_kb']} | "
                     f"{r['flash_need_kb']:.0f} / {r['flash_kb']} | {'-' if ms is None else f'{ms:g}'} | "
                     f"{r['why_not'] or ('chosen' if r['artifact'] == chosen else 'fits, not chosen')} |")
    return lines


def summary_lines(result: dict) -> list[str]:
    """A few lines for the terminal: the Pareto set (or the board's files) and the recommendation."""
    if result.get("board"):
        out = [line for line in board_lines(result["board"]) if line.startswith("|") or line.startswith("##")]
        out = [line.lstrip("# ") for line in out]
    else:
        out = [f"Pareto set ({len(result['pareto'])} of the files, batch-1 p50 at one thread):"]
    for p in result["pareto"]:
        out.append(f"  {p['artifact']:<28} {p['runtime']:<10} top-1 {_pct(p['top1'])}  p50 {p['p50_ms']:.3f} ms  "
                   f"{p['bytes'] / 1024:.1f} KiB")
    rec = result.get("recommendation") or {}
    if rec:
        out += [rec.get("sentence") or f"recommended: {rec['artifact']}", f"  why: {rec['why']}"]
        if rec.get("tie_note"):
            out.append(f"  {rec['tie_note']}")
        out.append(f"  remake it in the run: {rec['export_command']}")
    elif result.get("board"):
        out.append(f"no Cortex-M file fits {result['board']['board']} as asked (the table says why)")
    skipped = [c["label"] for c in result["candidates"] if c["status"] == "skipped"]
    if skipped:
        out.append(f"not tried (time budget): {', '.join(skipped)}")
    return out
