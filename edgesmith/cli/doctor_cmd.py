"""``edgesmith doctor``: int8 or float here, in one plain sentence first (measured when a bench has run,
else expected), then the environment fingerprint, which bench runtimes this machine can run, and the
export target ``auto`` resolves to; the instruction-level why under ``--explain``. Never imports TensorFlow."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from ._common import err, errors, out

RunArg = Annotated[Optional[Path], typer.Argument(
    help="A run directory whose bench results to quote [default: the last bench on this machine].")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the verdict, fingerprint and bench runtimes as JSON.", metavar="")]
ExplainOpt = Annotated[bool, typer.Option("--explain", help="Also say why, per runtime (instructions, kernels).",
                                          metavar="")]


def _measurement(run_dir: Path | None, here_cpu: str) -> dict:
    """The verdict of the bench results of ``run_dir`` (or of the last bench here); ``{}`` without one.

    Raises:
        RunDirError: ``run_dir`` has no bench results.
    """
    from edgesmith.benchmarks import load_results
    from edgesmith.benchmarks.verdicts import measured_verdict
    from edgesmith.benchmarks.lastbench import last
    from edgesmith.core.errors import EdgesmithError, RunDirError

    if run_dir is not None:
        results = run_dir / "bench" / "results.json"
        if not results.is_file():
            raise RunDirError(f"{run_dir} has no bench results ({results}); run `edgesmith bench {run_dir}` first")
        report = load_results(results)
    else:
        found = last()
        if found is None:
            return {}
        results, run_dir = found
        try:
            report = load_results(results)
        except EdgesmithError:  # a stale pointer to an unreadable file: nothing measured to quote
            return {}
    verdict = measured_verdict(report, run_dir, here_cpu=here_cpu)
    return {**verdict, "results": str(results)} if verdict else {}


def doctor_cmd(run_dir: RunArg = None, as_json: JsonOpt = False, explain: ExplainOpt = False):
    """Int8 or float on this machine, in one sentence (measured by the last bench, else expected); then CPU,
    ISA flags, GPUs, versions and every bench runtime with whether it is usable here."""
    from edgesmith.benchmarks import detect_runtimes, environment
    from edgesmith.benchmarks.advice import expected_sentence, int8_expectations
    from edgesmith.export.targets import TARGET_PRESETS, Machine, detect_target

    with errors():
        env = environment()
        status = detect_runtimes()
        auto = detect_target(Machine.here())
        isa = Machine.here().flags
        measured = _measurement(run_dir, env["cpu"])
        if measured:
            first = measured["sentence"]
            second = f"measured by `edgesmith bench` ({measured['results']}): {measured['why']}"
        else:
            first = f"{expected_sentence(isa, env['arch'])}: expected, not measured"
            second = "run `edgesmith bench RUN` to measure it (doctor then quotes the figures)"
        int8 = {"export_target_auto": auto, "onnx_preset": TARGET_PRESETS[auto],
                "runtimes": int8_expectations(isa, env["arch"])}
        if as_json:
            out.print_json(json.dumps({"verdict": first, "detail": second, "measured": measured or None,
                                       "environment": env, "int8": int8, "runtimes": {
                                           t: {"usable": s.usable, "detail": s.detail} for t, s in status.items()}},
                                      default=str))
            return
        out.print(first[:1].upper() + first[1:] + ".", highlight=False, markup=False, soft_wrap=True)
        out.print(f"  {second}", highlight=False, markup=False, soft_wrap=True)
        if measured.get("tie_note"):
            out.print(f"  {measured['tie_note']}", highlight=False, markup=False, soft_wrap=True)
        out.print("")
        out.print(f"CPU      {env['cpu']} ({env['arch']}), {env['cores']} usable cores of {env['cpu_count']}, "
                  f"load average {env['load_avg']}", highlight=False)
        out.print(f"ISA      {' '.join(env['isa']) or 'unknown'}", highlight=False)
        out.print(f"GPU      {', '.join(g['name'] + ' (driver ' + g['driver'] + ')' for g in env['gpus']) or 'none found'}",
                  highlight=False)
        out.print(f"OS       {env['os']}", highlight=False)
        out.print("versions " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()), highlight=False)
        table = Table(title="bench runtimes (bench --runtime)")
        table.add_column("runtime")
        table.add_column("usable")
        table.add_column("detail")
        for t, s in status.items():
            table.add_row(t, "[green]yes[/]" if s.usable else "[red]no[/]", escape(s.detail))
        out.print(table)
        out.print(f"int8 export for this CPU: `edgesmith export --target auto` picks {auto}", highlight=False,
                  markup=False)
        for e in int8["runtimes"]:
            line = f"  {e['runtime']}: int8 expected {e['expect']} than float"
            out.print(line + (f". Why: {e['why']}" if explain else ""), highlight=False, markup=False)
        if not explain:
            err.print("(--explain says why, per runtime)", highlight=False)
