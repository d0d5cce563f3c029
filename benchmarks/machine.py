"""Describe the machine a benchmark ran on, for the committed results."""

from __future__ import annotations

import os
import platform


def machine() -> dict[str, str]:
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = "unknown"
    try:
        with open("/proc/meminfo", encoding="utf-8") as fh:
            kb = int(fh.readline().split()[1])
            mem = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "memory": mem,
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
    }


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages (empty where the system does not say)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def stamp() -> dict[str, object]:
    """What every result carries: the machine, when, and how busy it was."""
    from datetime import UTC, datetime

    return {
        "machine": machine(),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_average": load_average(),
    }


def shown_path(path: os.PathLike[str] | str) -> str:
    """A path as committed results show it: relative to the project when inside it, so the
    files name no one's machine."""
    full = os.path.abspath(path)
    rel = os.path.relpath(full, os.getcwd())
    return full if rel.startswith("..") else rel
