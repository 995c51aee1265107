"""The LVIS API as this project calls it: its numpy alias restored, its output silenced."""

from __future__ import annotations

import contextlib
import io
import logging
import types
import warnings
from collections.abc import Iterator

import lvis
import lvis.eval
import numpy


def patch_lvis_numpy() -> None:
    """Give ``lvis.eval`` its own numpy view that still has ``float`` (removed in numpy 1.24).

    Only ``lvis/eval.py`` uses ``np.float`` in lvis 0.5.3 (``lvis.py`` and ``results.py`` do not
    import numpy). The global numpy module is left untouched. Idempotent.
    """
    if "float" in vars(lvis.eval.np):
        return
    view = types.ModuleType("numpy_for_lvis", "numpy plus the alias `float` for lvis.eval")
    view.__getattr__ = lambda name: getattr(numpy, name)  # PEP 562 fallback
    view.float = float
    lvis.eval.np = view


@contextlib.contextmanager
def quiet_lvis() -> Iterator[None]:
    """Swallow the LVIS API's prints, warnings and (inputs already checked) log warnings."""
    lvis_logger = logging.getLogger("lvis")
    level = lvis_logger.level
    lvis_logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        lvis_logger.setLevel(level)
