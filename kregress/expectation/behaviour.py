"""Observed behaviour as short text: an errno alone ("EFAULT"), everything else key=value."""
from __future__ import annotations

import json


def value_text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    return str(value)


def behaviour_parts(observed: dict, keys=None) -> list[str]:
    """Short forms: an errno alone ("EFAULT"), everything else key=value."""
    return [value_text(v) if k == "errno" else f"{k}={value_text(v)}"
            for k, v in observed.items() if keys is None or k in keys]


def behaviour_text(observed: dict, keys=None) -> str:
    return " ".join(behaviour_parts(observed, keys))
