"""The library's imports flow one way, data -> augment -> models -> train -> infer -> runs -> cli, with no cycle,
counting imports inside functions too. Each failure names both modules."""
import ast
from pathlib import Path

import pytest

from conftest import REPO

PKG = REPO / "maskcls"
LAYERS = ["common", "data", "augment", "models", "train", "infer", "runs"]  # then the top: cli, charts, __init__


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in LAYERS:
        return LAYERS.index(parts[1])
    return len(LAYERS)  # maskcls itself, maskcls.cli, maskcls.charts, maskcls.__main__


def imports_of(path: Path, known: set[str]) -> set[str]:
    """Every maskcls module `path` imports, at module level or inside functions."""
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                mod = f"{base}.{node.module}" if node.module else base
            else:
                mod = node.module or ""
            names = [mod] + [f"{mod}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rsplit(".", 1)[0] if "." in name else ""
            if name and name != me:
                out.add(name)
    return out


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PKG.rglob("*.py")}
    known = set(files)
    return {m: imports_of(p, known) - {"maskcls"} for m, p in files.items()}


def test_at_least_four_stage_subpackages():
    present = [name for name in LAYERS if (PKG / name / "__init__.py").exists()]
    assert len(present) >= 4 and present == LAYERS, present


def test_no_upward_import():
    upward = [f"{m} (layer {LAYERS[layer(m)] if layer(m) < len(LAYERS) else 'top'}) imports {t} "
              f"(layer {LAYERS[layer(t)] if layer(t) < len(LAYERS) else 'top'})"
              for m, targets in graph().items() for t in sorted(targets) if layer(t) > layer(m)]
    assert not upward, "\n".join(upward)


def test_no_import_cycle():
    g = graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(m, stack):
        state[m] = 1
        for t in sorted(g.get(m, ())):
            if state.get(t) == 1:
                cycles.append(" -> ".join(stack[stack.index(t):] + [t]))
            elif t not in state:
                visit(t, stack + [t])
        state[m] = 2
    for m in sorted(g):
        if m not in state:
            visit(m, [m])
    assert not cycles, "\n".join(cycles)


@pytest.mark.parametrize("source, bad", [
    ("from maskcls.runs.jobs import submit\n", "maskcls.runs.jobs"),
    ("def f():\n    from maskcls.infer import ensemble\n", "maskcls.infer.ensemble"),
])
def test_the_checker_sees_upward_imports_inside_functions_too(tmp_path, source, bad):
    fake = PKG / "data" / "_layer_probe.py"
    fake.write_text(source)
    try:
        found = graph()["maskcls.data._layer_probe"]
        assert bad in found and layer(bad) > layer("maskcls.data._layer_probe")
    finally:
        fake.unlink()


def test_no_function_over_80_lines():
    long = []
    for path in PKG.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > 80:
                    long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({n} lines)")
    assert not long, long


def test_the_public_api_resolves():
    import maskcls
    for name in maskcls.__all__:
        assert callable(getattr(maskcls, name)), name
    with pytest.raises(AttributeError, match="the public API is"):
        maskcls.no_such_thing  # noqa: B018
