"""Int8 or float here? What to expect of int8 on a CPU, why a result differs, and what to ship. No TensorFlow.

Three answers, all from the ISA flags (``/proc/cpuinfo``) and the bench's own figures:

* :func:`int8_expectations`: per runtime (LiteRT/XNNPACK, ONNX Runtime), whether int8 should
  beat float on this CPU and why (VNNI, AVX512-VNNI, AVX-VNNI, AMX, Arm dotprod, i8mm)
  (``edgesmith doctor``);
* :func:`slower_cause` and :func:`divergences`: why an int8 file is slower than float here,
  and which artifacts score differently here than when they were exported (> 0.3 pt on the
  same test images), with the likely cause (report.md, results.json, the CLI table);
* :func:`recommend`: the artifact to ship for this machine under an accuracy budget
  (``edgesmith bench --recommend``, ``optimize``, ``doctor``: the one rule of :mod:`.recommend`).

The figures behind the advice are in docs/int8.md ("per CPU kind").
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edgesmith.core.cpuinfo import ARM_ARCHS as _ARM
from edgesmith.core.cpuinfo import ARM_DOT_FLAGS, VNNI_FLAGS

from .recommend import DEFAULT_BUDGET_PTS

DIVERGENCE_PTS = 0.3  # more than sampling noise on the same images with the same file
PROFILE_HINT = "see the per-op profile: edgesmith bench RUN --profile"


def _is_arm(arch: str | None, isa: set[str]) -> bool:
    return (arch or "").lower() in _ARM or "asimd" in isa


def vnni_kind(isa) -> str | None:
    """The int32-accumulating int8 dot product this CPU has, in words, or None.

    Args:
        isa: ISA flags (``/proc/cpuinfo`` names, e.g. ``avx512_vnni``, ``asimddp``).
    """
    isa = set(isa)
    names = [n for f, n in (("amx_int8", "AMX-INT8"), ("avx512_vnni", "AVX512-VNNI"), ("avx_vnni", "AVX-VNNI"),
                            ("i8mm", "Arm i8mm"), ("asimddp", "Arm dotprod")) if f in isa]
    return " + ".join(names) or None


def int8_expectations(isa, arch: str | None = None) -> list[dict]:
    """What int8 should do against float on this CPU, per runtime.

    Args:
        isa: ISA flags of the CPU.
        arch: ``platform.machine()`` (``x86_64``, ``aarch64``), None when unknown.

    Returns:
        One dict per runtime: ``runtime``, ``expect`` (``faster``, ``about the same or
        slower``, ``modestly faster``) and ``why`` (one sentence naming the instructions).
    """
    isa = set(isa)
    if _is_arm(arch, isa):
        if isa & ARM_DOT_FLAGS:
            kind = vnni_kind(isa)
            return [{"runtime": "LiteRT (XNNPACK)", "expect": "faster",
                     "why": f"{kind}: XNNPACK's int8 kernels do 4 (i8mm: 8) int8 products per lane and step"},
                    {"runtime": "ONNX Runtime", "expect": "faster",
                     "why": f"{kind}: MLAS's Arm int8 GEMM uses sdot/udot (smmla with i8mm); export S8S8 (--target arm64)"}]
        return [{"runtime": "LiteRT (XNNPACK)", "expect": "modestly faster",
                 "why": "no dotprod: XNNPACK's int8 kernels use widening NEON multiplies, about 1.5x float at best"},
                {"runtime": "ONNX Runtime", "expect": "modestly faster",
                 "why": "no dotprod: MLAS's int8 GEMM uses widening NEON multiplies; export S8S8 (--target arm64)"}]
    if isa & VNNI_FLAGS:
        kind = vnni_kind(isa)
        amx = " ONNX Runtime's MLAS also has AMX tile kernels for large GEMMs." if "amx_int8" in isa else ""
        return [{"runtime": "LiteRT (XNNPACK)", "expect": "faster",
                 "why": f"{kind}: vpdpbusd accumulates 4 int8 products per 32-bit lane (expected, not measured: "
                        "edgesmith bench measures it)"},
                {"runtime": "ONNX Runtime", "expect": "faster",
                 "why": f"{kind}: U8S8 QDQ fuses into QLinearConv and accumulates in int32 without saturating "
                        f"(--target x86-vnni, U8S8 with full 8-bit weights).{amx}"}]
    if "avx2" in isa or "avx512bw" in isa:
        return [{"runtime": "LiteRT (XNNPACK)", "expect": "about the same or slower",
                 "why": "no VNNI: XNNPACK's exact int8 kernels widen to 16 bits and run at about fp32 speed on "
                        "AVX2 (an AVX2-only AMD Zen 3 measured int8 1.39x slower)"},
                {"runtime": "ONNX Runtime", "expect": "about the same or slower",
                 "why": "no VNNI: vpmaddubsw adds u8 x s8 pairs into a saturating int16, so U8S8 loses "
                        "accuracy (about 1.5 pt on ResNet-8; so do the S8S8 convolutions it fuses); the exact "
                        "form here is U8U8 (--target x86-avx2), no faster than float; U8S8 with 7-bit weights "
                        "(--onnx-preset u8s8-7bit) is faster, at coarser weights"}]
    return [{"runtime": "LiteRT (XNNPACK)", "expect": "about the same or slower",
             "why": "no AVX2 or Arm NEON flags seen: int8 kernels have little to gain"},
            {"runtime": "ONNX Runtime", "expect": "about the same or slower",
             "why": "no AVX2 or Arm NEON flags seen: S8S8 (--target generic) is the exact form"}]


def slower_cause(isa, arch: str | None, runtime: str, artifact: str = "") -> str:
    """Why int8 is slower than float on ``runtime`` (a bench runtime, e.g. ``litert-cpu``), from the ISA
    (and, for ``artifact`` names of an S8S8 ONNX form, from the form)."""
    isa = set(isa)
    if runtime.startswith("ort") and not _is_arm(arch, isa) and any(f in artifact for f in ("s8s8", "tensorrt")):
        cause = ("S8S8 QDQ: ONNX Runtime's x86 kernels fuse only U8S8 into QLinearConv, so most convolutions "
                 "stay float between Quantize/Dequantize pairs; use --target auto")
    elif _is_arm(arch, isa):
        cause = "no Arm dotprod: int8 kernels use widening multiplies" if not isa & ARM_DOT_FLAGS else \
            "the int8 kernels have the dot-product instructions, so look at unfused ops"
    elif not isa & VNNI_FLAGS:
        cause = ("no VNNI: XNNPACK's exact int8 kernels run at about fp32 speed on AVX2" if runtime.startswith("litert")
                 else "no VNNI: ONNX Runtime's int8 kernels widen u8 x s8 products to 16 bits on AVX2")
    else:
        cause = f"{vnni_kind(isa)} is present, so the int8 kernels are not the limit: look for unfused ops"
    return f"{cause}; {PROFILE_HINT}"


def _likely_cause(artifact: dict, here: set[str], arch: str | None, exported_on: set[str]) -> str:
    # "x86": the U8S8 form's name in runs exported before the rename
    preset = artifact.get("onnx_preset") or ("u8s8" if "U8S8, uint8 input (x86" in artifact.get("method", "") else None)
    if preset in ("u8s8", "x86") and not here & VNNI_FLAGS and not _is_arm(arch, here):
        return "U8S8 without VNNI: pair sums saturate in int16; use --target x86-avx2 (U8U8)"
    if (here & VNNI_FLAGS) != (exported_on & VNNI_FLAGS):
        return (f"exported on a CPU with {vnni_kind(exported_on) or 'no VNNI'}, run here with "
                f"{vnni_kind(here) or 'no VNNI'}: different int8 kernels")
    if artifact.get("precision") in ("int8", "dynamic"):
        return "another runtime version or kernel than at export (same ISA)"
    return "float kernels differ (fused multiply-add order); check the runtime versions"


def divergences(report: dict, artifacts: list[dict], threshold_pts: float = DIVERGENCE_PTS) -> list[dict]:
    """Artifacts whose top-1 here differs from their export-time top-1 on the same images.

    Args:
        report: the bench report, with ``verify_accuracy``: ``[{artifact, runtime, top1, n}]``,
            the top-1 of each artifact x runtime on the first ``n`` test images (the images
            export verified on) and ``environment`` (``isa``, ``arch``).
        artifacts: the manifest's artifact records (``fidelity.top1`` / ``fidelity.n``:
            export-time top-1 on those images; ``verified_on``, ``onnx_preset``, ``method``).
        threshold_pts: flag a difference above this many percentage points.

    Returns:
        One dict per flagged artifact x runtime: ``artifact``, ``runtime``, ``export_top1``,
        ``top1``, ``n``, ``delta_pts`` (here minus export), ``cause`` (one line).
    """
    env = report.get("environment") or {}
    here, arch = set(env.get("isa") or ()), env.get("arch")
    by_name = {a["name"]: a for a in artifacts}
    out = []
    for m in report.get("verify_accuracy") or []:
        art = by_name.get(m["artifact"])
        fid = (art or {}).get("fidelity") or {}
        if fid.get("top1") is None or fid.get("n") != m["n"]:
            continue
        delta = (m["top1"] - fid["top1"]) * 100
        if abs(delta) > threshold_pts + 1e-9:
            exported_on = set((art.get("verified_on") or {}).get("isa") or ())
            out.append({"artifact": m["artifact"], "runtime": m["runtime"], "export_top1": fid["top1"],
                        "top1": m["top1"], "n": m["n"], "delta_pts": round(delta, 2),
                        "cause": _likely_cause(art, here, arch, exported_on)})
    return out


def verify_accuracy(accuracy: list[dict], files: dict, test, manifest: dict, workdir: Path, *, threads: int,
                    same_split: bool = True, say=lambda line: None, start_worker=None) -> list[dict]:
    """Top-1 of each measured artifact x runtime on the first ``fidelity.n`` test images (export's images).

    Export verifies every artifact on the first ``verify_size`` images of the run's test split;
    the bench measures the whole split. Where ``n`` is the whole split the bench's top-1 is
    reused; otherwise one short-lived worker (:mod:`.worker`) per artifact x runtime scores
    the first ``n``, so :func:`divergences` compares like with like.

    Args:
        accuracy: the bench's accuracy entries (``artifact``, ``runtime``, ``top1``).
        files: artifact name -> (verified path, gzip bytes).
        test: the bench's test :class:`~edgesmith.core.data.Split` (``images`` ``(N, H, W, C)
            uint8``, ``labels`` ``(N,)``).
        manifest: the run's manifest (artifact records with ``fidelity.n``).
        workdir: a scratch folder for the workers' data.
        threads: intra-op threads of the scoring workers.
        same_split: False when the bench's test split is not export's (nothing is compared).
        say: progress lines.
        start_worker: ``(job, workdir, tag) -> worker`` (default: a local
            :class:`.worker.WorkerProcess`; the suite passes its device's, so an SSH device
            scores on the device).

    Returns:
        ``[{artifact, runtime, top1, n}]``.

    Raises:
        RuntimeError: a worker died (a bug, not bad input).
    """
    from .worker import WorkerProcess

    if not same_split:
        return []
    arts = {a["name"]: a for a in manifest["artifacts"]}
    out = []
    for entry in accuracy:
        name, runtime = entry["artifact"], entry["runtime"]
        n = ((arts.get(name) or {}).get("fidelity") or {}).get("n")
        if not n or n > len(test) or name not in files:
            continue
        if n == len(test):
            out.append({"artifact": name, "runtime": runtime, "top1": entry["top1"], "n": n})
            continue
        data = Path(workdir) / f"first-{n}"
        if not data.exists():
            data.mkdir()
            np.save(data / "images.npy", test.images[:n])
            np.save(data / "labels.npy", test.labels[:n])
        job = {"path": str(files[name][0]), "runtime": runtime, "threads": threads, "batches": [1], "warmup": 0,
               "accuracy": True, "data": str(data), "num_classes": int(test.labels.max()) + 1}
        w = (start_worker or WorkerProcess)(job, Path(workdir), f"{name}-{runtime}-first{n}")
        try:
            if w.read().get("ok"):
                top1 = w.ask({"op": "finish"})["accuracy"]["top1"]
                out.append({"artifact": name, "runtime": runtime, "n": n, "top1": top1})
                say(f"  {name}-{runtime}: top-1 {top1:.2%} on the first {n} test images, the ones export checked "
                    f"it on ({arts[name]['fidelity']['top1']:.2%} there): the divergence check")
        finally:
            w.close()
    return out


def latency_rows(report: dict) -> list[dict]:
    """The report's batch-1 rows at the fewest threads measured (one core: the usual edge deployment)."""
    rows = [r for r in report.get("results") or [] if r.get("batch", 1) == 1]
    threads = min((r["threads"] for r in rows), default=None)
    return [r for r in rows if r["threads"] == threads]


def recommend(report: dict, budget_pts: float = DEFAULT_BUDGET_PTS, run_dir: str | Path | None = None) -> dict:
    """The artifact to ship for this machine, by the one rule of :func:`.recommend.recommend`.

    The fastest batch-1 p50 within ``budget_pts`` of float, else the smallest; rows that tie
    within the measurement noise go to the smaller, then the simpler file, and the tie is said.
    Float top-1 is the Keras reference's when it was measured on the same number of test
    images, else the best fp32 artifact's here. Latency is compared at the smallest thread
    count measured (one core: the usual edge deployment), over every runtime.

    Args:
        report: the bench report (``results`` rows with ``top1``, ``latency_ms.p50``, ``bytes``).
        budget_pts: accuracy budget in percentage points (>= 0).
        run_dir: the run directory, so the recommendation names the file's path.

    Returns:
        :class:`.recommend.Recommendation` as a dict (``artifact``, ``file``, ``runtime``,
        ``threads``, ``top1``, ``p50_ms``, ``bytes``, ``float_top1``, ``budget_pts``, ``rule``,
        ``speedup``, ``ties``, ``tie_note``, ``sentence``, ``why``); ``{}`` without results.

    Raises:
        ValueError: a negative budget.
    """
    from .recommend import recommend as decide

    if budget_pts < 0:
        raise ValueError(f"budget_pts must be >= 0 points, got {budget_pts}")
    rows = latency_rows(report)
    if not rows:
        return {}
    ref = report.get("reference") or {}
    if any(r.get("top1") is None for r in rows):
        float_top1 = None
    elif ref.get("top1") is not None and ref.get("n_test") == (report.get("config") or {}).get("n_test"):
        float_top1 = ref["top1"]
    else:
        floats = [r["top1"] for r in rows if r.get("precision") == "fp32"]
        float_top1 = max(floats) if floats else max(r["top1"] for r in rows)
    rec = decide(rows, float_top1, budget_pts, run_dir=run_dir)
    return rec.to_dict() if rec else {}


def expected_sentence(isa, arch: str | None = None) -> str:
    """One plain sentence: what int8 should do against float on this CPU, said as an expectation."""
    isa = set(isa)
    kind = vnni_kind(isa)
    if _is_arm(arch, isa):
        return (f"int8 should run faster than float on this CPU (it has {kind}, an int8 dot-product instruction)"
                if isa & ARM_DOT_FLAGS else "int8 should run only a little faster than float on this CPU "
                                            "(it has no int8 dot-product instruction)")
    if isa & VNNI_FLAGS:
        return f"int8 should run faster than float on this CPU (it has {kind}, an int8 dot-product instruction)"
    return ("int8 will likely run no faster than float on this CPU (it has no VNNI int8 dot-product "
            "instruction); ship int8 for its size, float for speed")
