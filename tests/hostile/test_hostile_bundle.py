"""A pulled bundle is input (issue 45): whatever the store hands back is checked before anything of it is used. Each
case is a bundle as a damaged or hostile store could serve it; none may write outside the partial folder, and each
is refused naming what is wrong."""
import io
import json
import tarfile

import pytest

from maskcls.orchestration.team.bundle import BUNDLE, MANIFEST, extract_bundle, make_bundle, sha256_of
from maskcls.orchestration.team.push import CORRECTIONS, FILES

ALLOWED = (*FILES, CORRECTIONS)


def bundle_of(path, members: list, manifest=None):
    """A tar at `path` of (name, bytes or a TarInfo tweak) members, the manifest first (computed unless given)."""
    import hashlib
    if manifest is None:
        manifest = {n: {"size": len(d), "sha256": hashlib.sha256(d).hexdigest()} for n, d in members
                    if isinstance(d, bytes)}
    with tarfile.open(path, "w") as tar:
        data = json.dumps(manifest).encode() if not isinstance(manifest, bytes) else manifest
        info = tarfile.TarInfo(MANIFEST)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        for name, d in members:
            if isinstance(d, bytes):
                info = tarfile.TarInfo(name)
                info.size = len(d)
                tar.addfile(info, io.BytesIO(d))
            else:
                tar.addfile(d(name))
    return path


def link(target):
    def make(name):
        info = tarfile.TarInfo(name)
        info.type, info.linkname = tarfile.SYMTYPE, target
        return info
    return make


def test_a_bundle_round_trips(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "best.pt").write_bytes(b"x" * 1000)
    out = tmp_path / BUNDLE
    manifest = make_bundle({"config.json": tmp_path / "config.json", "best.pt": tmp_path / "best.pt"}, out)
    into = tmp_path / "into"
    into.mkdir()
    assert extract_bundle(out, into, ALLOWED, expected_sha256=sha256_of(out)) == manifest
    assert (into / "best.pt").read_bytes() == b"x" * 1000


CASES = {
    "a name that climbs out": ([("../../evil.json", b"{}")], None, "no file of a run"),
    "an absolute path": ([("/tmp/evil.json", b"{}")], None, "no file of a run"),
    "a file of no run": ([("notes.sh", b"rm -rf /")], None, "no file of a run"),
    "a hidden name": ([(".team.json", b"{}")], None, "no file of a run"),
    "a link in place of a file": ([("best.pt", link("/etc/passwd"))], {"best.pt": {"size": 0, "sha256": ""}},
                                  "not a plain file"),
    "a size that is not the manifest's": ([("config.json", b"{}")], {"config.json": {"size": 9, "sha256": "x"}},
                                          "does not match its manifest's size"),
    "a digest that is not the manifest's": ([("config.json", b"{}")],
                                            {"config.json": {"size": 2, "sha256": "0" * 64}}, "sha256"),
    "a manifest that is no table": ([("config.json", b"{}")], [1, 2], "not a table of files"),
    "a manifest that is not JSON": ([("config.json", b"{}")], b"\xff{", "manifest is not JSON"),
    "a file the manifest lists and the bundle lacks": (
        [("config.json", b"{}")], {"config.json": {"size": 2, "sha256":
                                                   "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},
                                   "best.pt": {"size": 1, "sha256": "x"}}, "lacks best.pt"),
    "a member larger than a run's file may be": ([("intervals.json", b" " * (16 * 2 ** 20 + 1))], None,
                                                 "more than a run's intervals.json may hold"),
}


@pytest.mark.parametrize("case", CASES)
def test_a_hostile_bundle_is_refused_naming_what_is_wrong(tmp_path, case):
    members, manifest, message = CASES[case]
    path = bundle_of(tmp_path / BUNDLE, members, manifest)
    into = tmp_path / "partial"
    into.mkdir()
    with pytest.raises(ValueError, match=message):
        extract_bundle(path, into, ALLOWED)
    assert not (tmp_path / "evil.json").exists() and not (tmp_path.parent / "evil.json").exists()
    assert not [p for p in into.iterdir() if p.is_symlink()]


def test_a_bundle_changed_in_the_store_is_refused_by_its_recorded_digest(tmp_path):
    path = bundle_of(tmp_path / BUNDLE, [("config.json", b"{}")])
    with pytest.raises(ValueError, match="does not match the digest its push recorded"):
        extract_bundle(path, tmp_path, ALLOWED, expected_sha256="0" * 64)


def test_no_manifest_first_is_refused(tmp_path):
    path = tmp_path / BUNDLE
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo("config.json")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"{}"))
    with pytest.raises(ValueError, match="no manifest first"):
        extract_bundle(path, tmp_path, ALLOWED)
