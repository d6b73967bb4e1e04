"""Import a repository script (benchmarks/, notebooks/, recipes/) as a module."""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def load_script(relative: str, name: str | None = None) -> ModuleType:
    """Executes `ROOT/relative` as module `name` (default: the file's stem).

    The module is registered in `sys.modules` first: dataclasses and pickling
    look their module up there.
    """
    path = ROOT / relative
    spec = importlib.util.spec_from_file_location(name or path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
