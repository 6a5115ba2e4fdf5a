"""Clip list rows and the frames they name (audit 62): a colour PNG read grey as every other format is (not by
libpng's own weights), subject ids that differ only in case refused when the list is read, a row with fewer fields
than the header refused, and CSV errors that name the line (one field too many on the first data row) or the
encoding (UTF-16 / UTF-32)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from icegan.data.clip_list import ClipList
from icegan.data.feature_table import read_csv_cells

HEADER = "subject,clip,frames,onset,apex,offset,label\n"


def _write(tmp_path: Path, text: str, name: str = "clips.csv") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def _colour(seed: int = 0) -> np.ndarray:
    """(24, 32, 3) uint8 BGR noise: every grey level rounding case of a colour-to-grey conversion."""
    return np.random.default_rng(seed).integers(0, 256, (24, 32, 3), dtype=np.uint8)


def _colour_png(path: Path, kind: str) -> np.ndarray:
    """Write a colour PNG of :func:`_colour` at ``path``: ``"bgr"`` (colour type 2), ``"palette"`` (type 3, Pillow's
    256-colour quantization) or ``"bgra"`` (type 6, opaque). Returns the (24, 32, 3) BGR picture it holds."""
    bgr = _colour()
    if kind == "palette":
        from PIL import Image
        im = Image.fromarray(bgr[:, :, ::-1].copy()).quantize(256)
        im.save(path)
        bgr = np.array(im.convert("RGB"))[:, :, ::-1].copy()
    elif kind == "bgra":
        assert cv2.imwrite(str(path), np.dstack([bgr, np.full(bgr.shape[:2], 255, np.uint8)]))
    else:
        assert cv2.imwrite(str(path), bgr)
    assert path.read_bytes()[25] == {"bgr": 2, "palette": 3, "bgra": 6}[kind]     # the IHDR colour type
    return bgr


@pytest.mark.parametrize("kind", ["bgr", "palette", "bgra"])
@pytest.mark.parametrize("flag", [None, cv2.IMREAD_GRAYSCALE, cv2.IMREAD_GRAYSCALE | cv2.IMREAD_ANYDEPTH])
def test_a_colour_png_read_grey_is_converted_by_cvtcolor(tmp_path, flag, kind):
    """A colour 8-bit PNG read grey was converted by libpng inside cv2.imdecode, with other weights than
    cv2.cvtColor (which a JPEG or BMP of a CASME II frame read grey nearly matches): mean -0.5 grey levels on a
    CASME II frame. Now decoded in colour and converted by cv2.cvtColor, for every grey flag and every colour type:
    RGB, palette (3) and RGB with alpha (6), whose libpng grey differs too (audit 63: leaving type 3 or 6 out of
    read_frame's colour types went unnoticed)."""
    from flownet.frame_io import read_frame
    bgr = _colour_png(tmp_path / "f.png", kind)
    png = read_frame(tmp_path / "f.png", flag)
    assert png.dtype == np.uint8 and png.ndim == 2
    np.testing.assert_array_equal(png, cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    # colour reads and grey PNGs are as before
    np.testing.assert_array_equal(read_frame(tmp_path / "f.png", cv2.IMREAD_COLOR), bgr)
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    assert cv2.imwrite(str(tmp_path / "g.png"), grey)
    np.testing.assert_array_equal(read_frame(tmp_path / "g.png"), grey)


def test_a_16_bit_colour_png_read_grey_matches_its_8_bit_copy(tmp_path):
    """A 16-bit colour PNG read grey (8 bits) gives the cv2.cvtColor grey of its 8-bit copy."""
    from flownet.frame_io import read_frame
    bgr = _colour(1)
    assert cv2.imwrite(str(tmp_path / "f16.png"), bgr.astype(np.uint16) * 257)
    np.testing.assert_array_equal(read_frame(tmp_path / "f16.png"), cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))


def test_the_cache_key_of_png_frames_holds_the_png_version(tmp_path):
    """Caches prepared from PNG frames (read grey by libpng before) are keyed by the PNG decoding's version; a
    cache of JPEG frames (CASME II) keeps its key."""
    from icegan.data import prepare as prep
    keys = {}
    for ext in ("png", "jpg"):
        (tmp_path / ext).mkdir()
        for n in (1, 2, 3):
            cv2.imwrite(str(tmp_path / ext / f"img{n}.{ext}"), _colour(n))
        rec, = ClipList(_write(tmp_path, HEADER + f"p,a,{ext},1,2,3,positive\n", f"{ext}.csv")).records()
        keys[ext] = prep.key_settings(prep._settings(prep.PrepareConfig()), [(rec, "cropped")])
    assert keys["png"] == {**keys["jpg"], "png_version": prep.PNG_VERSION}
    assert "png_version" not in keys["jpg"]


def test_subjects_that_differ_only_in_case_are_refused_naming_both_lines(tmp_path):
    """sub01 and SUB01 passed the clip list and icegan features; icegan loso then refused them. Now the list is
    refused when it is read, naming both lines."""
    csv = _write(tmp_path, HEADER + "sub01,a,v/a,1,2,,positive\n\nSUB01,b,v/b,1,2,,negative\n")
    with pytest.raises(ValueError, match=r"lines 4 and 2: subjects 'clips/SUB01' and 'clips/sub01' differ only in "
                                         r"case") as exc:
        ClipList(csv).records()
    assert str(exc.value).startswith(f"{csv}, lines 4 and 2: ")
    ok = _write(tmp_path, HEADER + "sub01,a,v/a,1,2,,positive\nsub01,b,v/b,1,2,,negative\n", "ok.csv")
    assert [r.subject for r in ClipList(ok).records()] == ["clips/sub01"] * 2


def test_a_row_with_fewer_fields_than_the_header_is_refused(tmp_path):
    """A row cut short after its onset read as a clip with its apex spotted and no label. Now refused, naming the
    line and 'K of M fields'."""
    csv = _write(tmp_path, HEADER + "sub01,a,v/a,46,59,86,positive\nsub03,c,v/c,51\n")
    with pytest.raises(ValueError, match=r"line 3 \(clip 'c'\): no cell for apex, offset, label \(the line has 4 of "
                                         r"the header's 7 fields: a row cut short or a missing comma\?\)") as exc:
        ClipList(csv).records()
    assert str(exc.value).startswith(f"{csv}, line 3 ")


def test_a_row_short_of_an_ignored_column_only_is_kept(tmp_path):
    """A row that lacks only the cell of a column the list does not read (notes) is read as before."""
    csv = _write(tmp_path, HEADER.strip() + ",notes\nsub01,a,v/a,46,59,86,positive,hi\nsub02,b,v/b,4,5,6,negative\n")
    assert [r.class3 for r in ClipList(csv).records()] == [1, 0]


@pytest.mark.parametrize("rows,line", [("sub03,c,v,51,69,,surprise,\nsub01,a,v,46,59,86,positive\n", 2),
                                       ("sub01,a,v,46,59,86,positive\nsub03,c,v,51,69,,surprise,\n", 3)])
def test_a_row_with_more_fields_than_the_header_is_named(tmp_path, rows, line):
    """One field too many on the first data row gave pandas' 'Length of header or names does not match' with no
    line; now every such error names the first long line and its field count."""
    csv = _write(tmp_path, HEADER + rows)
    with pytest.raises(ValueError, match=rf"^{csv}: not a readable CSV table: line {line} has 8 fields, the header 7 ") as exc:
        read_csv_cells(csv)
    assert "Length of header" not in str(exc.value)
    with pytest.raises(ValueError, match=rf"line {line} has 8 fields"):
        ClipList(csv).records()


@pytest.mark.parametrize("encoding,name", [("utf-16", "UTF-16"), ("utf-16-be", "UTF-16"), ("utf-32", "UTF-32")])
def test_a_utf16_or_utf32_csv_is_named_as_such(tmp_path, encoding, name):
    """A UTF-16 file (as Excel's 'Unicode Text' saves) was called 'an image, a workbook or another binary file'."""
    csv = tmp_path / "clips.csv"
    bom = {"utf-16-be": b"\xfe\xff"}.get(encoding, b"")
    csv.write_bytes(bom + (HEADER + "sub01,a,v,46,59,86,positive\n").encode(encoding))
    with pytest.raises(ValueError, match=rf"^{csv}: {name} text .*save it as CSV UTF-8") as exc:
        read_csv_cells(csv)
    assert "binary" not in str(exc.value)
