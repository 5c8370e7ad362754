"""Other libraries' spellings of prunelab's concepts.

``import prunelab.compat.dagger as dg`` gives prunelab with FAIR dagger's
names where the concept is the same (see :mod:`prunelab.compat.dagger`).
"""

__all__: list[str] = []
