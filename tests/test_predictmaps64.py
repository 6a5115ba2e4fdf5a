"""`icegan fit` / `icegan predict` and the maps they read: maps not min–max normalised per clip are warned about
under normalize=none; a model of the released maps knows them by content; a table of the released maps is known
as the released maps."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from _feature_tables import write_feature_table

from icegan.cli import main
from icegan.commands.loso import LosoConfig
from icegan.commands.predict import fit
from icegan.config import load_config
from icegan.data.feature_table import load_table_features
from icegan.data.features import FeatureSet, read_megc2019_table
from icegan.data.toy_features import make_toy_features
from icegan.saved_recognizer import maps_provenance

LOGGER = "icegan.data.feature_table"


def _released_table(shared_data: Path, out: Path, dataset: str | None = None) -> Path:
    """A feature table ``out`` of the released SAMM maps (absolute paths into ``flow_uvos_28/``), unlabelled, with the
    dataset column renamed ``dataset`` when given (the subject ids then unprefixed, as a table gives them)."""
    t = read_megc2019_table(shared_data / "megc2019_htnet", ["samm"])
    rows = pd.DataFrame({"dataset": dataset or t["dataset"],
                         "subject": t["subject"].str.split("/", n=1).str[1], "clip": t["clip"], "path": t["path"]})
    rows.to_csv(out, index=False)
    return out


def test_maps_not_normalised_per_clip_are_warned_about_once(tmp_path, caplog):
    """normalize=none: clips whose channels do not span [0, 1] (here squeezed into [0.25, 0.75]) are scored as they
    are, but one warning counts them, names the first line and the minmax setting."""
    fs = make_toy_features(n_subjects_per_dataset=1, seed=5)
    squeezed = write_feature_table(tmp_path, FeatureSet(fs.samples, 0.25 + 0.5 * fs.features), labels="empty",
                                   name="squeezed.csv")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        got = load_table_features(squeezed, labelled=False)
    assert np.allclose(got.features.numpy(), 0.25 + 0.5 * fs.features.numpy())     # warned, not changed
    warned = [r.getMessage() for r in caplog.records if "normalised" in r.getMessage()]
    assert len(warned) == 1
    assert (f"{len(fs.samples)} of {len(fs.samples)} clips" in warned[0] and "line 2 (clip" in warned[0]
            and "--normalize minmax" in warned[0] and "data.normalize=minmax" in warned[0])
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        load_table_features(squeezed, labelled=False, normalize="minmax")
    assert "normalised" not in caplog.text


def test_normalised_maps_draw_no_warning(tmp_path, caplog):
    """Maps min–max normalised per clip stay quiet: exactly [0, 1], float rounding short of 1 (an `icegan features`
    table's maps end at 0.99995), and constant channels (minmax_per_clip makes them 0.5)."""
    fs = make_toy_features(n_subjects_per_dataset=1, seed=5)
    x = fs.features.clone() * (1 - 5e-5)
    x[0, 2] = 0.5
    table = write_feature_table(tmp_path, FeatureSet(fs.samples, x), labels="empty")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        load_table_features(table, labelled=False)
    assert "normalised" not in caplog.text


def test_a_table_of_the_released_maps_draws_no_normalisation_warning(shared_data, tmp_path, caplog):
    """All 442 released maps span 0..255 in every channel: a table of them is not warned about."""
    t = read_megc2019_table(shared_data / "megc2019_htnet")
    t.assign(subject=t["subject"].str.split("/", n=1).str[1])[["dataset", "subject", "clip", "label", "path"]].to_csv(
        tmp_path / "all.csv", index=False)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert len(load_table_features(tmp_path / "all.csv").samples) == 442
    assert "normalised" not in caplog.text


def test_a_model_of_the_released_maps_knows_them_under_another_dataset_name(shared_data, tmp_path, capsys):
    """Fitted on data.source=megc2019_htnet, a model records its maps' SHA-256: its own training maps under another
    dataset name are said to be training clips (was: UF1 1.0, nothing said)."""
    _, record = fit(load_config(LosoConfig, None, ["model.name=logreg", "threads=1", "data.datasets=[samm]"]),
                    tmp_path / "m.pt", progress=False)
    assert len(record["map_sha256"]) == record["clips"] > 0
    table = _released_table(shared_data, tmp_path / "renamed.csv", dataset="mydata")
    assert main(["predict", "--model", str(tmp_path / "m.pt"), "--table", str(table),
                 "--out", str(tmp_path / "p.csv")]) == 0
    assert f"{record['clips']} of these {record['clips']} clips were in the training set" in capsys.readouterr().err


def test_a_table_of_the_released_maps_is_known_as_the_released_maps(shared_data, tmp_path, capsys):
    """A table without provenance.json whose maps all lie in the release's flow_uvos_28/ is the released maps: a
    model fitted on SRFlowNet maps warns on it (was: nothing said). A table of other maps stays unknown."""
    d = tmp_path / "srf"
    d.mkdir()
    (d / "provenance.json").write_text(json.dumps({"flow": {"method": "srflownet"}, "weights": {}, "size": 28}))
    train = write_feature_table(d, make_toy_features(n_subjects_per_dataset=2))
    fit(load_config(LosoConfig, None, ["model.name=logreg", "data.source=table", f"data.table={train}",
                                       "threads=1"]), tmp_path / "m.pt", progress=False)
    released = _released_table(shared_data, tmp_path / "released.csv")
    assert main(["predict", "--model", str(tmp_path / "m.pt"), "--table", str(released),
                 "--out", str(tmp_path / "p.csv")]) == 0
    assert ("trained on srflownet flow (28 px maps), these are the released megc2019_htnet maps"
            in capsys.readouterr().err)
    paths = pd.read_csv(released)["path"]
    assert maps_provenance("table", released, paths) == {"maps": "megc2019_htnet"}
    assert maps_provenance("table", released) == {}                         # the paths unknown: unknown
    mine = tmp_path / "flow_uvos_28"                                         # a folder of that name, no release
    mine.mkdir()
    other = write_feature_table(tmp_path, make_toy_features(n_subjects_per_dataset=1, seed=5), name="other.csv")
    assert maps_provenance("table", other, [str(mine / "0.npy")]) == {}


def test_a_model_of_a_table_of_the_released_maps_records_them(shared_data, tmp_path):
    """Fitted on a table of the released maps, a model records them as the released maps, as one fitted on
    data.source=megc2019_htnet does."""
    t = _released_table(shared_data, tmp_path / "t.csv")
    t2 = read_megc2019_table(shared_data / "megc2019_htnet", ["samm"])
    pd.read_csv(t).assign(label=t2["label"].to_numpy()).to_csv(t, index=False)
    _, record = fit(load_config(LosoConfig, None, ["model.name=logreg", "data.source=table", f"data.table={t}",
                                                   "threads=1"]), tmp_path / "m.pt", progress=False)
    assert record["maps"] == {"maps": "megc2019_htnet"}
