"""bench/map_tables.py's command line reports only the tables it was asked to write."""
import numpy as np
import pandas as pd

from _bench import load_bench

from icegan.data.features import read_megc2019_table


def test_map_tables_subset_only_says_nothing_of_a_mixed_table(shared_data, tmp_path, capsys):
    """With --subset alone no mixed table is written, so the summary line about it must not be printed; with --mixed
    it is, and counts the exported clips among the 442."""
    mod = load_bench("map_tables")
    root = shared_data / "megc2019_htnet"
    r = read_megc2019_table(root, ["casme2"]).iloc[0]
    np.save(tmp_path / "m.npy", np.full((3, 28, 28), 0.5, np.float32))
    exported = tmp_path / "features.csv"
    pd.DataFrame([{"dataset": r["dataset"], "subject": r["subject"], "clip": r["clip"], "label": r["label"],
                   "path": "m.npy"}]).to_csv(exported, index=False)
    assert mod.main([str(exported), "--megc-root", str(root), "--subset", str(tmp_path / "s.csv")]) == 0
    out = capsys.readouterr().out
    assert "s.csv: 1 clips" in out and "mixed table" not in out and not (tmp_path / "x.csv").exists()
    assert mod.main([str(exported), "--megc-root", str(root), "--mixed", str(tmp_path / "x.csv")]) == 0
    assert "1 of 442 composite clips carry the exported maps in the mixed table" in capsys.readouterr().out
