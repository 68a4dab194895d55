"""The archive extractor refuses anything that could write outside its target."""

from __future__ import annotations

import io
import tarfile

import pytest

from gateway.errors import ArchiveError
from gateway.util.archive import Limits, safe_extract


def _tar(path, members, compress="zst"):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    raw = buf.getvalue()
    if compress == "zst":
        zstandard = pytest.importorskip("zstandard")
        raw = zstandard.ZstdCompressor().compress(raw)
    elif compress == "gz":
        import gzip

        raw = gzip.compress(raw)
    path.write_bytes(raw)
    return path


def _file(name, data=b"x"):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _link(name, target, kind=tarfile.SYMTYPE):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


@pytest.mark.parametrize("compress", ["zst", "gz", "none"])
def test_good_archive_unpacks(tmp_path, compress):
    arc = _tar(
        tmp_path / "a.tar",
        [
            _file("adapter/adapter_config.json", b"{}"),
            _file("adapter/w.bin", b"12345"),
            _link("adapter/alias.bin", "w.bin"),
        ],
        compress,
    )
    names = safe_extract(arc, tmp_path / "out")
    assert (tmp_path / "out/adapter/w.bin").read_bytes() == b"12345"
    assert "adapter/alias.bin" in names


@pytest.mark.parametrize(
    ("member", "message"),
    [
        (_file("../evil.txt"), "climbs out"),
        (_file("a/../../evil.txt"), "climbs out"),
        (_file("/etc/evil.txt"), "absolute path"),
        (_link("link", "/etc/passwd"), "points outside"),
        (_link("a/link", "../../outside"), "points outside"),
        (_link("hard", "../outside", tarfile.LNKTYPE), "points outside"),
    ],
)
def test_unsafe_members_are_refused(tmp_path, member, message):
    arc = _tar(tmp_path / "bad.tar", [_file("ok.txt"), member])
    with pytest.raises(ArchiveError, match=message):
        safe_extract(arc, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "evil.txt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["bad.tar"]  # the temp dir is gone too


def test_devices_and_oversize_are_refused(tmp_path):
    dev = tarfile.TarInfo("dev")
    dev.type = tarfile.CHRTYPE
    arc = _tar(tmp_path / "dev.tar", [(dev, None)])
    with pytest.raises(ArchiveError, match="device"):
        safe_extract(arc, tmp_path / "out")
    big = _tar(tmp_path / "big.tar", [_file("w.bin", b"0" * 2000)])
    with pytest.raises(ArchiveError, match="over the 1,000 limit"):
        safe_extract(big, tmp_path / "out", Limits(member_bytes=1000))
    many = _tar(tmp_path / "many.tar", [_file(f"f{i}") for i in range(5)])
    with pytest.raises(ArchiveError, match="more than 3 members"):
        safe_extract(many, tmp_path / "out", Limits(members=3))
    total = _tar(tmp_path / "total.tar", [_file(f"f{i}", b"0" * 600) for i in range(3)])
    with pytest.raises(ArchiveError, match="unpacks to over"):
        safe_extract(total, tmp_path / "out", Limits(total_bytes=1000))


def test_corrupt_archive_is_an_error_not_a_traceback(tmp_path):
    pytest.importorskip("zstandard")  # a corrupt zstd stream, as the zstd reader sees it
    arc = tmp_path / "junk.tar"
    arc.write_bytes(b"\x28\xb5\x2f\xfd" + b"not really zstd" * 10)
    with pytest.raises(ArchiveError, match="cannot unpack"):
        safe_extract(arc, tmp_path / "out")
