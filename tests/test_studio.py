"""Tests of studio."""
import pytest
import os
import subprocess
import sys

from conftest import app_test, REPO, running_studio


# 3 ------------------------------------------------------------------------------------------------------------
def test_studio_config_applies_from_any_folder(tmp_path):
    script = REPO / "dashboard" / "Home.py"
    assert (REPO / "dashboard/.streamlit/config.toml").read_text() == (REPO / ".streamlit/config.toml").read_text()
    code = ("import sys; from streamlit import config; config._main_script_path = sys.argv[1]; "
            "config.get_config_options(force_reparse=True); "
            "print(config.get_option('server.address'), config.get_option('browser.gatherUsageStats'))")
    out = subprocess.run([sys.executable, "-c", code, str(script)], cwd=tmp_path, capture_output=True, text=True,
                         check=True, env={k: v for k, v in os.environ.items() if not k.startswith("STREAMLIT_")})
    assert out.stdout.split()[-2:] == ["127.0.0.1", "False"], out.stdout


def listening_addresses(port: int) -> set[str]:
    """Local addresses listening on `port`, from /proc/net/tcp{,6}."""
    found = set()
    for name in ("tcp", "tcp6"):
        try:
            lines = open(f"/proc/net/{name}").read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, _, st = line.split()[1], line.split()[2], line.split()[3]
            addr, p = local.split(":")
            if int(p, 16) == port and st == "0A":  # LISTEN
                found.add(addr)
    return found


@pytest.mark.slow
def test_studio_started_from_another_folder_listens_on_localhost_only(tmp_path, studio_demo):
    with running_studio(cwd=tmp_path, MASKCLS_RUNS=str(tmp_path / "runs")) as (_, port):
        addresses = listening_addresses(port)
    assert addresses == {"0100007F"}, addresses  # 127.0.0.1 only, not 0.0.0.0 / ::


def test_data_root_error_keeps_its_angle_brackets_in_the_studio(tmp_path):
    import ui
    (tmp_path / "x.txt").write_text("x")
    at = app_test(data_root=str(tmp_path))
    assert not at.exception
    shown = [e.value for e in at.error]
    assert shown and "\\<id\\>\\_\\<gender\\>" in shown[0] and "x.txt" not in shown[0]
    assert ui.markdown_escape("<a>_b*") == "\\<a\\>\\_b\\*"
