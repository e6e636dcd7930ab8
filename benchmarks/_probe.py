"""What a device is: Python, edgesmith, CPU, runtimes, governor and temperature, as one JSON line.

This file imports nothing from edgesmith at module level, so the same code describes this
machine (:func:`probe`, imported) and a remote device: :mod:`.remote` sends this file's text
over ``ssh HOST PYTHON - CACHE JOB_ID`` and reads the line after :data:`MARKER`, whatever
edgesmith version (if any) the device has installed. Only the standard library is used
until edgesmith is found on the device.
"""
from __future__ import annotations

import glob
import json
import os
import platform
import sys

MARKER = "EDGESMITH-PROBE "
GOVERNOR = "/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"
CUR_FREQ = "/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq"  # kHz
THERMAL_ZONES = "/sys/class/thermal/thermal_zone*"


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as f:
            return f.read().strip()
    except (OSError, UnicodeDecodeError):
        return None


def sys_readings() -> dict:
    """CPU governor, clock and temperatures where Linux exposes them (None / {} elsewhere).

    Returns:
        ``governor`` (e.g. ``"ondemand"``, from ``cpufreq/scaling_governor`` of cpu0),
        ``cpu0_mhz`` (its current clock, MHz) and ``temperatures_c`` (thermal zone type ->
        degrees Celsius, from ``/sys/class/thermal/thermal_zone*/temp``, millidegrees there).
    """
    freq = _read(CUR_FREQ)
    temps = {}
    for zone in sorted(glob.glob(THERMAL_ZONES)):
        raw = _read(os.path.join(zone, "temp"))
        if raw is None or not raw.lstrip("-").isdigit():
            continue
        name = _read(os.path.join(zone, "type")) or os.path.basename(zone)
        key, i = name, 1
        while key in temps:  # two zones of the same type (e.g. two x86_pkg_temp)
            i += 1
            key = f"{name}-{i}"
        temps[key] = round(int(raw) / 1000, 1)
    return {"governor": _read(GOVERNOR), "cpu0_mhz": round(int(freq) / 1000) if freq and freq.isdigit() else None,
            "temperatures_c": temps}


def _edgesmith_version() -> str | None:
    try:
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("edgesmith")
        except PackageNotFoundError:
            pass
        import edgesmith  # a source checkout on sys.path, without package metadata

        return getattr(edgesmith, "__version__", "unknown")
    except ImportError:
        return None


def probe(cache: str | None = None, job_id: str | None = None) -> dict:
    """Describe this machine for a benchmark, and prepare its bench cache when asked.

    Args:
        cache: the device's bench cache folder (``~`` expanded here); when given, its
            ``files/``, ``data/`` and ``jobs/JOB_ID/up/`` folders are created and listed.
        job_id: name of this bench's job folder under ``cache/jobs``.

    Returns:
        ``python`` (version), ``executable``, ``edgesmith`` (version or None), ``sys``
        (:func:`sys_readings`), and when edgesmith imports: ``environment``
        (:func:`edgesmith.benchmarks.env.environment`) and ``runtimes`` (name -> usable,
        detail); ``import_error`` when it is installed but fails to import; ``cache``
        (absolute path) and ``cached`` (names under ``files/`` and ``data/``) with ``cache``.
    """
    out = {"python": platform.python_version(), "executable": sys.executable, "edgesmith": _edgesmith_version(),
           "sys": sys_readings()}
    if out["edgesmith"] is not None:
        try:
            from edgesmith.benchmarks.env import environment
            from edgesmith.benchmarks.runtimes import RUNTIMES, detect_runtimes

            out["environment"] = environment()
            out["runtimes"] = {t: {"usable": s.usable, "detail": s.detail} for t, s in detect_runtimes(RUNTIMES).items()}
        except Exception as e:  # an installed but broken edgesmith: reported as the device's reason
            out["import_error"] = f"{type(e).__name__}: {e}".splitlines()[0]
    if cache:
        root = os.path.abspath(os.path.expanduser(cache))
        for sub in ("files", "data", os.path.join("jobs", job_id or "probe", "up")):
            os.makedirs(os.path.join(root, sub), exist_ok=True)
        out["cache"] = root
        out["cached"] = sorted(f"files/{n}" for n in os.listdir(os.path.join(root, "files"))) + sorted(
            f"data/{n}" for n in os.listdir(os.path.join(root, "data")))
    return out


if __name__ == "__main__":
    args = sys.argv[1:]
    result = probe(args[0] if args else None, args[1] if len(args) > 1 else None)
    sys.stdout.write(MARKER + json.dumps(result) + "\n")
