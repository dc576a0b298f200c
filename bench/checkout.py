"""Run a script or module against the s321 code of another checkout (a `git worktree`
of an older commit, say), so that `throughput.py --code DIR` can measure before and
after side by side with the same benchmark code. Usage:

    python bench/checkout.py CHECKOUT_DIR script.py [ARGS...]
    python bench/checkout.py CHECKOUT_DIR -m package.module [ARGS...]

The import names map onto the checkout's folders the way pyproject's `package-dir`
does; installed plugins' entry points then import the checkout's modules.
"""

from __future__ import annotations

import importlib.util
import runpy
import sys
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType


class CheckoutFinder:
    """Finds `s321`, `s321.plugins`, `s321.adapters` and `s321.profiles` in a checkout
    (their submodules follow from the package paths)."""

    def __init__(self, root: Path):
        self.folders = {"s321": root / "core", "s321.plugins": root / "plugins",
                        "s321.adapters": root / "adapters", "s321.profiles": root / "config" / "profiles"}

    def find_spec(self, name: str, path: object = None, target: ModuleType | None = None
                  ) -> ModuleSpec | None:
        folder = self.folders.get(name)
        if folder is None:
            return None
        return importlib.util.spec_from_file_location(
            name, folder / "__init__.py", submodule_search_locations=[str(folder)])


def main() -> None:
    root = Path(sys.argv[1]).resolve()
    sys.meta_path.insert(0, CheckoutFinder(root))
    if sys.argv[2] == "-m":
        module = sys.argv[3]
        sys.argv = [module, *sys.argv[4:]]
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    else:
        script = sys.argv[2]
        sys.argv = [script, *sys.argv[3:]]
        sys.path.insert(0, str(Path(script).resolve().parent))
        runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
