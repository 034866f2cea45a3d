"""ensure_file: existing files untouched, zip member extraction with sha256, clear offline error."""
import hashlib
import zipfile

import pytest

from attnlab.data.download import ensure_file

PAYLOAD = "Go.\tVa !\nHi.\tSalut !\n"


def _zip(tmp_path):
    archive = tmp_path / "src" / "fra-eng.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("fra-eng/fra.txt", PAYLOAD)
        zf.writestr("fra-eng/_about.txt", "about")
    return archive


def test_existing_file_is_returned_without_download(tmp_path):
    path = tmp_path / "fra.txt"
    path.write_text("local")
    assert ensure_file(path, "http://127.0.0.1:9/x.zip", how_to_get="n/a") == path
    assert path.read_text() == "local"


def test_downloads_zip_member_and_checks_sha256(tmp_path):
    url = _zip(tmp_path).as_uri()
    target = tmp_path / "data" / "fra-eng" / "fra.txt"
    sha = hashlib.sha256(PAYLOAD.encode()).hexdigest()
    assert ensure_file(target, url, sha256=sha, member="fra-eng/fra.txt", how_to_get="n/a") == target
    assert target.read_text() == PAYLOAD
    assert sorted(p.name for p in target.parent.iterdir()) == ["fra.txt"]  # no temp leftovers


def test_sha256_mismatch_writes_nothing(tmp_path):
    target = tmp_path / "fra.txt"
    with pytest.raises(ValueError, match="sha256"):
        ensure_file(target, _zip(tmp_path).as_uri(), sha256="0" * 64, member="fra-eng/fra.txt", how_to_get="n/a")
    assert not target.exists() and list(tmp_path.glob(".fra.txt*")) == []


def test_missing_member_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="zip member fra-eng/missing.txt"):
        ensure_file(tmp_path / "x.txt", _zip(tmp_path).as_uri(), member="fra-eng/missing.txt", how_to_get="n/a")


def test_offline_error_names_path_url_and_instructions(tmp_path):
    target = tmp_path / "fra-eng" / "fra.txt"
    url = "http://127.0.0.1:9/x.zip"
    with pytest.raises(FileNotFoundError) as info:
        ensure_file(target, url, member="fra-eng/fra.txt", how_to_get="copy fra.txt there by hand", timeout=2)
    message = str(info.value)
    assert str(target) in message and url in message and "copy fra.txt there by hand" in message
    assert not target.exists()
