"""The package's import graph has no circle and no import that climbs back up a floor (#34): every module under
acoustemo/ is parsed with ast, and imports inside functions count as much as those at the top."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "acoustemo"

# inference and the layers under it never load the training code
NO_TRAINING = ("acoustemo.predictor", "acoustemo.timeline", "acoustemo.batch", "acoustemo.api", "acoustemo.features",
               "acoustemo.data", "acoustemo.model")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The acoustemo modules `path` imports anywhere in its body (`from a.b import c` counts as a.b.c when c is a
    module, else as a.b)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            for a in node.names:
                found.add(f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "import_module" and node.args:
            if isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                found.add(node.args[0].value)
    return {m for m in found if m in modules and m != name}


def graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(p) for p in paths}
    return {module_name(p): imports_of(p, modules) for p in paths}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def test_the_import_graph_has_no_circle():
    assert cycles(graph()) == []


def test_the_finder_sees_a_circle_through_an_import_inside_a_function():
    g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(g) == [["a", "b", "c"]]
    assert "acoustemo.timeline" in graph()["acoustemo.batch"]  # a function-level import is an edge


def test_the_library_never_imports_the_cli():
    g = graph()
    climbing = {m: sorted(d for d in deps if d.startswith("acoustemo.commands") or d == "acoustemo.cli")
                for m, deps in g.items() if not m.startswith(("acoustemo.commands", "acoustemo.cli",
                                                              "acoustemo.__main__"))}
    assert {m: d for m, d in climbing.items() if d} == {}


def test_no_module_imports_the_package_root():
    assert {m: "acoustemo" for m, deps in graph().items() if "acoustemo" in deps} == {}


def test_inference_never_imports_training():
    bad = {m: sorted(d for d in deps if d.startswith("acoustemo.training"))
           for m, deps in graph().items() if m.startswith(NO_TRAINING)}
    assert {m: d for m, d in bad.items() if d} == {}
