import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from nexus.errors import BlobNotFound, DigestMismatch, InvalidDigest
from nexus.store.blobs import BlobStore, parse_digest

HEX = "ab" * 32


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"sha256:{HEX}", f"sha256:{HEX}"),
        (f"sha256-{HEX}", f"sha256:{HEX}"),
        (f"sha256:{HEX.upper()}", f"sha256:{HEX}"),
        (f"sha256-{HEX.upper()}", f"sha256:{HEX}"),
    ],
)
def test_parse_digest_normalises(text: str, expected: str) -> None:
    assert parse_digest(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        HEX,
        f"sha512:{HEX}",
        f"SHA256:{HEX}",
        f"sha256:{HEX[:-1]}",
        f"sha256:{HEX}0",
        f"sha256_{HEX}",
        f"sha256:{'g' * 64}",
        f" sha256:{HEX}",
        f"sha256:{HEX}\n",
        f"sha256:../{HEX[3:]}",
    ],
)
def test_parse_digest_rejects(text: str) -> None:
    with pytest.raises(InvalidDigest) as info:
        parse_digest(text)
    assert info.value.message == "invalid digest format"
    assert info.value.status == 400


def test_write_bytes_stores_content_addressed(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    digest, size = blobs.write_bytes(b"hello")
    assert (digest, size) == (sha(b"hello"), 5)
    path = tmp_path / "blobs" / digest.replace(":", "-")
    assert blobs.path(digest) == path
    assert path.read_bytes() == b"hello"
    assert path.stat().st_mode & 0o777 == 0o644
    assert blobs.exists(digest)
    assert blobs.exists(digest.replace(":", "-").upper().replace("SHA256-", "sha256-"))
    assert blobs.size(digest) == 5
    assert blobs.read_bytes(digest) == b"hello"
    assert blobs.all_digests() == {digest}


def test_write_stream_with_expected_digest(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    data = [b"abc", b"", b"def" * 1000]
    expected = sha(b"".join(data)).upper().replace("SHA256:", "sha256-")
    digest, size = blobs.write_stream(iter(data), expected)
    assert digest == sha(b"".join(data))
    assert size == 3003


def test_digest_mismatch_leaves_no_file(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    wrong = f"sha256:{HEX}"
    with pytest.raises(DigestMismatch) as info:
        blobs.write_stream([b"payload"], wrong)
    assert info.value.message == f'digest mismatch, expected "{wrong}", got "{sha(b"payload")}"'
    assert info.value.status == 400
    assert list((tmp_path / "blobs").iterdir()) == []


def test_invalid_expected_digest_is_rejected_before_writing(tmp_path: Path) -> None:
    with pytest.raises(InvalidDigest):
        BlobStore(tmp_path).write_stream([b"x"], "sha256:nope")
    assert not (tmp_path / "blobs").exists() or not any((tmp_path / "blobs").iterdir())


def test_failing_stream_leaves_no_file(tmp_path: Path) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"partial data"
        raise ConnectionError("client went away")

    blobs = BlobStore(tmp_path)
    with pytest.raises(ConnectionError):
        blobs.write_stream(chunks(), None)
    assert list((tmp_path / "blobs").iterdir()) == []


def test_existing_blob_is_kept_and_touched(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    digest, _ = blobs.write_bytes(b"same")
    path = blobs.path(digest)
    os.utime(path, (1000, 1000))
    first = blobs.put_bytes(b"same")
    assert not first.created
    assert first.digest == digest
    assert path.stat().st_mtime > 1000
    assert sorted(p.name for p in (tmp_path / "blobs").iterdir()) == [path.name]


def test_put_reports_created(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    assert blobs.put_bytes(b"new").created
    assert not blobs.put_bytes(b"new").created


def test_import_file(tmp_path: Path) -> None:
    src = tmp_path / "model.bin"
    src.write_bytes(os.urandom(3 << 20))
    blobs = BlobStore(tmp_path / "store")
    digest, size = blobs.import_file(src)
    assert digest == sha(src.read_bytes())
    assert size == 3 << 20
    assert blobs.path(digest).read_bytes() == src.read_bytes()
    # Importing again is a no-op that keeps a single file.
    assert blobs.import_file(src) == (digest, size)
    assert blobs.all_digests() == {digest}
    assert len(list((tmp_path / "store" / "blobs").iterdir())) == 1


def test_missing_blob(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    digest = f"sha256:{HEX}"
    assert not blobs.exists(digest)
    with pytest.raises(BlobNotFound) as info:
        blobs.size(digest)
    assert info.value.message == f'blob "{digest}" not found'
    assert info.value.status == 404
    blobs.remove(digest)  # no error
    blobs.touch(digest)  # no error, nothing created
    assert not blobs.exists(digest)


def test_remove_and_touch(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    digest, _ = blobs.write_bytes(b"gone soon")
    os.utime(blobs.path(digest), (1000, 1000))
    blobs.touch(digest)
    assert blobs.path(digest).stat().st_mtime > 1000
    blobs.remove(digest)
    assert not blobs.exists(digest)
    assert blobs.all_digests() == set()


def test_all_digests_ignores_other_files(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    digest, _ = blobs.write_bytes(b"real")
    d = tmp_path / "blobs"
    (d / f"sha256-{HEX}-partial").write_bytes(b"")
    (d / f"sha256-{HEX}-partial-0").write_bytes(b"{}")
    (d / "junk").write_bytes(b"")
    (d / f"sha256-{'c' * 64}").mkdir()
    assert blobs.all_digests() == {digest}


def test_path_rejects_bad_digest(tmp_path: Path) -> None:
    with pytest.raises(InvalidDigest):
        BlobStore(tmp_path).path("sha256:../../etc/passwd")
