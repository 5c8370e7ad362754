"""Support for a library installed only once that library is imported (as Dask's ``register_lazy``)."""

from __future__ import annotations

import sys
from collections.abc import Callable

__all__ = ["LazyInstallers"]


class LazyInstallers:
    """Functions keyed by a module name, each run once, the first time it is needed after that module is imported."""

    def __init__(self) -> None:
        self.pending: dict[str, Callable[[], None]] = {}
        self._seen = -1  # len(sys.modules) when last looked: unchanged, nothing was imported since

    def register(self, module: str) -> Callable[[Callable[[], None]], Callable[[], None]]:
        """Decorator: run the function once ``module`` is in ``sys.modules`` (see :meth:`install_imported`)."""

        def decorator(func: Callable[[], None]) -> Callable[[], None]:
            self.pending[module] = func
            self._seen = -1
            return func

        return decorator

    def install_imported(self) -> None:
        """Run (once) the installers of every registered module imported by now."""
        if len(sys.modules) == self._seen:  # called for every value encoded or decoded: mostly this
            return
        for module, install in list(self.pending.items()):
            if module in sys.modules:
                del self.pending[module]
                install()
        self._seen = len(sys.modules)

    def install(self, module: str) -> bool:
        """Import ``module`` and run its installer now, if one is pending; return whether one ran."""
        if module not in self.pending:
            return False
        import importlib

        importlib.import_module(module)
        self.install_imported()
        return True
