"""Errors a new user meets when giving the wrong file: each says what the file is and what to run instead."""
from __future__ import annotations

import pytest

from icegan.data.feature_table import read_feature_table


def test_the_megc2019_release_list_given_as_a_feature_table_says_how_to_read_it(shared_data):
    """The release's combined_3_class2_for_optical_flow.csv is no feature table (no subject, clip, path columns):
    the error points at data.source=megc2019_htnet with the release's folder, and at how a table lists its maps."""
    csv = shared_data / "megc2019_htnet" / "combined_3_class2_for_optical_flow.csv"
    with pytest.raises(ValueError) as err:
        read_feature_table(csv, labelled=False)
    msg = str(err.value)
    assert msg.startswith(f"{csv}: missing column(s) ['subject', 'clip', 'path']")
    assert f"data.source=megc2019_htnet data.root={csv.parent}" in msg
    assert "flow_uvos_28/<sub>_<filename_o> .png" in msg and "clip list" not in msg
