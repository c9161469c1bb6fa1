"""Security rules that hold for the whole code base."""
import subprocess
import tomllib

import pytest

from conftest import REPO
from maskcls.augment.spec import AugmentSpec, load_saved_spec, save_spec
from maskcls.common.runfolder import RunFolder


def tracked_python():
    out = subprocess.run(["git", "ls-files", "*.py"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    return [REPO / p for p in out.split()] or list(REPO.glob("**/*.py"))


def calls(text: str, head: str) -> list[str]:
    """Every `head...)` call with balanced parentheses."""
    out, start = [], text.find(head)
    while start >= 0:
        depth, i = 0, start + len(head) - 1
        while i < len(text):
            depth += {"(": 1, ")": -1}.get(text[i], 0)
            if depth == 0:
                break
            i += 1
        out.append(text[start:i + 1])
        start = text.find(head, i)
    return out


def test_no_shell_and_only_safe_checkpoint_loading():
    for path in tracked_python():
        text = path.read_text()
        assert "shell" + "=True" not in text, path
        for call in calls(text, "torch." + "load("):  # split so this line is not a call itself
            assert "weights_only=True" in call, (path, call)


def test_core_library_has_no_streamlit():
    files = list((REPO / "maskcls").rglob("*.py"))
    assert len(files) > 30  # the subpackages are searched too
    for path in files:
        assert "import streamlit" not in path.read_text(), path


def test_server_listens_on_localhost_by_default():
    cfg = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert cfg["server"]["address"] == "127.0.0.1" and cfg["server"]["headless"] is True
    assert cfg["browser"]["gatherUsageStats"] is False


@pytest.mark.parametrize("bad", ["../x", "/etc/passwd", "a/../../b", "..", ".hidden", "x\x00y", "semi;colon"])
def test_typed_names_cannot_escape_their_roots(tmp_path, bad):
    with pytest.raises(ValueError):
        RunFolder(tmp_path, bad)
    with pytest.raises(ValueError):
        save_spec(tmp_path, bad, AugmentSpec())
    with pytest.raises(ValueError):
        load_saved_spec(tmp_path, bad)
    with pytest.raises(ValueError):
        RunFolder(tmp_path, "ok").checkpoint(bad)
    # nothing was written anywhere: not in the root, not beside it, not where the name points
    assert sorted(p.name for p in tmp_path.rglob("*")) in ([], ["specs"]), list(tmp_path.rglob("*"))
    assert not (tmp_path.parent / "x").exists() and not (tmp_path.parent / "b").exists()
