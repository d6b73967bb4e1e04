"""Run Python in a fresh process: without Keras, or without the kit's `__init__`."""

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: A prelude that makes Keras and every backend look uninstalled.
NO_BACKEND = """
import importlib.abc, sys

class _NoBackend(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {"keras", "tensorflow", "jax", "torch"}:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked)", name=name)
        return None

sys.meta_path.insert(0, _NoBackend())
"""

#: A prelude that skips `tlrecipes/__init__.py`, so that what follows tests the
#: lab's own imports, whatever the kit's `__init__` imports.
WITHOUT_KIT_INIT = f"""
import sys, types
_package = types.ModuleType("tlrecipes")
_package.__path__ = [{str(ROOT / "tlrecipes")!r}]
sys.modules["tlrecipes"] = _package
"""


def run_python(
    code: str, timeout: float = 120
) -> tuple[subprocess.CompletedProcess, float]:
    """Runs `code` with this checkout first on the path; returns (result, seconds)."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "KERAS_BACKEND": "tensorflow",
    }
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return result, time.perf_counter() - start
