"""Wall-clock budgets given as text (``--budget 20m``), shared by ``tune`` and ``optimize``."""
from __future__ import annotations

import re

from .errors import ConfigError


def parse_budget(text: str) -> float:
    """Seconds in a duration such as ``90s``, ``20m``, ``1h`` or ``1h30m``.

    Raises:
        ConfigError: anything else, or zero.
    """
    m = re.fullmatch(r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s)?\s*", text or "")
    if not m or not any(m.groups()):
        raise ConfigError(f"budget_s takes a duration like 90s, 20m, 1h or 1h30m, got {text!r}",
                          field="OptimizeConfig.budget_s")
    h, mins, s = (float(g or 0) for g in m.groups())
    seconds = h * 3600 + mins * 60 + s
    if seconds <= 0:
        raise ConfigError(f"budget_s must be longer than zero, got {text!r}", field="OptimizeConfig.budget_s")
    return seconds
