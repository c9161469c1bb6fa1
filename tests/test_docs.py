"""The docs are true to the code: every file and test they name exists."""
import re

import pytest

from conftest import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
ROOTS = ("maskcls/", "tests/", "docs/", "benchmarks/", "pages/", "dashboard/", ".ci/")  # a run path is an example
PATH = re.compile(r"`([A-Za-z0-9_./-]+)(?:::([A-Za-z0-9_]+))?[^`]*`")


def named(text: str):
    """(path, test name or None) for each backticked repository path in `text`."""
    for m in PATH.finditer(text):
        path, test = m.group(1), m.group(2)
        if "<" in m.group(0) or "*" in m.group(0):  # a pattern such as tests/test_<module>.py, not a path
            continue
        if path.startswith(ROOTS) or re.fullmatch(r"test_\w+\.py", path):
            yield path, test


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_path_a_doc_names_exists(doc):
    missing = []
    for path, test in named(doc.read_text()):
        target = REPO / ("tests/" + path if path.startswith("test_") else path)
        if not target.exists():
            missing.append(path)
        elif test and not re.search(rf"^def {test}\b", target.read_text(), re.M):
            missing.append(f"{path}::{test}")
    assert not missing, f"{doc.name} names what does not exist: {missing}"


def test_the_checker_sees_a_missing_path():
    assert list(named("see `maskcls/nowhere.py` and `tests/test_x.py::test_y`")) == \
        [("maskcls/nowhere.py", None), ("tests/test_x.py", "test_y")]
