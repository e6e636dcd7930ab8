"""``edgesmith doctor``: the environment fingerprint, which benchmark targets this machine can run, and
what to expect of int8 here (per runtime, from the ISA flags) with the export target ``auto`` resolves to."""
from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ._common import errors, out

JsonOpt = Annotated[bool, typer.Option("--json", help="Print the fingerprint and targets as JSON.")]


def doctor_cmd(as_json: JsonOpt = False):
    """Print CPU (model, ISA flags, cores), OS, Python and package versions, GPUs, and every
    benchmark target with whether it is usable here and, if not, why and how to fix it; then
    int8 or float here: what int8 should do per runtime and why, and the export target `auto`
    resolves to. Never imports TensorFlow."""
    from edgesmith.benchmarks import detect_targets, environment
    from edgesmith.benchmarks.advice import int8_expectations
    from edgesmith.export.targets import TARGET_PRESETS, Machine, detect_target

    with errors():
        env = environment()
        status = detect_targets()
        auto = detect_target(Machine.here())
        int8 = {"export_target_auto": auto, "onnx_preset": TARGET_PRESETS[auto],
                "runtimes": int8_expectations(Machine.here().flags, env["arch"])}
        if as_json:
            out.print_json(json.dumps({"environment": env, "targets": {
                t: {"usable": s.usable, "detail": s.detail} for t, s in status.items()}, "int8": int8}))
            return
        out.print(f"CPU      {env['cpu']} ({env['arch']}), {env['cores']} usable cores of {env['cpu_count']}, "
                  f"load average {env['load_avg']}", highlight=False)
        out.print(f"ISA      {' '.join(env['isa']) or 'unknown'}", highlight=False)
        out.print(f"GPU      {', '.join(g['name'] + ' (driver ' + g['driver'] + ')' for g in env['gpus']) or 'none found'}",
                  highlight=False)
        out.print(f"OS       {env['os']}", highlight=False)
        out.print("versions " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()), highlight=False)
        table = Table(title="benchmark targets")
        table.add_column("target")
        table.add_column("usable")
        table.add_column("detail")
        for t, s in status.items():
            table.add_row(t, "[green]yes[/]" if s.usable else "[red]no[/]", escape(s.detail))
        out.print(table)
        out.print(f"int8 here: `edgesmith export --target auto` means {auto} (ONNX int8 preset "
                  f"{TARGET_PRESETS[auto]})", highlight=False, markup=False)
        for e in int8["runtimes"]:
            out.print(f"  {e['runtime']}: int8 {e['expect']} than float. {e['why']}", highlight=False, markup=False)
