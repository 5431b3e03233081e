"""Uploads (issue 16 class 10): zips nested deeper than a real folder, paths longer than PATH_MAX, a
million entries, and a bad zip for the second class; each is refused with a message and nothing kept."""

from __future__ import annotations

import io
import struct
import time
import tracemalloc
import zipfile

import imagefactory as fac
import pytest

from bincls import BinclsError
from bincls.data.uploads import MAX_ENTRIES, extract_zip, new_upload_session, save_uploads
from bincls.paths import uploads_dir

JPEG = fac.encode(fac.rgb_image(seed=1), "JPEG")


def make_zip(entries: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return buf.getvalue()


def everything(folder) -> list:
    return sorted(p for p in folder.rglob("*")) if folder.exists() else []


def test_an_entry_nested_995_folders_deep_is_refused_without_recursion(tmp_path):
    deep = make_zip([("d/" * 995 + "x.jpg", JPEG), ("ok.jpg", JPEG)])
    with pytest.raises(BinclsError, match="nested 995 folders deep"):
        extract_zip(deep, tmp_path / "out", name="deep.zip")
    assert everything(tmp_path / "out") == []


def test_a_path_longer_than_path_max_is_refused(tmp_path):
    long = "/".join(["x" * 200] * 25) + "/photo.jpg"  # 5,000 bytes: more than PATH_MAX (4,096)
    with pytest.raises(BinclsError, match="the zip is refused"):
        extract_zip(make_zip([(long, JPEG)]), tmp_path / "out", name="long.zip")
    assert everything(tmp_path / "out") == []


def _central_directory_only(entries: int, claimed: int | None = None) -> bytes:
    """A zip holding nothing but a central directory of `entries` entries named "photo.." (53 bytes each,
    as an attacker's zip would), with an end record saying `claimed` entries (zip64 when large)."""
    claimed = entries if claimed is None else claimed
    fields = (20, 3, 20, 0, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0)  # name length 7, nothing else
    header = struct.pack("<4s4B4HL2L5H2L", b"PK\x01\x02", *fields)
    one = header + b"photo.."
    directory = one * entries
    if claimed < 0xFFFF and len(directory) < 0xFFFFFFFF:
        end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, claimed, claimed, len(directory), 0, 0)
        return directory + end
    end64 = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, claimed, claimed, len(directory), 0)
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, len(directory), 1)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return directory + end64 + locator + end


@pytest.mark.parametrize("claimed", [None, 10], ids=["says-a-million", "says-ten"])
def test_a_zip_of_a_million_entries_is_refused_at_once_and_in_little_memory(tmp_path, claimed):
    data = _central_directory_only(1_000_000, claimed)
    assert len(data) > 53_000_000  # the size of the zip
    started = time.monotonic()
    with pytest.raises(BinclsError, match=f"more than the {MAX_ENTRIES:,} allowed"):
        extract_zip(data, tmp_path / "out", name="million.zip")
    seconds = time.monotonic() - started
    tracemalloc.start()  # timed apart: tracing every allocation slows Python down tenfold
    with pytest.raises(BinclsError, match=f"more than the {MAX_ENTRIES:,} allowed"):
        extract_zip(data, tmp_path / "out", name="million.zip")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert seconds < 1.0, seconds  # was 5 s
    assert peak < 16 * 2**20, peak  # was 435 MB: nothing is kept per entry
    assert everything(tmp_path / "out") == []


def test_a_bad_zip_for_the_second_class_keeps_nothing_of_the_first():
    session = new_upload_session()
    save_uploads(session, "cats", [("a.jpg", JPEG), ("b.jpg", JPEG)])
    with pytest.raises(BinclsError, match="bad.zip"):
        save_uploads(session, "dogs", [("c.jpg", JPEG), ("bad.zip", b"PK\x03\x04 not really a zip")])
    assert everything(uploads_dir()) == []
