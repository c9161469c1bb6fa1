"""The library's shape: imports flow one way, common -> data -> augment -> models -> train -> infer ->
orchestration -> cli / studio, with no cycle (imports inside functions counted); small modules, short functions,
calls that read like sentences. Each failure names the place."""
import ast
import re
from pathlib import Path

import pytest

from conftest import REPO

PKG = REPO / "maskcls"
LAYERS = ["common", "data", "augment", "models", "train", "infer", "orchestration"]  # then the top: cli, wrapup,
# bench, __init__


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in LAYERS:
        return LAYERS.index(parts[1])
    return len(LAYERS)  # maskcls itself, maskcls.cli, maskcls.wrapup, maskcls.bench, maskcls.__main__


def imports_of(path: Path, known: set[str], source: str | None = None) -> set[str]:
    """Every maskcls module `path` imports, at module level or inside functions (`source`: its text, if not the
    file's)."""
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(source if source is not None else path.read_text())):
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


def graph(probe: tuple[Path, str] | None = None) -> dict[str, set[str]]:
    """module -> the maskcls modules it imports; `probe` adds a module (path, source) that is not on disk."""
    files = {module_name(p): (p, None) for p in PKG.rglob("*.py")}
    if probe:
        files[module_name(probe[0])] = probe
    known = set(files)
    return {m: imports_of(p, known, src) - {"maskcls"} for m, (p, src) in files.items()}


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
    ("from maskcls.orchestration.jobs import submit\n", "maskcls.orchestration.jobs"),
    ("def f():\n    from maskcls.infer import ensemble\n", "maskcls.infer.ensemble"),
])
def test_the_checker_sees_upward_imports_inside_functions_too(source, bad):
    probe = PKG / "data" / "_layer_probe.py"  # never written: the checker reads the source given
    found = graph((probe, source))["maskcls.data._layer_probe"]
    assert bad in found and layer(bad) > layer("maskcls.data._layer_probe")


def functions():
    for path in sorted(PKG.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield path, node


def test_no_module_over_400_lines():
    big = [f"{p.relative_to(REPO)} ({n} lines)" for p in PKG.rglob("*.py") if (n := len(p.read_text().splitlines())) > 400]
    assert not big, big


def test_no_function_over_60_lines():
    long = [f"{p.relative_to(REPO)}:{f.lineno} {f.name} ({n} lines)" for p, f in functions()
            if (n := f.end_lineno - f.lineno + 1) > 60]
    assert not long, long


def test_no_function_takes_more_than_five_positional_parameters():
    """Past the obvious few, parameters are keyword-only: calls read like sentences."""
    many = []
    for p, f in functions():
        names = [a.arg for a in f.args.posonlyargs + f.args.args]
        n = len(names) - (1 if names and names[0] in ("self", "cls") else 0)
        if n > 5:
            many.append(f"{p.relative_to(REPO)}:{f.lineno} {f.name} ({n} positional)")
    assert not many, many


def test_no_private_optuna_attribute():
    """Optuna is reached through its public API only (no study._storage, trial._trial_id)."""
    import re
    used = [f"{p.relative_to(REPO)}:{i}" for p in PKG.rglob("*.py") for i, line in
            enumerate(p.read_text().splitlines(), 1) if re.search(r"\b(study|trial|t)\._\w+", line)]
    assert not used, used


def test_the_public_api_resolves():
    import maskcls
    for name in maskcls.__all__:
        assert callable(getattr(maskcls, name)), name
    with pytest.raises(AttributeError, match="the public API is"):
        maskcls.no_such_thing  # noqa: B018


def test_no_test_or_script_reads_outside_the_repository():
    pattern = re.compile(r"\.\./shared|parents?\[\d\]\s*/\s*[\"']shared|" + "MASKCLS_" + "REFERENCE")
    offenders = []
    for folder in ("tests", "benchmarks", ".ci", "maskcls", "dashboard", "pages"):
        for path in (REPO / folder).rglob("*"):
            if path.is_file() and path.suffix in (".py", ".sh", "") and path != Path(__file__):
                text = path.read_text(errors="ignore")
                offenders += [f"{path.relative_to(REPO)}: {m.group(0)}" for m in pattern.finditer(text)]
    assert not offenders, offenders
