"""Tests written by a mutation audit of the code that turns the official coding sheets and the released MEGC2019
feature table into labels, subjects and clips (icegan.labels, icegan.data.composite, icegan.data.sheets,
icegan.data.records, icegan.data.features, icegan.data.feature_table.parse_class_label). Each test fails on a small
deliberate change of that code that the earlier tests let pass (named in its docstring).

Expected values come from sources independent of the code under test: the official coding sheets read here with
openpyxl or csv directly, the MEGC2019 feature table ``combined_3_class2_for_optical_flow.csv`` read with the csv
module, and the composite rules of DESIGN.md ("Datasets and the MEGC2019 composite"), which agree with the ICE-GAN
paper (442 clips, 68 subjects: SMIC 164 / 16, CASME II 145 / 24, SAMM 133 / 28) and with Table V of the SRFlow paper
(CASME II 32 / 88 / 25 and SAMM 26 / 92 / 15 positive / negative / surprise).
"""
from __future__ import annotations

import csv

import pytest

from icegan.data.composite import composite_class, composite_rows
from icegan.data.sheets import CASME2_SHEET, SAMM_SHEET, read_casme2_sheet, read_samm_sheet

CLASS = {"negative": 0, "positive": 1, "surprise": 2}     # DESIGN.md: class ids negative 0, positive 1, surprise 2


@pytest.fixture(scope="module")
def megc_table(shared_data):
    """The released MEGC2019 table, read with the csv module: {(dataset, sub, filename_o): row dict}."""
    with open(shared_data / "megc2019_htnet" / "combined_3_class2_for_optical_flow.csv", newline="") as f:
        return {(r["dataset"], r["sub"], r["filename_o"]): r for r in csv.DictReader(f)}


@pytest.fixture(scope="module")
def sheets(shared_data):
    ann = shared_data / "annotations"
    return {"casme2": read_casme2_sheet(ann / CASME2_SHEET), "samm": read_samm_sheet(ann / SAMM_SHEET)}


@pytest.mark.parametrize("dataset", ["casme2", "samm"])
def test_the_composite_of_each_sheet_is_clip_for_clip_the_released_megc2019_table(sheets, megc_table, dataset):
    """Every clip the composite rules keep from an official sheet, under its subject folder name and with its class,
    is exactly a row of the released MEGC2019 table (``dataset, sub, filename_o, label``), and no row is missed: 145
    CASME II and 133 SAMM clips. The class counts per dataset (test_data_sheets) let through any change that moves
    clips between classes in equal numbers or renames subjects consistently; this does not."""
    got = {(dataset, r.subject, r.clip): c for r, c in composite_rows(sheets[dataset])}
    want = {k: int(r["label"]) for k, r in megc_table.items() if k[0] == dataset}
    assert len(want) == {"casme2": 145, "samm": 133}[dataset]
    assert sorted(set(got) ^ set(want)) == []
    assert {k: c for k, c in got.items() if c != want[k]} == {}


#: one official sheet row of each emotion: (dataset, subject, clip, sheet row, emotion as the sheet writes it in lower
#: case, MEGC2019 class name by the rules of DESIGN.md or None: left out of the composite)
SHEET_ROWS = [
    ("casme2", "sub01", "EP02_01f", 2, "happiness", "positive"),
    ("casme2", "sub01", "EP19_05f", 9, "disgust", "negative"),
    ("casme2", "sub02", "EP01_11f", 11, "repression", "negative"),
    ("casme2", "sub02", "EP11_01", 20, "surprise", "surprise"),
    ("casme2", "sub01", "EP03_02", 3, "others", None),
    ("casme2", "sub09", "EP13_02", 82, "fear", None),
    ("casme2", "sub17", "EP15_01", 171, "sadness", None),
    ("samm", "006", "006_1_2", 15, "anger", "negative"),
    ("samm", "011", "011_4_2", 56, "contempt", "negative"),
    ("samm", "011", "011_2_1", 45, "disgust", "negative"),
    ("samm", "006", "006_3_4", 21, "sadness", "negative"),
    ("samm", "006", "006_5_10", 23, "fear", "negative"),
    ("samm", "007", "007_6_1", 30, "happiness", "positive"),
    ("samm", "006", "006_3_5", 22, "surprise", "surprise"),
    ("samm", "007", "007_4_2", 27, "other", None),
]


@pytest.mark.parametrize("dataset,subject,clip,row,emotion,cls", SHEET_ROWS)
def test_one_sheet_row_of_each_emotion_gets_its_composite_class(sheets, megc_table, dataset, subject, clip, row,
                                                                 emotion, cls):
    """A named row of each emotion of the two sheets: its subject folder (``sub01``, SAMM's ``006`` with its zero
    padding), its sheet row number, its emotion and its MEGC2019 class (repression and contempt negative, CASME II's
    others / fear / sadness and SAMM's other left out), and whether the released table holds it."""
    r = next(r for r in sheets[dataset] if r.row == row)
    assert (r.subject, r.clip, r.emotion.lower()) == (subject, clip, emotion)
    c, why = composite_class(r)
    assert c == (None if cls is None else CLASS[cls]), why
    in_table = megc_table.get((dataset, subject, clip))
    assert (in_table is not None) == (cls is not None)
    if in_table is not None:
        assert int(in_table["label"]) == CLASS[cls]


def test_feature_subjects_are_the_table_s_folder_names_and_the_sheets_subjects(shared_data, megc_table, sheets):
    """The feature loader's subject of a clip is ``<dataset>/<sub>`` with ``sub`` exactly as the table writes it:
    SAMM's ``006`` keeps its zero padding, as SMIC's ``s01`` and CASME II's ``sub01`` do (68 subjects: 16, 24, 28),
    and the CASME II and SAMM subjects are those the coding sheets give the same clips, so that a clip's LOSO fold
    is one subject whichever reader it came through. Mutation killed: the sub read as a number (``006`` → ``6``),
    which kept every count."""
    from icegan.data.features import read_megc2019_table
    t = read_megc2019_table(shared_data / "megc2019_htnet")
    want = {(d, f"{d}/{sub}", clip) for d, sub, clip in megc_table}
    assert set(zip(t["dataset"], t["subject"], t["clip"])) == want
    assert {"samm/006", "samm/037", "casme2/sub01", "casme2/sub26", "smic/s01", "smic/s20"} <= set(t["subject"])
    assert t.groupby("dataset")["subject"].nunique().to_dict() == {"casme2": 24, "samm": 28, "smic": 16}
    for dataset in ("casme2", "samm"):
        from_sheet = {(f"{dataset}/{r.subject}", r.clip) for r, _ in composite_rows(sheets[dataset])}
        assert {(s, c) for d, s, c in zip(t["dataset"], t["subject"], t["clip"]) if d == dataset} == from_sheet


@pytest.mark.parametrize("written,name", [("casme2", "casme2"), ("CASME_2", "casme2"), ("CASMEII", "casme2"),
                                          ("SAMM", "samm"), ("smic", "smic"), ("SMIC_HS", "smic"),
                                          ("SMIC-HS", "smic"), ("CASME3", "casme3")])
def test_dataset_aliases_of_the_megc2019_table(written, name):
    """The dataset spellings of MEGC2019 tables all name the composite's three datasets (``SMIC_HS`` is SMIC, not a
    fourth dataset ``smic_hs`` whose subjects would form folds of their own and that ``datasets=['smic']`` would not
    find); another name is kept as it is, lower-cased. Mutations killed: ``casmeii`` mapped to ``samm``, ``smic_hs``
    left unmapped."""
    from icegan.data.features import dataset_name
    assert dataset_name(written) == name


def test_emotion_counts_and_single_dataset_labels_read_any_case_and_spacing():
    """``emotion_class_counts`` and ``parse_class_label`` under ``casme2_5`` / ``samm_5`` read an emotion in any case
    and spacing, as their docstrings say and as the SAMM sheet writes them (``Anger``); the class ids are the sets'
    order (samm_5: anger 0, contempt 1, happiness 2, surprise 3, other 4; casme2_5: happiness 0, disgust 1,
    repression 2, surprise 3, others 4). Mutations killed: counts not stripping spaces (`` Anger`` counted as no
    class), single-dataset names matched case-sensitively (a table of ``Anger`` refused)."""
    from icegan.data.feature_table import parse_class_label
    from icegan.labels import emotion_class_counts
    counts = emotion_class_counts([" Anger", "anger ", "CONTEMPT", "Other", "Fear"], "samm")
    assert counts == {"samm_5": {"classes": {"anger": 2, "contempt": 1, "happiness": 0, "surprise": 0, "other": 1},
                                 "no_class": {"fear": 1}}}
    assert [parse_class_label(e, "t.csv, line 2", labels="samm_5") for e in ("Anger", " Other ", "HAPPINESS")] == \
        [0, 4, 2]
    assert [parse_class_label(e, "t.csv, line 2", labels="casme2_5") for e in ("Repression", "Others")] == [2, 4]


def test_subject_names_in_a_sheet_and_on_disk_are_read_whole():
    """A sheet's subject prefix is read in any case (``Sub01`` is CASME II's ``sub01``, ``S20`` SMIC's ``s20``), and
    :func:`subject_number` splits only a name that is letters then a number (``sub01_old``, ``s1a`` are no subject
    folder: taking them for ``sub01`` / ``s1`` would read another folder's frames). Mutations killed: the prefix
    compared case-sensitively (``Sub01`` refused), ``re.match`` for ``re.fullmatch``."""
    from icegan.data.records import subject_number
    from icegan.data.sheets import _casme2_subject, _samm_subject, _smic_subject
    assert [_casme2_subject(v) for v in ("01", 1, "Sub01", "sub7")] == ["sub01", "sub01", "sub01", "sub07"]
    assert [_smic_subject(v) for v in ("S20", "s3", 3)] == ["s20", "s3", "s3"]
    assert [_samm_subject(v) for v in ("006", 6, 6.0)] == ["006", "006", "006"]
    assert [subject_number(n) for n in ("sub02", "sub2", "007", "s1")] == [("sub", 2), ("sub", 2), ("", 7), ("s", 1)]
    assert [subject_number(n) for n in ("sub01_old", "s1a", "notes", "")] == [None, None, None, None]


def test_casme2_single_dataset_counts_read_emotions_in_any_case():
    """The CASME II 5-class counts of ``icegan data composite`` count an emotion written ``Happiness`` or
    ``REPRESSION`` (a sheet edited by hand) in its class, as :func:`casme2_class5` and ``data.labels=casme2_5`` read
    it. Mutation killed: the counter keyed on the emotion as written, so those clips vanished from every class."""
    from icegan.data.composite import sde_summary
    from icegan.data.sheets import SheetRow
    rows = [SheetRow("casme2", "sub01", f"EP0{i}_01", 1, 5, 9, e)
            for i, e in enumerate(("Happiness", "happiness", "REPRESSION", "Others", "Fear"))]
    s = sde_summary(rows)
    assert s["class5"] == {"happiness": 2, "disgust": 0, "repression": 1, "surprise": 0, "others": 1}
    assert s["excluded_emotions"] == {"fear": 1}
    assert s["label_sets"]["casme2_5"]["classes"] == s["class5"]
