"""glore.models imports without cycles and with its imports at the top of each module."""

import ast
import pathlib

MODELS = pathlib.Path(__file__).resolve().parents[1] / "src" / "glore" / "models"
# the one import inside a function: hosts.py imports Bottleneck3d from slow_only.py, which places its
# blocks through insert.py, which imports hosts.py
IN_FUNCTION = {("slow_only", ".insert")}


def _imports(path: pathlib.Path, *, top_level: bool) -> set[str]:
    """The glore.models modules that ``path`` imports, at module level or anywhere."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            found |= {node.module.split(".")[0]} if node.module else {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("glore.models."):
            found.add(node.module.split(".")[2])
    return {name for name in found if (MODELS / f"{name}.py").is_file()}


def test_the_module_level_import_graph_has_no_cycle():
    graph = {p.stem: _imports(p, top_level=True) for p in MODELS.glob("*.py")}
    assert graph["registry"] and "factory" not in graph["registry"]
    state = {}

    def visit(node, path):
        state[node] = "open"
        for child in sorted(graph[node]):
            assert state.get(child) != "open", f"import cycle: {' -> '.join(path + [child])}"
            if child not in state:
                visit(child, path + [child])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_imports_sit_at_the_top():
    inside = set()
    for path in MODELS.glob("*.py"):
        tree = ast.parse(path.read_text())
        top = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in top:
                name = node.names[0].name if isinstance(node, ast.Import) else "." * node.level + (node.module or "")
                inside.add((path.stem, name))
    assert inside == IN_FUNCTION

