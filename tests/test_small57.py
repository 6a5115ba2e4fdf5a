"""bench/map_tables.py reports only the tables it was asked to write; a reused run leaves its source's writer lock."""
from pathlib import Path

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


def test_a_copied_run_leaves_the_source_runs_writer_lock_behind(tmp_path):
    """copy_finished_run (icegan suite --reuse): the source run's .lock (its writer's pid, icegan.protocol.LOCK_FILE)
    is not a result and is not copied; every other file is."""
    from icegan.commands.loso import LosoConfig
    from icegan.config import load_config
    from icegan.protocol import LOCK_FILE
    from icegan.suite import copy_finished_run

    configs = Path(__file__).resolve().parents[1] / "configs"
    src = tmp_path / "pool" / "old_s3"
    src.mkdir(parents=True)
    (src / "predictions.csv").write_text("clip,y_pred\na,1\n")
    (src / LOCK_FILE).write_text("12345\n")
    dst = tmp_path / "new" / "new_s3"
    copy_finished_run(src, dst, load_config(LosoConfig, configs / "features_ststnet.yaml", ["seed=3", "name=new_s3"]))
    assert (dst / "predictions.csv").read_text() == "clip,y_pred\na,1\n"
    assert not (dst / LOCK_FILE).exists() and (src / LOCK_FILE).read_text() == "12345\n"
