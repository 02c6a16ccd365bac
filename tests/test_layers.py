"""The package's imports go down the layers of docs/architecture.md and form no cycle."""

import ast
from pathlib import Path

import llmft

ROOT = Path(llmft.__file__).parent
# docs/architecture.md, "Layers and who owns what": a module may import its own layer and those below.
LAYERS = {
    "errors": 0, "config": 0, "settings": 0, "processes": 0, "exit_codes": 0, "files": 0,
    "db": 1, "auth": 1,
    "bases": 2, "data": 2,
    "train": 3, "evaluate": 3, "monitor": 3, "registry": 3,
    "jobs": 4, "serve": 4,
    "api": 5, "cli": 5, "web": 5,
}
ENTRY_POINTS = {"llmft.train.__main__"}  # `python -m llmft.train` is the CLI's train command


def _modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        if "migrations" in path.relative_to(ROOT).parts:
            continue
        parts = ["llmft", *path.relative_to(ROOT).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imports(path: Path, *, top_level_only: bool) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else ast.walk(tree)
    names = []
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("llmft"):
            names += [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        elif isinstance(node, ast.Import):
            names += [alias.name for alias in node.names if alias.name.startswith("llmft")]
    return names


def test_every_top_level_name_has_a_layer():
    tops = {name.split(".")[1] for name in _modules() if name != "llmft"}
    assert tops <= set(LAYERS), f"put {sorted(tops - set(LAYERS))} in a layer (here and in docs/architecture.md)"


def test_imports_never_go_up_a_layer():
    upward = []
    for name, path in _modules().items():
        if name == "llmft" or name in ENTRY_POINTS:
            continue
        layer = LAYERS[name.split(".")[1]]
        for target in _imports(path, top_level_only=False):
            parts = target.split(".")
            if len(parts) > 1 and parts[1] in LAYERS and LAYERS[parts[1]] > layer:
                upward.append(f"{name} imports {target}")
    assert upward == []


def test_no_import_cycle_between_modules():
    modules = _modules()
    graph = {name: {target for target in _imports(path, top_level_only=False) if target in modules and target != name}
             for name, path in modules.items()}
    cycles, done = [], set()

    def visit(name: str, path: list[str]) -> None:
        for target in sorted(graph[name]):
            if target in path:
                cycles.append(" -> ".join(path[path.index(target):] + [target]))
            elif target not in done:
                visit(target, [*path, target])
        done.add(name)

    for name in sorted(graph):
        if name not in done:
            visit(name, [name])
    # a package's __init__ importing its own modules is not a cycle of the design
    cycles = [cycle for cycle in cycles if not all(part.startswith(cycle.split(" -> ")[0]) for part in cycle.split(" -> "))]
    assert cycles == []
