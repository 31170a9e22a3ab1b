"""What the benchmark scripts share: running spdc the way a user does (`--json` on stdout), and pausing a
background sweep while timing (on 2 cores a training job would take half the machine from the measurement)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_spdc(*args: str) -> tuple[int, dict]:
    """`python -m spdc ARGS --json` from the repository root: its exit code and JSON document ({} if none)."""
    result = subprocess.run([sys.executable, "-m", "spdc", *args, "--json"], cwd=ROOT, stdout=subprocess.PIPE,
                            text=True, check=False)
    return result.returncode, json.loads(result.stdout) if result.stdout.strip() else {}


def export_once(source: Path, out: Path, threads: int, *extra: str) -> dict:
    """`spdc export SOURCE --onnx --out OUT EXTRA` unless OUT already holds an artifact; its manifest. A failed
    parity check (exit 7) leaves an artifact marked failed, which the document reports; anything else stops."""
    manifest = out / "spdc_manifest.json"
    if not manifest.is_file():
        print(f"exporting {out.name}", flush=True)
        code, document = run_spdc("export", str(source), "--onnx", "--out", str(out), "--threads", str(threads),
                                  *extra)
        if code not in (0, 7):
            raise SystemExit(f"export of {source} to {out} failed ({code}): {document}")
    return dict(json.loads(manifest.read_text(encoding="utf-8")))


@contextlib.contextmanager
def paused(pids: list[int]) -> Iterator[None]:
    """Stop the process groups of `pids` (SIGSTOP) for the block, and always resume them (SIGCONT)."""
    groups = set()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            groups.add(os.getpgid(pid))
    for group in groups:
        os.killpg(group, signal.SIGSTOP)
    try:
        yield
    finally:
        for group in groups:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGCONT)
