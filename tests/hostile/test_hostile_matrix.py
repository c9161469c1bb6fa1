"""The hostile-input matrix (issue 43): every file kind x every mutation x every command that reads it, and every
command that takes a name x every reserved or invalid name, from the lists in harness.py. Each case ends in a clear
message or a skip, never a traceback, a hang, a planted figure shown as real, or a write outside the sandbox. The
inner loop runs a third of it (every kind and mutation at least once); the suite runs all of it."""
import shutil
from pathlib import Path

import pytest

from harness import KINDS, NotApplicable, build_template, cases, name_cases, run_case, run_name_case, sandbox

KIND = {k.name: k for k in KINDS}
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def template(tmp_path_factory, tiny_run, demo_root):
    return build_template(tmp_path_factory.mktemp("hostile-template"), tiny_run, demo_root)


def check(template, tmp_path, capsys, kind, mutation, command):
    box = sandbox(template, tmp_path)
    try:
        outcome = run_case(box, KIND[kind], mutation, command, capsys, REPO / "tests" / "astronaut.jpg")
    except NotApplicable as e:
        pytest.skip(f"{mutation} {kind}: {e}")
    finally:
        shutil.rmtree(box, ignore_errors=True)
    assert not outcome.problems, (f"{command} on a {mutation} {kind}: {'; '.join(outcome.problems)}\n"
                                  f"exit {outcome.code} in {outcome.seconds:.1f} s\nstdout: {outcome.out[-1500:]}\n"
                                  f"stderr: {outcome.err[-1500:]}")


@pytest.mark.parametrize("kind,mutation,command", list(cases(slow=False)))
def test_hostile_file(template, tmp_path, capsys, kind, mutation, command):
    check(template, tmp_path, capsys, kind, mutation, command)


@pytest.mark.slow
@pytest.mark.parametrize("kind,mutation,command", list(cases(slow=True)))
def test_hostile_file_every_command(template, tmp_path, capsys, kind, mutation, command):
    check(template, tmp_path, capsys, kind, mutation, command)


@pytest.mark.parametrize("command,name", list(name_cases(slow=False)))
def test_reserved_and_invalid_names(template, tmp_path, capsys, command, name, monkeypatch):
    check_name_case(template, tmp_path, capsys, command, name, monkeypatch)


@pytest.mark.slow
@pytest.mark.parametrize("command,name", list(name_cases(slow=True)))
def test_reserved_and_invalid_names_every_command(template, tmp_path, capsys, command, name, monkeypatch):
    check_name_case(template, tmp_path, capsys, command, name, monkeypatch)


def check_name_case(template, tmp_path, capsys, command, name, monkeypatch):
    monkeypatch.setenv("MASKCLS_TEAM", "http://127.0.0.1:9")  # names are checked before any store is asked
    box = sandbox(template, tmp_path)
    try:
        outcome = run_name_case(box, command, name, capsys)
    finally:
        shutil.rmtree(box, ignore_errors=True)
    assert not outcome.problems, (f"{command} {name!r}: {'; '.join(outcome.problems)}\nexit {outcome.code}\n"
                                  f"stdout: {outcome.out[-800:]}\nstderr: {outcome.err[-800:]}")
