"""The package's import graph: no cycles, and every import points down the layers of
docs/design.md (pure math < data and models < run machinery < entry points).

Every `import` / `from ... import` of an audioprune module counts, also those inside functions
(a lazy import still makes the module depend on the other one); imports under
`if TYPE_CHECKING:` do not. A package's `__init__` importing its own submodules (to register
them, or to re-export their names) is how a registry package is assembled, not a dependency of
those submodules, so those edges are left out of the cycle check (they still respect layers).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "audioprune"

# Layer of every module, by longest dotted prefix. Lower layers never import higher ones.
MATH, MODELS, MACHINERY, ENTRY = 1, 2, 3, 4
LAYER_NAMES = {
    MATH: "pure math",
    MODELS: "data and models",
    MACHINERY: "run machinery",
    ENTRY: "entry points",
}
LAYERS = {
    # 1. pure math and plain utilities: selection, scoring, budgets, cost, metrics, config
    "audioprune.selectors": MATH,
    "audioprune.attention_scores": MATH,
    "audioprune.budget": MATH,
    "audioprune.flops": MATH,
    "audioprune.metrics": MATH,
    "audioprune.attention_stats": MATH,
    "audioprune.classifier.scores": MATH,
    "audioprune.classifier.macs_count": MATH,  # analytic MACs of a pruned ViT classifier
    "audioprune.config": MATH,
    "audioprune.environment": MATH,
    "audioprune.devicecheck": MATH,  # a torch dispatch mode for the device-discipline tests
    "audioprune.errors": MATH,  # the error types and the CLI error handler (stdlib only)
    "audioprune.atomic": MATH,  # build a folder in a temporary sibling, rename it into place
    "audioprune.registry": MATH,  # name -> implementation maps (selectors, loaders, ...)
    "audioprune.records": MATH,  # Sample, DatasetInfo: what loaders build and metrics read
    "audioprune.text_normalization": MATH,  # answer / choice normalisation (loaders, metrics)
    # 2. data loaders and model adapters (with their seams into transformers)
    "audioprune.data": MODELS,
    "audioprune.models": MODELS,
    "audioprune.classifier.adapter": MODELS,
    "audioprune.classifier.features": MODELS,
    "audioprune.classifier.pruning": MODELS,
    "audioprune.prompts": MODELS,
    "audioprune.cache": MODELS,
    "audioprune.pruning": MODELS,
    # 3. the run loop and what it keeps: state, options, identity, store, loops, tables
    "audioprune.state": MACHINERY,
    "audioprune.options": MACHINERY,
    "audioprune.spec": MACHINERY,  # the config resolved once into a typed RunSpec
    "audioprune.identity": MACHINERY,
    "audioprune.store": MACHINERY,
    "audioprune.baseline": MACHINERY,
    "audioprune.loops": MACHINERY,
    "audioprune.runner": MACHINERY,
    "audioprune.tables": MACHINERY,
    "audioprune.figures": MACHINERY,
    "audioprune.api": MACHINERY,
    "audioprune.classifier.train": MACHINERY,  # the fine-tuning loop (and its CLI)
    "audioprune.classifier.tiny_classifier": MACHINERY,  # trains the tiny classifier with that loop
    # 4. entry points (`python -m ...`) and the package root
    "audioprune.run": ENTRY,
    "audioprune.analyze": ENTRY,
    "audioprune.evaluate": ENTRY,
    "audioprune.macs": ENTRY,
    "audioprune.classifier.analysis": ENTRY,
    "audioprune.train_projector": ENTRY,
    "audioprune.plan": ENTRY,
    "audioprune.reproduce": ENTRY,  # `make reproduce` (scripts/reproduce.py calls its main)  # `python -m audioprune.plan`: memory and FLOPs of a run, analytic
    "audioprune.classifier": ENTRY,  # the package's __init__ (re-exports nothing)
    # the package root holds `__version__` only (`load_model` is looked up lazily by name)
    "audioprune": MATH,
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(name: str) -> str | None:
    """The module `name` refers to (a function or class imported from it resolves to it)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the import nodes inside `if TYPE_CHECKING:` blocks."""
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(n) for child in node.body for n in ast.walk(child)}
    return skipped


def imports_of(module: str) -> set[str]:
    """The audioprune modules `module` imports, anywhere in its source."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(), filename=str(path))
    skipped = _type_checking_nodes(tree)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str | None] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {_resolve(a.name) for a in node.names if a.name.startswith("audioprune")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                parent = package.split(".")
                parent = parent[: len(parent) - node.level + 1]
                base = ".".join([*parent, *([node.module] if node.module else [])])
            if base.split(".")[0] != "audioprune":
                continue
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.add(full if full in MODULES else _resolve(base))
    found.discard(None)
    found.discard(module)
    return found  # type: ignore[return-value]


GRAPH = {module: imports_of(module) for module in MODULES}


def layer_of(module: str) -> int:
    prefixes = [
        p for p in LAYERS if module == p or (p != "audioprune" and module.startswith(p + "."))
    ]
    assert prefixes, f"{module} has no layer: add it to LAYERS (and to docs/design.md)"
    return LAYERS[max(prefixes, key=len)]


def _is_registration(source: str, target: str) -> bool:
    """A package __init__ importing one of its own submodules."""
    return MODULES[source].name == "__init__.py" and target.startswith(source + ".")


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def test_every_module_has_a_layer():
    for module in MODULES:
        layer_of(module)


def test_no_import_cycles():
    graph = {
        source: {t for t in targets if not _is_registration(source, t)}
        for source, targets in GRAPH.items()
    }
    assert find_cycles(graph) == []


def test_imports_point_down_the_layers():
    """No exceptions: code two layers share lives in the lower one (e.g. `records`,
    `text_normalization`, `classifier.macs_count`), never behind an allowlist."""
    upward = sorted(
        (source, target)
        for source, targets in GRAPH.items()
        for target in targets
        if layer_of(target) > layer_of(source)
    )
    assert not upward, "imports that point up the layers:\n" + "\n".join(
        f"  {s} ({LAYER_NAMES[layer_of(s)]}) -> {t} ({LAYER_NAMES[layer_of(t)]})" for s, t in upward
    )


def test_entry_points_do_not_reach_into_the_runner():
    """Entry points other than `run` take the loaded model, options and selector from the
    modules that own them (state, options, config), not through runner re-exports."""
    users = sorted(
        m
        for m, targets in GRAPH.items()
        if "audioprune.runner" in targets and m != "audioprune.run"
    )
    assert users == [], users


def test_the_checks_catch_what_they_look_for():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []
    assert layer_of("audioprune.selectors.tome") == MATH
    assert layer_of("audioprune.classifier.scores") == MATH
    assert layer_of("audioprune.classifier.train") == MACHINERY
    assert "audioprune.selectors.base" in GRAPH["audioprune.pruning"]
    assert _is_registration("audioprune.loops", "audioprune.loops.alm")
    assert not _is_registration("audioprune.loops.alm", "audioprune.loops")
