"""The lone-clone path (issue 44): the README's two set-up commands are what CI runs, verbatim, and everything the
code and the tests import comes with the README's install (a test that needs a machine package skips naming it)."""
import ast
import importlib.metadata as md
import re
import sys
from pathlib import Path

from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
# imported only by a benchmark that compares maskcls with another library, installed beside that run (its docstring)
COMPARED_WITH = {"kornia": "benchmarks/kornia_vs_batchaugment.py"}


def readme_commands() -> tuple[str, str]:
    """(install command, test command) as the README gives them."""
    text = (REPO / "README.md").read_text()
    install = re.search(r"^# 1\. install.*\n(.+)$", text, re.M).group(1).strip()
    test = re.search(r"Test command.*?```bash\n(.+?)\n```", text, re.S).group(1).strip()
    return install, test


def test_ci_runs_the_readme_install_and_test_commands_verbatim():
    install, test = readme_commands()
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert install == "python3 -m venv .venv && .venv/bin/pip install -r requirements.txt -e ."
    assert install in ci and "rm -rf .venv" in ci[:ci.index(install)], "CI must install exactly as the README, clean"
    assert ci[-1] == test == ".venv/bin/python -m pytest -q"
    assert not any("pip install" in line for line in ci if line != install), "CI installs nothing the README does not"


def _imports(paths) -> set[str]:
    out = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                out |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                out.add(node.module.split(".")[0])
    return out


def _required(names: list[str]) -> set[str]:
    """The distributions requirements.txt installs: its lines and, transitively, what they require (with extras)."""
    seen, todo = set(), [Requirement(n) for n in names]
    while todo:
        req = todo.pop()
        key = req.name.lower().replace("_", "-")
        if (key, tuple(sorted(req.extras))) in seen:
            continue
        seen.add((key, tuple(sorted(req.extras))))
        try:
            requires = md.requires(req.name) or []
        except md.PackageNotFoundError:
            continue
        for line in requires:
            sub = Requirement(line)
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in (req.extras or {""})):
                todo.append(sub)
    return {k for k, _ in seen}


def test_everything_imported_comes_with_the_readme_install():
    lines = [ln.split("#")[0].strip() for ln in (REPO / "requirements.txt").read_text().splitlines()]
    installed = _required([ln for ln in lines if ln])
    sources = [p for d in ("maskcls", "tests", "dashboard", "pages", "benchmarks") for p in (REPO / d).rglob("*.py")]
    local = {"maskcls", "conftest", "harness", "ui", "Home"} | {p.stem for p in sources}
    owners = md.packages_distributions()
    missing = {}
    for name in sorted(_imports(sources) - set(sys.stdlib_module_names) - local - set(COMPARED_WITH)):
        dists = {d.lower().replace("_", "-") for d in owners.get(name, [])}
        if not dists & installed:
            missing[name] = sorted(dists) or ["not installed here"]
    assert not missing, f"imported but not brought by requirements.txt (the README's install): {missing}"


def test_a_compared_library_is_imported_only_by_its_benchmark():
    for name, where in COMPARED_WITH.items():
        users = [p for d in ("maskcls", "tests", "dashboard", "pages", "benchmarks") for p in (REPO / d).rglob("*.py")
                 if name in _imports([p])]
        assert [str(p.relative_to(REPO)) for p in users] == [where]
