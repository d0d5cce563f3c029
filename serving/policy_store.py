"""The routing policy in force: loaded from the policy file, reloaded when it changes."""

from __future__ import annotations

import logging
from pathlib import Path

import yaml

from routing import Policy, policy_from_dict

log = logging.getLogger("routecast.policy")


class PolicyStore:
    """Holds the current policy; a bad file keeps the last good one and says why."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.policy: Policy = Policy.default()
        self.error: str | None = None
        self._mtime: float | None = None

    def reload(self) -> bool:
        """(Re)load the policy file when it changed; returns whether a new policy is in force."""
        path = self.path
        if path is None:
            return False
        try:
            mtime = path.stat().st_mtime
            if mtime == self._mtime:
                return False
            doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            self.policy = policy_from_dict(doc)
        except (OSError, ValueError, yaml.YAMLError) as exc:
            self.error = f"policy {path}: {exc}; still using version {self.policy.version}"
            log.error(self.error)
            return False
        self._mtime = mtime
        self.error = None
        log.info("policy %s loaded from %s", self.policy.version, path)
        return True
