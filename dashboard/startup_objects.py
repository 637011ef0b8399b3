"""The objects a dashboard process holds after its imports, kept out of every later garbage collection.

A scored 100,000-row file leaves some 200,000 small objects behind it, which triggers Python's full
(oldest-generation) collection; it walks every tracked object, the ~300,000 of Panel, Bokeh, pandas and
the rest imported at start included, holding the GIL: measured, one collection stopped every session of the
process for 0.55 s. `gc.freeze()` once, after the imports, moves those into a generation no collection
walks, and the same collection took 0.1 s (docs/design.md, "Dashboard input and output").
"""

from __future__ import annotations

import gc

_frozen = False


def freeze_startup_objects() -> None:
    """Freeze what the process holds now, once per process; later sessions' objects stay collectable."""
    global _frozen
    if not _frozen:
        gc.freeze()
        _frozen = True
