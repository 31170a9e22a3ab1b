"""Is the Hugging Face hub reachable? Asked before any library spends ~20 s retrying an unreachable hub."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")


def looks_like_local_path(name: str) -> bool:
    """A model name that can only be a folder: hub ids are `name` or `org/name`, never './x', '/x' or 'a/b/c'."""
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name


def hub_reachable(timeout_s: float = 3.0) -> tuple[bool, str]:
    """(reachable, why not). Honours HF_HUB_OFFLINE / HF_DATASETS_OFFLINE and HF_ENDPOINT."""
    for variable in OFFLINE_VARIABLES:
        if os.environ.get(variable, "").lower() in ("1", "true", "yes"):
            return False, f"{variable} is set"
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host, port = endpoint.hostname or "huggingface.co", endpoint.port or 443
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as exc:
        return False, f"cannot reach {host}:{port} ({exc.strerror or exc})"
    return True, ""
