"""Member chains of run headers that come back to a folder already on them (icegan.report): the folder and the header
that lists it are named in one line, instead of the same member followed again and again."""
from __future__ import annotations

import json

import pytest

from icegan.report import check_one_recipe, run_recipe


def _run(folder):
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(f"name: {folder.name}\nseed: 3\nmodel: {{name: ststnet}}\n")
    return folder


def test_two_ensembles_that_list_each_other_are_named_once(tmp_path):
    a, b = tmp_path / "ens_a", tmp_path / "ens_b"
    a.mkdir()
    b.mkdir()
    (a / "ensemble.json").write_text(json.dumps({"members": [{"run": str(b), "weight": 1.0}]}))
    (b / "ensemble.json").write_text(json.dumps({"members": [{"run": str(a), "weight": 1.0}]}))
    assert run_recipe(a) is None
    with pytest.raises(ValueError) as err:
        check_one_recipe("e", [a, _run(tmp_path / "r")])
    msg = str(err.value)
    fb = b / "ensemble.json"
    assert (f"{a} records no recipe (its member {b} records none ({fb} lists {a}, a folder that lists this one (a "
            f"cycle of members): edit {fb} to list the member runs, not a folder on its own chain of members)); give "
            "each recipe its own entry") in msg
    assert msg.count("records none (") == 1 and "\n" not in msg


def test_a_merged_folder_that_lists_itself_is_named(tmp_path):
    m = tmp_path / "merged"
    m.mkdir()
    (m / "merged.json").write_text(json.dumps({"merged_from": [str(m)], "protocols": ["CDE"]}))
    with pytest.raises(ValueError, match=r"merged\.json lists .*merged, its own folder \(a cycle of members\)"):
        check_one_recipe("e", [m, _run(tmp_path / "r")])


def test_a_member_listed_twice_side_by_side_is_not_a_cycle(tmp_path):
    """Only the folders above a member count: two members that are the same run (a weighted pair) still resolve."""
    r = _run(tmp_path / "r")
    e = tmp_path / "ens"
    e.mkdir()
    (e / "ensemble.json").write_text(json.dumps({"members": [{"run": str(r), "weight": 0.5},
                                                             {"run": str(r), "weight": 0.5}]}))
    rec = run_recipe(e)
    assert rec["kind"] == "ensemble" and [m["kind"] for m in rec["members"]] == ["run", "run"]
