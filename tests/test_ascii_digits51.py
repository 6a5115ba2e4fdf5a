"""Digits in names and labels are ASCII digits only, as the coding sheets read them (``re.ASCII``, isdecimal and
isascii): Python's ``\\d``, ``str.isdigit()`` and ``int()`` also take Arabic-Indic (``٠١``) and full-width digits, and
``isdigit()`` takes a superscript ``²`` that ``int()`` then refuses with a bare ValueError."""
import pytest

from icegan.data.casme2 import CASME2
from icegan.data.records import subject_number
from icegan.data.samm import SAMM
from icegan.data.smic import SMIC

# -- subject folders --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("loader, name", [(CASME2, "sub٠١"), (CASME2, "Sub０１"), (SAMM, "٠٠٦"), (SMIC, "s١")])
def test_a_folder_named_with_other_digits_is_no_subject_folder(loader, name):
    """Before: taken as a subject folder (the sheets could never name it: they read ASCII digits only)."""
    assert not loader.looks_like_subject(name)
    assert subject_number(name) is None
    assert loader is SMIC or loader.padded_subject(name) is None


def test_smic_tree_passes_over_a_subject_folder_of_other_digits_and_check_names_it(tmp_path):
    """A stray ``s١`` beside ``s1`` is read as any stray folder is: not a subject (no clips, no fold), and
    ``icegan data check`` lists it among the folders not read."""
    from icegan.data.check import check_dataset
    for s in ("s1", "s١"):
        clip = tmp_path / s / "micro" / "negative" / f"{s}_ne_01"
        clip.mkdir(parents=True)
        for n in (1, 2):
            (clip / f"reg_image{n}.bmp").write_bytes(b"")
    ds = SMIC(tmp_path)
    assert ds.subject_folders() == ["s1"]
    assert {r.subject for r in ds.records()} == {"smic/s1"}
    report = check_dataset("smic", tmp_path, read_images=False)
    assert report.other_folders == ["s١"]
    assert "not named as smic subject folders, not read" in report.text() and "s١" in report.text()
