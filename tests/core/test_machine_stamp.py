"""Plots name the machine and date that made them (edgesmith.core.cpuinfo.machine_stamp)."""
import datetime
import re

from edgesmith.core.cpuinfo import cpu_info, machine_stamp


def test_stamp_names_the_given_cpu_and_the_date_of_a_timestamp():
    assert machine_stamp("AMD EPYC 9R14", "2026-11-22T10:31:00+00:00") == "AMD EPYC 9R14 (2026-11-22)"


def test_stamp_defaults_to_this_cpu_and_today():
    stamp = machine_stamp()
    today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    assert re.fullmatch(r".+ \(\d{4}-\d{2}-\d{2}\)", stamp)
    assert stamp.endswith(f"({today})")
    if cpu_info().model:
        assert stamp.startswith(cpu_info().model)
