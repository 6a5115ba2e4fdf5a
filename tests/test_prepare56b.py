"""icegan prepare's warning of subject folders not on disk says what stands there instead (a file: an archive not
extracted; a link to a folder that does not exist), as `icegan data check` does since f19f713 (one helper,
check.not_a_folder_text); a subject simply absent keeps the plain wording."""
from __future__ import annotations

import logging
import re

import pytest

CASME2_SHEET = "CASME2-coding-20140508.xlsx"


def test_prepare_says_what_stands_where_a_subject_folder_belongs(shared_data, tmp_path, caplog):
    from icegan.data.prepare import DatasetSpec, PrepareConfig, PrepareError, prepare_dataset
    root, sheet = tmp_path / "casme2", shared_data / "annotations" / CASME2_SHEET
    root.mkdir()
    (root / "sub01").write_bytes(b"PK\x03\x04 an archive")                 # a file where the folder belongs
    (root / "sub02").symlink_to(tmp_path / "nowhere" / "sub02")             # a link to nothing
    (root / "sub03").symlink_to(shared_data / "casme2" / "sub03")           # a real one (not selected)
    cfg = PrepareConfig(datasets=[DatasetSpec("casme2", str(root), str(sheet), subjects=["sub01", "sub02", "sub04"])],
                        cache_root=str(tmp_path / "cache"), progress=False, workers=1)
    with caplog.at_level(logging.WARNING, "icegan.data"), pytest.raises(PrepareError, match="no usable clip"):
        prepare_dataset(cfg)
    line = next(r.getMessage() for r in caplog.records if "subject folders not on disk" in r.getMessage())
    assert re.search(rf"casme2/sub01 \(\d+; {re.escape(str(root / 'sub01'))} is a file, not a folder \(an archive "
                     rf"not extracted\?\)\)", line), line
    assert re.search(rf"casme2/sub02 \(\d+; {re.escape(str(root / 'sub02'))} is a link to "
                     rf"{re.escape(str(tmp_path / 'nowhere' / 'sub02'))}, which does not exist\)", line), line
    n4 = line.split("casme2/sub04 (")[1].split(")")[0]                      # absent: the count alone, as before
    assert n4.isdigit(), line
