"""Token selectors: which K of a window's N audio tokens reach the LLM.

Importing this package registers every built-in selector, so `build_selector(name, **params)`
(and the Hydra configs under `configs/selector/`) can find them by name.
"""

from audioprune.selectors import (  # noqa: F401  (registers them)
    patch_stats,
    segmentwise,
    simple,
    visionzip,
)
from audioprune.selectors.base import (
    SELECTORS,
    Selection,
    Selector,
    TokenWindow,
    build_selector,
    register_selector,
)

__all__ = [
    "SELECTORS",
    "Selection",
    "Selector",
    "TokenWindow",
    "build_selector",
    "register_selector",
]
