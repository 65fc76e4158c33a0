"""Loading tavkit's server stack and client cheaply inside a pytest process.

Two things made the ten-line test's setup slow that have nothing to do with calls:

**Assertion rewriting.** pytest rewrites the ``assert`` statements of every module in a
distribution that registers a ``pytest11`` entry point, so that a failing assert inside
a plugin's helper explains itself. For tavkit that distribution is the whole library: every module a
test imports (the server stack, the client, about 170 files) is parsed and compiled
again through pytest's AST rewriter instead of loaded from its ``.pyc``. pytest caches
what it rewrote beside the source, but not where it cannot write, nor with
``PYTHONDONTWRITEBYTECODE`` set (then every run pays), and never on the first run in a
fresh virtualenv: 1-2 s of the ten-line test's setup on the build machine.

Only :mod:`tavkit.testing.assertions` asserts on the user's behalf, so only it stays
marked. The rewriting hook's list of marked names is pytest's own (a private
attribute); if a pytest release changes it this does nothing and tests still pass, only
slower.

**The garbage collector.** Importing FastAPI, SQLAlchemy, pydantic, aiortc and tavkit
allocates hundreds of thousands of long-lived objects, and CPython's cyclic collector
runs again and again over the growing heap while they load; once loaded, the next full
collection (which comes during the first call) walks all of them again for nothing.
:func:`importing` pauses the collector while the fixtures import and then freezes what
was loaded (:func:`gc.freeze`: left out of later collections, never freed, as modules
are not anyway): 0.3-0.4 s less to import and a 0.15 s full collection gone from the
call, on the build machine.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

__all__ = ["REWRITTEN", "importing", "narrow_assertion_rewriting"]

PACKAGE: Final = "tavkit"
REWRITTEN: Final = "tavkit.testing.assertions"
"""The one tavkit module whose asserts pytest rewrites (the user-facing assertions)."""


def narrow_assertion_rewriting(pluginmanager: Any) -> bool:
    """Unmark the ``tavkit`` package for pytest's assertion rewriting and mark
    :data:`REWRITTEN`; whether the package was unmarked.

    Call it while the plugin registers (``pytest_addoption``): after pytest marked the
    distribution, before conftests and tests import tavkit. Loaded with ``-p`` instead
    of the entry point, pytest marks the plugin module alone; the assertions get marked
    all the same.
    """
    hook: Any = getattr(pluginmanager, "rewrite_hook", None)
    marked = getattr(hook, "_must_rewrite", None)
    if not isinstance(marked, set):
        return False  # --assert=plain, or a pytest that keeps its marks otherwise
    unmarked = PACKAGE in marked
    marked.discard(PACKAGE)
    hook.mark_rewrite(REWRITTEN)  # also forgets the hook's cached answers
    return unmarked


@contextmanager
def importing() -> Iterator[None]:
    """Import the block's modules with the cyclic GC paused; freeze what they loaded.

    Freezes only when the block loaded modules (the first test of a run), so later
    tests' garbage is never frozen with them. Leaves a disabled GC disabled.
    """
    enabled = gc.isenabled()
    loaded = len(sys.modules)
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            if len(sys.modules) > loaded:
                gc.freeze()
            gc.enable()
