"""dbkeeper as a real process on an interpreter where some installed modules cannot be imported (as if the
package were installed without them: boto3 without the [s3] extra, numpy without the [fast] one).

A finder placed first on ``sys.meta_path`` refuses the named top-level packages with the ModuleNotFoundError a
missing package raises; nothing of dbkeeper is replaced.
"""

from __future__ import annotations

import sys

_PRELUDE = """
import importlib.abc, sys
hidden = set(MODULES)
class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in hidden:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, Hide())
for name in list(sys.modules):
    if name.partition(".")[0] in hidden:
        del sys.modules[name]
"""
_MAIN = """
sys.argv = ["dbkeeper", *sys.argv[1:]]
from dbkeeper.cli import main
sys.exit(main())
"""


def hide_modules_prelude(*modules: str) -> str:
    """Python source that, run first, makes ``modules`` (top-level packages) unimportable."""
    return _PRELUDE.replace("MODULES", repr(list(modules)), 1)


def dbkeeper_without(*modules: str) -> list[str]:
    """The argv that runs dbkeeper with ``modules`` unimportable; append dbkeeper's own arguments."""
    return [sys.executable, "-c", hide_modules_prelude(*modules) + _MAIN]
