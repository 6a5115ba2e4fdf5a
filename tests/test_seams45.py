"""Three user-facing seams: ``icegan generate`` fits an onset image as the generator's training faces were fitted
(and says so), ``icegan predict`` scores a labelled row of another dataset whose label is a class of a one-dataset
model (a cross-dataset test), and ``sde_summary`` gives SMIC the ``label_sets`` key the other datasets have."""
from __future__ import annotations

import json


from icegan.data.composite import sde_summary
from icegan.data.sheets import SheetRow, read_smic_sheet


# --- 3. sde_summary: one schema for every dataset ---------------------------------------------------------------------

def _rows(dataset: str, emotions: list[str]) -> list[SheetRow]:
    return [SheetRow(dataset=dataset, subject="s1", clip=f"c{i}", onset=1, apex=3, offset=5, emotion=e)
            for i, e in enumerate(emotions)]


def test_sde_summary_has_label_sets_for_every_dataset():
    """SMIC (negative / positive / surprise: the MEGC2019 classes, no single-dataset set) has an empty
    ``label_sets``, as the key CASME II and SAMM carry; no rows give the same key (before: absent for both)."""
    smic = sde_summary(_rows("smic", ["negative", "positive", "surprise", "negative"]))
    assert smic == {"label_sets": {}}
    assert sde_summary([]) == {"label_sets": {}}
    casme2 = sde_summary(_rows("casme2", ["happiness", "fear"]))
    assert casme2["label_sets"]["casme2_5"]["clips"] == 1
    for summary in (smic, casme2, sde_summary(_rows("samm", ["Anger"]))):
        assert isinstance(summary["label_sets"], dict)


def test_smic_sheet_sde_summary_has_label_sets(shared_data):
    """The real SMIC-HS-E sheet's rows: ``label_sets`` is there ({}), and stays there through JSON."""
    rows = read_smic_sheet(shared_data / "annotations" / "SMIC-HS-E_annotation.xlsx")
    assert rows and {r.emotion.lower() for r in rows} <= {"negative", "positive", "surprise"}
    assert json.loads(json.dumps(sde_summary(rows))) == {"label_sets": {}}
