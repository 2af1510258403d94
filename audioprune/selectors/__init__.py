"""Token selectors: which K of a window's N audio tokens reach the LLM.

Importing this package registers every built-in selector, so `build_selector(name, **params)`
(and the Hydra configs under `configs/selector/`) can find them by name.
"""

from audioprune.selectors import (  # noqa: F401  (registers them)
    diversity,
    fastadasp,
    headrouter,
    llm,
    patch_stats,
    samap,
    segmentwise,
    simple,
    tome,
    visionzip,
    vispruner,
)
from audioprune.selectors.base import (
    SELECTORS,
    Selection,
    Selector,
    TokenWindow,
    build_selector,
    register_selector,
)

# The field's pre-LLM methods (docs/methods.md), in that page's table order.
FIELD_METHODS = (
    "tome",
    "atome",
    "ltbm_style",
    "fastadasp",
    "divprune",
    "cdpruner",
    "samap",
    "vispruner",
)

__all__ = [
    "FIELD_METHODS",
    "SELECTORS",
    "Selection",
    "Selector",
    "TokenWindow",
    "build_selector",
    "register_selector",
]
