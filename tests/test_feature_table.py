"""Your own features in one CSV (`data.source=table`): the same clips read from a table equal the MEGC2019 loader's,
labels by name, prefixes, per-clip min-max normalisation, every bad input named by line and clip, and `icegan loso`
on a table giving the same predictions as on megc2019_htnet."""
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from _bench import load_bench

from icegan.cli import main
from icegan.commands.loso import LosoConfig
from icegan.config import ConfigError, load_config
from icegan.data.feature_table import load_table_features, minmax_per_clip, read_feature_table
from icegan.data.features import CSV_NAME, load_megc2019_features, read_megc2019_table


@pytest.fixture(scope="module")
def casme2_maps(shared_data):
    """The composite's CASME II clips: their table (absolute PNG paths) and features, from the MEGC2019 loader."""
    root = shared_data / "megc2019_htnet"
    return read_megc2019_table(root, ["casme2"]), load_megc2019_features(root, ["casme2"])


def _write(tmp_path, rows, name="features.csv"):
    path = tmp_path / name
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_png_and_npy_tables_equal_the_megc2019_loader(casme2_maps, tmp_path):
    table, fs = casme2_maps
    names = {0: "negative", 1: "positive", 2: "surprise"}
    (tmp_path / "maps").mkdir()
    png_rows, npy_rows = [], []
    for i, r in table.iterrows():
        sub = r["subject"].split("/")[1]
        png_rows.append({"dataset": "CASME_2", "subject": sub, "clip": r["clip"], "label": names[r["label"]],
                         "path": r["path"]})                                       # absolute paths, class names
        arr = fs.features[i].numpy()
        if i % 2:
            arr = arr.transpose(1, 2, 0)                                           # (H, W, 3) is accepted too
        np.save(tmp_path / "maps" / f"{i}.npy", arr)
        npy_rows.append({"subject": r["subject"], "clip": r["clip"], "label": r["label"],   # prefixed, no dataset
                         "path": f"maps/{i}.npy"})                                 # relative to the CSV
    for rows in (png_rows, npy_rows):
        got = load_table_features(_write(tmp_path, rows))
        assert got.samples[["dataset", "subject", "clip", "label"]].equals(fs.samples[["dataset", "subject", "clip",
                                                                                         "label"]])
        torch.testing.assert_close(got.features, fs.features, rtol=0, atol=0)


def test_minmax_per_clip_known_values():
    x = torch.tensor([[[[2.0, 4.0], [6.0, 10.0]], [[-1.0, -1.0], [-1.0, -1.0]], [[0.0, 0.5], [1.0, 0.25]]]])
    y = minmax_per_clip(x)
    torch.testing.assert_close(y[0, 0], torch.tensor([[0.0, 0.25], [0.5, 1.0]]))
    torch.testing.assert_close(y[0, 1], torch.full((2, 2), 0.5))                   # a constant channel
    torch.testing.assert_close(y[0, 2], torch.tensor([[0.0, 0.5], [1.0, 0.25]]))   # already [0, 1] and spanning


def test_raw_flow_needs_normalize_minmax(tmp_path):
    rng = np.random.default_rng(0)
    raw = rng.normal(0, 2, (2, 3, 8, 8)).astype(np.float32)                        # flow in pixels, signed
    rows = []
    for i in range(2):
        np.save(tmp_path / f"{i}.npy", raw[i])
        rows.append({"dataset": "mydata", "subject": f"s{i}", "clip": "c1", "label": i, "path": f"{i}.npy"})
    csv = _write(tmp_path, rows)
    with pytest.raises(ValueError, match=r"line 2 \(clip 'c1'\).*data.normalize=minmax"):
        load_table_features(csv)
    fs = load_table_features(csv, normalize="minmax")
    torch.testing.assert_close(fs.features, minmax_per_clip(torch.from_numpy(raw)))
    assert fs.samples["subject"].tolist() == ["mydata/s0", "mydata/s1"]
    assert load_table_features(csv, datasets=["mydata"], normalize="minmax").features.shape == (2, 3, 8, 8)


GOOD = {"dataset": "casme2", "subject": "sub01", "clip": "EP01", "label": "0", "path": "a.npy"}


@pytest.mark.parametrize("edit,array,msg", [
    ({"label": "happy"}, None, r"label 'happy' is neither a class id 0..2 nor one of \['negative'"),
    ({"label": "3"}, None, "label '3'"),
    ({"subject": ""}, None, "empty subject"),
    ({"dataset": "casme 2"}, None, "dataset name 'casme 2' is not usable"),
    ({"subject": "samm/006"}, None, "prefixed with 'samm' but the dataset column says 'casme2'"),
    ({"path": "absent.npy"}, None, "features file not found"),
    ({"path": "."}, None, r"is a folder, not a features file"),        # was "not found", for a path that exists
    ({"path": "a.txt"}, None, "unknown features file type '.txt'"),
    ({}, np.zeros((2, 8, 8)), r"shape \(2, 8, 8\); expected \(3, H, W\) or \(H, W, 3\)"),
    ({}, np.zeros((3, 8, 6)), "must be square"),
    ({}, np.full((3, 8, 8), np.nan), "NaN or Inf"),
    ({}, np.ones((3, 8, 8), dtype=bool), "holds bool values; expected real numbers"),
    ({}, np.ones((3, 8, 8), dtype=np.uint8), None),        # integers in [0, 1] are accepted as they are
    ({}, np.full((3, 8, 8), "a"), "expected real numbers"),
])
def test_bad_rows_name_the_line_and_clip(tmp_path, edit, array, msg):
    np.save(tmp_path / "a.npy", np.full((3, 8, 8), 0.5, dtype=np.float32) if array is None else array)
    (tmp_path / "a.txt").write_text("x")
    np.save(tmp_path / "ok.npy", np.full((3, 8, 8), 0.5, dtype=np.float32))
    other = dict(GOOD, clip="EP00", subject="sub02", path="ok.npy")
    csv = _write(tmp_path, [other, dict(GOOD, **edit)])
    if msg is None:
        assert load_table_features(csv).features.shape == (2, 3, 8, 8)
        return
    with pytest.raises((ValueError, FileNotFoundError)) as exc:
        load_table_features(csv)
    assert f"{csv}, line 3 (clip 'EP01')" in str(exc.value)
    assert re.search(msg, str(exc.value)), str(exc.value)


def test_unreadable_map_files_name_the_line_clip_and_file(tmp_path):
    """A grey or transparent PNG map, a PNG that is no image and an .npy whose header is damaged are errors that
    begin with the table's line and clip, then the map file."""
    np.save(tmp_path / "ok.npy", np.full((3, 8, 8), 0.5, dtype=np.float32))
    Image.new("L", (8, 8)).save(tmp_path / "grey.png")
    rgba = Image.new("RGBA", (8, 8), (10, 20, 30, 255))
    rgba.putpixel((0, 0), (10, 20, 30, 0))
    rgba.save(tmp_path / "clear.png")
    (tmp_path / "junk.png").write_bytes(b"not an image at all")
    (tmp_path / "bad.npy").write_bytes(b"\x93NUMPY\x01\x00" + b"garbage header bytes")
    for name, said in (("grey.png", "is a L-mode image"), ("clear.png", "is an RGBA image with transparent pixels"),
                       ("junk.png", "cannot be read as an image"), ("bad.npy", "cannot be read as a NumPy array")):
        csv = _write(tmp_path, [dict(GOOD, clip="EP00", subject="sub02", path="ok.npy"), dict(GOOD, path=name)])
        with pytest.raises(ValueError) as exc:
            load_table_features(csv)
        assert str(exc.value).startswith(f"{csv}, line 3 (clip 'EP01'): {tmp_path / name} {said}"), str(exc.value)


@pytest.mark.parametrize("write", [
    lambda f: np.save(f, np.array([{"u": 1}], dtype=object)),                  # an object array
    lambda f: f.write_bytes(__import__("pickle").dumps({"u": np.zeros(3)})),  # a pickle named .npy
    lambda f: f.write_text("u,v\n1,2\n"),                                     # another kind of file
], ids=["object-array", "pickle", "text"])
def test_a_pickled_npy_is_refused_without_unsafe_advice(tmp_path, write):
    """A map file numpy would only open with allow_pickle=True is named as not a plain numeric .npy map; the error
    does not advise loading it unsafely (numpy's own message does)."""
    write(tmp_path / "a.npy")
    np.save(tmp_path / "ok.npy", np.full((3, 8, 8), 0.5, dtype=np.float32))
    csv = _write(tmp_path, [dict(GOOD, clip="EP00", subject="sub02", path="ok.npy"), GOOD])
    with pytest.raises(ValueError) as exc:
        load_table_features(csv)
    msg = str(exc.value)
    assert msg.startswith(f"{csv}, line 3 (clip 'EP01'): {tmp_path / 'a.npy'} is not a plain numeric .npy map")
    assert "allow_pickle" not in msg and "unsafe" not in msg and "trust" not in msg


def test_table_level_errors(tmp_path):
    with pytest.raises(FileNotFoundError) as missing:
        read_feature_table(tmp_path / "none.csv")
    assert str(missing.value) == f"feature table not found: {tmp_path / 'none.csv'} (data.table)"
    with pytest.raises(FileNotFoundError) as missing:
        read_megc2019_table(tmp_path)
    assert str(missing.value) == (f"MEGC2019 feature table not found: {tmp_path / CSV_NAME} (set data.root or "
                                  "ICEGAN_SHARED_DATA)")
    csv = _write(tmp_path, [{"subject": "sub01", "clip": "a", "label": 0}])
    with pytest.raises(ValueError, match=r"missing column\(s\) \['path'\]") as columns:
        read_feature_table(csv)
    assert str(columns.value).startswith(f"{csv}: missing column(s) ['path']; found ")
    csv.write_text("dataset,subject,clip,label,path\n")
    with pytest.raises(ValueError) as header_only:
        read_feature_table(csv)
    assert str(header_only.value) == f"{csv}: no rows"
    csv = _write(tmp_path, [{"subject": "sub01", "clip": "a", "label": 0, "path": "a.npy"}])
    with pytest.raises(ValueError, match="subject 'sub01' has no dataset") as no_dataset:
        read_feature_table(csv)
    assert str(no_dataset.value).startswith(f"{csv}, line 2 ")
    csv = _write(tmp_path, [dict(GOOD), dict(GOOD, path="b.npy")])
    with pytest.raises(ValueError, match=r"line 3: clip 'EP01' of subject 'casme2/sub01' appears twice") as twice:
        read_feature_table(csv)
    assert str(twice.value).startswith(f"{csv}, line 3: ")
    csv = _write(tmp_path, [dict(GOOD)])
    with pytest.raises(ValueError, match=r"dataset\(s\) \['samm'\] not in"):
        read_feature_table(csv, ["samm"])


def test_sizes_must_agree(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((3, 8, 8), np.float32))
    np.save(tmp_path / "b.npy", np.zeros((3, 16, 16), np.float32))
    csv = _write(tmp_path, [GOOD, dict(GOOD, clip="EP02", path="b.npy")])
    # without data.size the first map sets the size: the message names that map, not data.size (a key icegan
    # predict does not have)
    with pytest.raises(ValueError, match=r"line 3 \(clip 'EP02'\).*is 16×16, expected 8×8 \(the side of the table's "
                                         r"first map, line 2 \(clip 'EP01', .*a\.npy\)") as exc:
        load_table_features(csv)
    assert "data.size" not in str(exc.value)
    with pytest.raises(ValueError, match=r"line 2 \(clip 'EP01'\).*is 8×8, expected 28×28 \(data.size; data.size=0 "
                                         r"takes the size of the table's maps, when all have one, and "
                                         r"model.input_size resizes them for the recognizer\)"):
        load_table_features(csv, size=28)
    rgba = np.full((8, 8, 4), 255, np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "opaque.png")      # an opaque alpha channel: read as RGB
    assert load_table_features(_write(tmp_path, [dict(GOOD, path="opaque.png")])).features.shape == (1, 3, 8, 8)
    rgba[2, 3, 3] = 0
    Image.fromarray(rgba, "RGBA").save(tmp_path / "clear.png")       # a transparent pixel: refused, not dropped
    with pytest.raises(ValueError, match=r"clear.png is an RGBA image with transparent pixels \(alpha down to 0\)"):
        load_table_features(_write(tmp_path, [dict(GOOD, path="clear.png")]))
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "g.png")
    csv = _write(tmp_path, [dict(GOOD, path="g.png")])
    with pytest.raises(ValueError, match="L-mode image"):
        load_table_features(csv)


@pytest.mark.parametrize("overrides,msg", [
    (["data.source=table"], "needs data.table"),
    (["data.table=x.csv"], "read only with data.source=table"),
    (["data.normalize=minmax"], "applies to data.source=table"),
    (["data.source=table", "data.table=x.csv", "data.root=/data"], "give data.table"),
    (["data.source=table", "data.table=x.csv", "data.normalize=zscore"], "data.normalize"),
])
def test_config_errors(overrides, msg):
    with pytest.raises(ConfigError, match=msg):
        load_config(LosoConfig, None, overrides)


def test_loso_on_a_table_equals_loso_on_megc2019(casme2_maps, tmp_path, capsys):
    """The composite's CASME II clips listed in a table give byte-identical predictions to the same clips read from
    megc2019_htnet (logistic regression, 3 folds); a missing file is a one-line error naming its line and clip."""
    table, _ = casme2_maps
    rows = [{"dataset": r["dataset"], "subject": r["subject"], "clip": r["clip"], "label": r["label"],
             "path": r["path"]} for _, r in table.iterrows()]
    csv = _write(tmp_path, rows)
    common = ["--config", "configs/features_logreg.yaml", "--no-progress", "max_folds=3", "workers=1"]
    assert main(["loso", *common, "--out", str(tmp_path / "t"), "data.source=table", f"data.table={csv}"]) == 0
    assert main(["loso", *common, "--out", str(tmp_path / "m"), "data.datasets=[casme2]"]) == 0
    assert (tmp_path / "t" / "predictions.csv").read_text() == (tmp_path / "m" / "predictions.csv").read_text()
    rows[5]["path"] = str(tmp_path / "gone.png")
    csv = _write(tmp_path, rows, "broken.csv")
    capsys.readouterr()
    assert main(["loso", *common, "--out", str(tmp_path / "b"), "data.source=table", f"data.table={csv}"]) == 2
    err = capsys.readouterr().err
    assert f"line 7 (clip '{rows[5]['clip']}')" in err and "gone.png" in err


def test_line_numbers_count_blank_lines_and_ragged_rows_name_the_file(tmp_path):
    np.save(tmp_path / "a.npy", np.full((3, 8, 8), 0.5, dtype=np.float32))
    csv = tmp_path / "blank.csv"
    csv.write_text("dataset,subject,clip,label,path\ncasme2,sub01,EP01,0,a.npy\n\n\ncasme2,sub02,EP02,7,a.npy\n")
    with pytest.raises(ValueError, match=r"blank.csv, line 5 \(clip 'EP02'\): label '7'"):
        read_feature_table(csv)
    csv.write_text("dataset,subject,clip,label,path\ncasme2,sub01,EP01,0,a.npy,extra\n")
    with pytest.raises(ValueError, match=r"blank.csv: not a readable CSV table"):
        read_feature_table(csv)
    # a row cut short is named as such, not taken for an unlabelled clip (predict) or a clip with empty cells
    csv.write_text("dataset,subject,clip,label,path\ncasme2,sub01,EP01,0,a.npy\ncasme2,casme2/sub01,EPX\n")
    for labelled in (True, False):
        with pytest.raises(ValueError, match=r"blank.csv, line 3 \(clip 'EPX'\): empty (label, )?path \(the line "
                                             r"has 3 of the header's 5 fields: a row cut short or a missing comma\?\)$"):
            read_feature_table(csv, labelled=labelled)
    csv.write_text("dataset,subject,clip,label,path\ncasme2,sub01,EP01,,a.npy\n")       # all fields, label empty
    with pytest.raises(ValueError, match="empty label .a clip without a label can be scored by `icegan predict`"):
        read_feature_table(csv)
    assert read_feature_table(csv, labelled=False)["label"].tolist() == [-1]


def test_a_clip_list_given_as_a_feature_table_says_to_compute_its_maps(tmp_path):
    """A clip list (frames, onset, ...) where a feature table is wanted: the message says which command makes the
    table; for icegan predict (labelled=False) the label column is said to be optional."""
    csv = tmp_path / "my_clips.csv"
    csv.write_text("subject,clip,frames,onset,apex,offset,label\nsub01,EP01,frames/EP01,1,5,9,negative\n")
    for labelled, label in ((True, "label, path"), (False, r"label \(optional here\), path")):
        with pytest.raises(ValueError, match=rf"missing column\(s\) \['path'\].*a feature table needs dataset, "
                                             rf"subject, clip, {label}.*This is a clip list \(frames, onset\): compute "
                                             rf"its maps first with `icegan features --config CONFIG --clips "):
            read_feature_table(csv, labelled=labelled)


def test_map_tables_pair_the_released_maps_with_exported_ones(shared_data, tmp_path):
    """bench/map_tables.py: the subset table holds the released maps of exactly the exported clips, the mixed table
    the whole composite with those clips' maps swapped for the exported ones (and equal to the released loader's
    features elsewhere); a clip outside the composite or with another label is named."""
    mod = load_bench("map_tables")
    root = shared_data / "megc2019_htnet"
    comp = read_megc2019_table(root, ["casme2", "samm", "smic"])
    picked = comp[comp["dataset"] == "casme2"].iloc[[0, 5]]
    (tmp_path / "maps").mkdir()
    rows = []
    for i, r in enumerate(picked.itertuples()):
        np.save(tmp_path / "maps" / f"m{i}.npy", np.full((3, 28, 28), 0.25 * (i + 1), np.float32))
        rows.append({"dataset": r.dataset, "subject": r.subject, "clip": r.clip, "label": r.label,
                     "path": f"maps/m{i}.npy"})
    exported = _write(tmp_path, rows)
    subset, mixed = mod.map_tables(exported, root)
    assert list(zip(subset["subject"], subset["clip"])) == list(zip(picked["subject"], picked["clip"]))
    assert list(subset["path"]) == [str(Path(p).resolve()) for p in picked["path"]]
    assert len(mixed) == len(comp) == 442
    swapped = mixed["path"].str.endswith(".npy")
    assert swapped.sum() == 2 and list(mixed.loc[swapped, "clip"]) == list(picked["clip"])
    # the mixed table through the feature-table loader: the exported values on the two clips, the released elsewhere
    table = tmp_path / "mixed.csv"
    mixed.to_csv(table, index=False)
    fs = load_table_features(table, size=28)
    ref = load_megc2019_features(root, ["casme2", "samm", "smic"])
    sw = torch.tensor(swapped.to_numpy())
    assert torch.equal(fs.features[~sw], ref.features[~sw])
    assert torch.allclose(fs.features[sw][0], torch.full((3, 28, 28), 0.25)) and torch.equal(fs.labels, ref.labels)
    bad = dict(rows[0], label=(int(rows[0]["label"]) + 1) % 3)
    with pytest.raises(ValueError, match=re.escape(f"{rows[0]['subject']}/{rows[0]['clip']} has label")):
        mod.map_tables(_write(tmp_path, [bad], "bad.csv"), root)
    with pytest.raises(ValueError, match="not a clip of the MEGC2019 composite"):
        mod.map_tables(_write(tmp_path, [dict(rows[0], clip="EP99_99")], "bad2.csv"), root)


def test_an_empty_table_file_is_named(tmp_path, capsys):
    """A 0-byte features.csv is one error line naming the file and saying it is empty (not pandas' bare 'No columns
    to parse from file')."""
    csv = tmp_path / "features.csv"
    csv.write_bytes(b"")
    with pytest.raises(ValueError, match=re.escape(f"{csv}: the file is empty")):
        read_feature_table(csv)
    assert main(["loso", "--out", str(tmp_path / "r"), "--no-progress", "data.source=table",
                 f"data.table={csv}"]) == 2
    err = capsys.readouterr().err
    assert f"{csv}: the file is empty" in err and "Traceback" not in err


def test_an_empty_npy_map_names_the_map_and_the_clip(tmp_path):
    """A 0-byte .npy map is a ValueError naming the CSV line, the clip and the map file, not numpy's raw EOFError."""
    (tmp_path / "a.npy").write_bytes(b"")
    csv = _write(tmp_path, [GOOD])
    with pytest.raises(ValueError) as exc:
        load_table_features(csv)
    assert str(exc.value).startswith(f"{csv}, line 2 (clip 'EP01'): {tmp_path / 'a.npy'} is empty (0 bytes)")
    # cut inside numpy's 6-byte magic string: cut short (numpy itself speaks of pickled data)
    (tmp_path / "a.npy").write_bytes(b"\x93NU")
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path / 'a.npy'} is cut short (3 bytes); the map was not "
                                                   "written completely")):
        load_table_features(csv)
