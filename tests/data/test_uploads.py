"""Uploads land in the app's own folder, under safe names; unsafe zips are refused whole."""

from __future__ import annotations

import io
import stat
import zipfile
from pathlib import Path

import pytest
from imagefactory import encode, rgb_image

from bincls import BinclsError
from bincls.data.uploads import extract_zip, new_upload_session, safe_name, save_uploads
from bincls.paths import uploads_dir

JPEG = encode(rgb_image(seed=1), "JPEG")
PNG = encode(rgb_image(seed=2), "PNG")


def make_zip(entries: list[tuple[str | zipfile.ZipInfo, bytes]], deflate: bool = True) -> bytes:
    buf = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return buf.getvalue()


def all_files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def outside(tmp_path) -> Path:
    """A folder beside the destination: nothing may ever appear in it."""
    p = tmp_path / "outside"
    p.mkdir()
    return p


@pytest.fixture
def dest(tmp_path) -> Path:
    return tmp_path / "outside" / "dest"


# Names -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "given, expected",
    [
        ("photo.jpg", "photo.jpg"),
        ("../../etc/passwd", "passwd"),
        ("..\\..\\Windows\\evil.png", "evil.png"),
        ("/abs/path/img.PNG", "img.PNG"),
        ("C:\\Users\\me\\cat.jpeg", "cat.jpeg"),
        (".hidden.jpg", "hidden.jpg"),
        ("...", "file"),
        (".jpg", "file.jpg"),
        ("a\x00b\x1f\x7fc.jpg", "abc.jpg"),
        ("we<ird>:na|me?.jpg", "we_ird__na_me_.jpg"),
        ("CON.jpg", "_CON.jpg"),
        ("", "file"),
        ("trailing. ", "trailing"),
    ],
)
def test_safe_name(given, expected):
    assert safe_name(given) == expected


def test_safe_name_dedupes_case_insensitively_and_keeps_extension():
    taken: set[str] = set()
    names = [safe_name(n, taken) for n in ["a.jpg", "A.jpg", "x/a.jpg", "a.png"]]
    assert names == ["a.jpg", "A-1.jpg", "a-2.jpg", "a.png"]


def test_safe_name_caps_length_but_keeps_extension():
    out = safe_name("x" * 400 + ".jpeg")
    assert out.endswith(".jpeg") and len(out.encode()) <= 200


# save_uploads ------------------------------------------------------------------------------------
def test_save_uploads_goes_to_the_uploads_folder_under_safe_names():
    session = new_upload_session()
    assert session.parent == uploads_dir()
    files = [
        ("../../escape.jpg", JPEG), ("a.jpg", JPEG), ("a.jpg", PNG), (".DS_Store", b"junk"), ("._a.jpg", b"x")
    ]
    saved = save_uploads(session, "../My Ants", files)
    assert saved.folder == session / "My Ants"
    assert sorted(p.name for p in saved.files) == ["a-1.jpg", "a.jpg", "escape.jpg"]
    assert all(p.parent == saved.folder for p in saved.files)
    assert len(saved.skipped) == 2
    assert all_files(uploads_dir()) == set(saved.files)
    assert (saved.folder / "a-1.jpg").read_bytes() == PNG


def test_save_uploads_refuses_a_folder_outside_the_uploads_folder(tmp_path):
    with pytest.raises(BinclsError, match="uploads folder"):
        save_uploads(tmp_path / "somewhere", "ants", [("a.jpg", JPEG)])
    with pytest.raises(BinclsError):
        save_uploads(uploads_dir(), "ants", [("a.jpg", JPEG)])  # the root itself is not a session
    assert not (tmp_path / "somewhere").exists()


def test_save_uploads_extracts_a_zip_and_rolls_back_on_a_bad_one():
    session = new_upload_session()
    good = make_zip([("ants/1.jpg", JPEG), ("ants/2.png", PNG), ("__MACOSX/ants/._1.jpg", b"x")])
    saved = save_uploads(session, "ants", [("plain.jpg", JPEG), ("ants.zip", good)])
    assert sorted(p.relative_to(saved.folder).as_posix() for p in saved.files) == [
        "ants/ants/1.jpg", "ants/ants/2.png", "plain.jpg"
    ]
    bad = make_zip([("ok.jpg", JPEG), ("../evil.txt", b"evil")])
    with pytest.raises(BinclsError, match="bad.zip"):
        save_uploads(session, "bees", [("b.jpg", JPEG), ("bad.zip", bad)])
    # One session is one "use these uploads": nothing of it is kept, b.jpg and the ants class included.
    assert all_files(uploads_dir()) == set() and not session.exists()


# extract_zip -------------------------------------------------------------------------------------
def test_extract_keeps_structure_and_skips_junk(dest, outside):
    data = make_zip([
        ("set/ants/a.jpg", JPEG),
        ("set/bees/b.png", PNG),
        ("set/bees/.DS_Store", b"junk"),
        ("__MACOSX/set/bees/._b.png", b"junk"),
        ("set/.git/config", b"junk"),
        ("set/Thumbs.db", b"junk"),
        ("set/empty/", b""),
    ])
    out = extract_zip(data, dest)
    assert sorted(p.relative_to(dest).as_posix() for p in out) == ["set/ants/a.jpg", "set/bees/b.png"]
    assert all_files(outside) == set(out)
    assert (dest / "set" / "ants" / "a.jpg").read_bytes() == JPEG


def test_extract_from_a_path_and_sanitizes_names(tmp_path, dest):
    zpath = tmp_path / "upload.zip"
    zpath.write_bytes(make_zip([("dir/.hidden.jpg", JPEG), ("dir/a:b.jpg", JPEG), ("dir/A:b.jpg", PNG)]))
    out = extract_zip(zpath, dest)
    assert sorted(p.name for p in out) == ["A_b-1.jpg", "a_b.jpg", "hidden.jpg"]


@pytest.mark.parametrize(
    "entry, message",
    [
        ("../evil.txt", r"'\.\./evil\.txt'.*climbs out"),
        ("ok/../../evil.txt", "climbs out"),
        ("..\\evil.txt", "climbs out"),
        ("/tmp/evil.txt", "absolute path"),
        ("\\evil.txt", "absolute path"),
        ("C:/evil.txt", "absolute path"),
        ("C:evil.txt", "absolute path"),
    ],
)
def test_extract_refuses_entries_escaping_the_folder(tmp_path, dest, outside, entry, message):
    info = zipfile.ZipInfo(entry)  # ZipInfo keeps the name as given, unlike writestr's cleanup
    info.filename = entry
    data = make_zip([("first.jpg", JPEG), (info, b"evil")])
    with pytest.raises(BinclsError, match=message) as err:
        extract_zip(data, dest, name="evil.zip")
    assert "evil.zip" in str(err.value)
    assert all_files(tmp_path) == set()  # nothing written anywhere, not even first.jpg
    assert not dest.exists()


def test_extract_refuses_symlink_entries(tmp_path, dest):
    link = zipfile.ZipInfo("ants/link.jpg")
    link.create_system = 3  # unix
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    data = make_zip([("ants/a.jpg", JPEG), (link, b"/etc/passwd")])
    with pytest.raises(BinclsError, match=r"links\.zip: entry 'ants/link\.jpg' is a symbolic link"):
        extract_zip(data, dest, name="links.zip")
    assert all_files(tmp_path) == set()


def test_extract_refuses_a_bomb_by_ratio(tmp_path, dest):
    data = make_zip([("a.jpg", JPEG), ("bomb.bmp", b"\0" * (5 * 1024**2))])
    assert len(data) < 50_000
    with pytest.raises(BinclsError, match=r"bomb\.zip: entry 'bomb\.bmp' expands .* zip bomb"):
        extract_zip(data, dest, name="bomb.zip")
    assert all_files(tmp_path) == set()


def test_extract_refuses_too_large_a_total_and_too_many_entries(tmp_path, dest):
    data = make_zip([(f"{i}.jpg", JPEG) for i in range(5)], deflate=False)
    with pytest.raises(BinclsError, match=r"entry '\d\.jpg' takes the unpacked size above"):
        extract_zip(data, dest, max_total_bytes=3 * len(JPEG))
    with pytest.raises(BinclsError, match="5 entries, more than the 4 allowed"):
        extract_zip(data, dest, max_entries=4)
    assert all_files(tmp_path) == set()


def test_extract_catches_a_header_that_lies_about_its_size(tmp_path, dest):
    data = bytearray(make_zip([("a.bin", b"A" * 1000)], deflate=False))
    # Shrink the declared size in the central directory: the stream must not write past it.
    cd = data.rfind(b"PK\x01\x02")
    data[cd + 24 : cd + 28] = (10).to_bytes(4, "little")
    with pytest.raises(BinclsError, match="a.bin"):
        extract_zip(bytes(data), dest)
    assert all_files(tmp_path) == set()


def test_extract_refuses_something_that_is_not_a_zip(dest):
    with pytest.raises(BinclsError, match="photos.zip is not a readable zip"):
        extract_zip(b"not a zip at all", dest, name="photos.zip")


def test_extract_refuses_encrypted_entries(dest):
    data = bytearray(make_zip([("a.jpg", JPEG)], deflate=False))
    for sig, off in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # set the "encrypted" flag bit
        i = data.find(sig)
        data[i + off] |= 1
    with pytest.raises(BinclsError, match="encrypted"):
        extract_zip(bytes(data), dest)
