"""The precomputed MEGC2019 feature loader on the real data, and its errors on bad input."""
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from icegan.data.features import (CSV_NAME, FLOW_DIR, MEGC2019Features, dataset_name, load_megc2019_features,
                                  megc2019_layout, read_megc2019_table, recenter_flow, validate_samples)
from icegan.data.toy_features import make_toy_features


@pytest.fixture(scope="module")
def megc(shared_data):
    return load_megc2019_features(shared_data / "megc2019_htnet")


def test_composite_counts_and_format(megc):
    s = megc.samples
    assert len(megc) == 442
    assert megc.features.shape == (442, 3, 28, 28)
    assert megc.features.dtype == torch.float32
    assert float(megc.features.min()) == 0.0 and float(megc.features.max()) == 1.0
    assert s["subject"].nunique() == 68
    counts = {d: np.bincount(s.loc[s["dataset"] == d, "label"], minlength=3).tolist() for d in ("smic", "casme2", "samm")}
    assert counts == {"smic": [70, 51, 43], "casme2": [88, 32, 25], "samm": [92, 26, 15]}
    assert all(subj.startswith(ds + "/") for ds, subj in zip(s["dataset"], s["subject"]))
    assert s.groupby("dataset")["subject"].nunique().to_dict() == {"smic": 16, "casme2": 24, "samm": 28}
    # the file-name quirk: a space before ".png"
    assert all(p.endswith(" .png") for p in s["path"])
    # channel 0 is u: anti-symmetric under a left-right mirror, v and strain symmetric (on average)
    x = megc.features - megc.features.flatten(2).median(-1).values[..., None, None]
    corr = [np.mean([np.corrcoef(x[i, c].ravel(), x[i, c].flip(-1).ravel())[0, 1] for i in range(0, 442, 4)])
            for c in range(3)]
    assert corr[0] < 0 < corr[1] and corr[2] > 0


def test_dataset_subset_and_torch_dataset(shared_data):
    t = read_megc2019_table(shared_data / "megc2019_htnet", datasets=["samm"])
    assert len(t) == 133 and set(t["dataset"]) == {"samm"}
    ds = MEGC2019Features(shared_data / "megc2019_htnet", datasets=["casme2"])
    item = ds[0]
    assert item["features"].shape == (3, 28, 28)
    assert item["subject"] == "casme2/sub01" and item["clip"] == "EP02_01f" and item["label"] == 1


def _mirror(shared_data, tmp_path, drop_clip=None, edit=None):
    """A temporary copy of the table with symlinks to the real PNGs (nothing copied into the repo)."""
    src = shared_data / "megc2019_htnet"
    root = tmp_path / "megc"
    (root / FLOW_DIR).mkdir(parents=True)
    df = pd.read_csv(src / CSV_NAME, dtype=str, keep_default_na=False)
    if edit:
        edit(df)
    df.to_csv(root / CSV_NAME, index=False)
    for name in os.listdir(src / FLOW_DIR):
        if drop_clip and name.startswith(drop_clip):
            continue
        os.symlink(src / FLOW_DIR / name, root / FLOW_DIR / name)
    return root


def test_missing_feature_file_names_the_clip(shared_data, tmp_path):
    root = _mirror(shared_data, tmp_path, drop_clip="sub02_EP01_11f")
    with pytest.raises(FileNotFoundError, match="clip 'EP01_11f'.*sub02_EP01_11f .png"):
        load_megc2019_features(root)


def test_label_outside_range_names_the_row(shared_data, tmp_path):
    def edit(df):
        df.loc[5, "label"] = "3"
    root = _mirror(shared_data, tmp_path, edit=edit)
    with pytest.raises(ValueError, match=r"line 7 \(clip '.*'\): label '3'"):
        read_megc2019_table(root)


def test_missing_table(tmp_path):
    with pytest.raises(FileNotFoundError, match=CSV_NAME):
        read_megc2019_table(tmp_path)


def test_validate_samples_errors():
    good = pd.DataFrame({"dataset": ["casme2", "samm"], "subject": ["casme2/sub01", "samm/006"],
                         "clip": ["a", "b"], "label": [0, 2]})
    assert validate_samples(good)["label"].tolist() == [0, 2]
    bad = good.assign(label=[0, 5])
    with pytest.raises(ValueError) as label:
        validate_samples(bad, source="mine.csv")
    assert str(label.value) == "mine.csv: row 1 (clip 'b'): label 5 is not a class id in 0..2"
    with pytest.raises(ValueError) as prefix:
        validate_samples(good.assign(subject=["sub01", "samm/006"]), source="mine.csv")
    assert str(prefix.value) == ("mine.csv: row 0 (clip 'a'): subject 'sub01' must be prefixed by its dataset, e.g. "
                                 "'casme2/sub01'")
    with pytest.raises(ValueError) as twice:
        validate_samples(pd.concat([good, good.iloc[:1]]), source="mine.csv")
    assert str(twice.value) == "mine.csv: row 2: clip 'a' of subject 'casme2/sub01' appears twice"
    with pytest.raises(ValueError) as missing:
        validate_samples(good.drop(columns="label"), source="mine.csv")
    assert str(missing.value) == "mine.csv: missing column(s) ['label']; need ['dataset', 'subject', 'clip', 'label']"


def test_toy_features_deterministic_and_valid():
    a, b = make_toy_features(seed=3), make_toy_features(seed=3)
    assert torch.equal(a.features, b.features)
    assert len(a) == 2 * 4 * 3 * 3 and a.features.shape[1:] == (3, 28, 28)
    assert float(a.features.min()) >= 0 and float(a.features.max()) <= 1
    assert not torch.equal(a.features, make_toy_features(seed=4).features)


def test_recenter_flow_known_values_and_mirror_rule(megc):
    # hand-made maps: u holds 0..15 / 15 on a 4x4 grid (median 7.5 / 15), v constant 0.8, strain random
    u = torch.arange(16.0).reshape(4, 4) / 15
    x = torch.stack([u, torch.full((4, 4), 0.8), torch.rand(4, 4)])[None]
    y = recenter_flow(x)
    torch.testing.assert_close(y[0, 0], u - 7.5 / 15 + 0.5)
    torch.testing.assert_close(y[0, 1], torch.full((4, 4), 0.5))
    assert torch.equal(y[0, 2], x[0, 2])
    # on the real composite: every clip's u/v median lands on 0.5, strain untouched, and it commutes with the
    # mirror augmentation (u -> 1 - u), so flips and flip TTA stay exact on recentred features
    from icegan.recognition import hflip_features
    r = recenter_flow(megc.features)
    torch.testing.assert_close(torch.quantile(r[:, :2].flatten(2), 0.5, dim=-1), torch.full((442, 2), 0.5))
    assert torch.equal(r[:, 2], megc.features[:, 2])
    torch.testing.assert_close(recenter_flow(hflip_features(megc.features)), hflip_features(r))
    # per clip: a clip's result does not depend on which other clips are in the batch
    torch.testing.assert_close(recenter_flow(megc.features[5:6]), r[5:6])
    with pytest.raises(ValueError, match="u/v/strain"):
        recenter_flow(torch.zeros(2, 2, 4, 4))


def test_htnet_release_layout_reads_the_same_features(shared_data, htnet_clone, megc):
    root = htnet_clone
    assert megc2019_layout(root)[0] == "HTNet release"
    assert megc2019_layout(shared_data / "megc2019_htnet")[0] == "icegan"
    fs = load_megc2019_features(root)
    assert torch.equal(fs.features, megc.features)
    cols = ["dataset", "subject", "clip", "label"]
    assert fs.samples[cols].equals(megc.samples[cols])
    assert all(p.startswith(str(root / "datasets" / "STSNet_whole_norm_u_v_os")) for p in fs.samples["path"])
    faces = fs.samples["face_path"].map(lambda p: Path(p).relative_to(root / "datasets" / "combined_datasets_whole"))
    assert faces.tolist() == megc.samples["face_path"].map(lambda p: Path(p).name).map(Path).tolist()
    assert all(Path(p).is_file() for p in fs.samples["face_path"])


def test_missing_flow_folder_lists_the_layouts(shared_data, tmp_path):
    root = tmp_path / "only_csv"
    root.mkdir()
    os.symlink(shared_data / "megc2019_htnet" / CSV_NAME, root / CSV_NAME)
    with pytest.raises(FileNotFoundError, match=r"clip '.*'.*flow folder itself is missing.*flow_uvos_28/ "
                                                 r"\(icegan layout\); datasets/STSNet_whole_norm_u_v_os/ \(HTNet"):
        load_megc2019_features(root)


def test_other_dataset_names_are_kept_and_bad_ones_name_the_line(shared_data, tmp_path):
    def edit(df):
        df.loc[df["dataset"] == "samm", "dataset"] = "CAS(ME)3"     # not usable as a name: brackets
    with pytest.raises(ValueError, match=r"line \d+ \(clip '.*'\): dataset name 'CAS\(ME\)3' is not usable"):
        read_megc2019_table(_mirror(shared_data, tmp_path / "a", edit=edit))

    def rename(df):
        df.loc[df["dataset"] == "samm", "dataset"] = "MMEW"         # any short name is a dataset of its own
        df.loc[df["dataset"] == "casme2", "dataset"] = "CASME_2"    # a known alias still maps to casme2
    root = _mirror(shared_data, tmp_path / "b", edit=rename)
    t = read_megc2019_table(root)
    assert t["dataset"].value_counts().to_dict() == {"smic": 164, "casme2": 145, "mmew": 133}
    assert t.loc[t["dataset"] == "mmew", "subject"].str.startswith("mmew/").all()
    assert len(read_megc2019_table(root, datasets=["MMEW"])) == 133
    with pytest.raises(ValueError, match=r"dataset\(s\) \['samm'\] not in .*it has \['casme2', 'mmew', 'smic'\]"):
        read_megc2019_table(root, datasets=["samm"])
    assert dataset_name("SMIC-HS") == "smic" and dataset_name("casme3") == "casme3" and dataset_name("a/b") is None


def test_maps_of_another_size(shared_data, tmp_path, resized_megc):
    root = resized_megc(tmp_path, 56)
    with pytest.raises(ValueError, match=r"clip '.*' is 56×56, expected 28×28"):
        load_megc2019_features(root)
    fs = load_megc2019_features(root, size=None)
    assert fs.features.shape[1:] == (3, 56, 56) and len(fs) == len(read_megc2019_table(root))
    ref = load_megc2019_features(shared_data / "megc2019_htnet", datasets=["casme2"])
    same = torch.from_numpy(ref.samples["subject"].isin(["casme2/sub01", "casme2/sub02", "casme2/sub03"]).to_numpy().copy())
    down = torch.nn.functional.avg_pool2d(fs.features, 2)             # back near the original maps
    assert (down - ref.features[same]).abs().mean() < 0.05
    odd = read_megc2019_table(root)["clip"].iloc[3]
    root2 = resized_megc(tmp_path / "odd", 56, odd_clip=odd)
    with pytest.raises(ValueError, match=rf"clip '{odd}' is 57×57, expected 56×56"):
        load_megc2019_features(root2, size=None)


def test_maps_must_be_rgb(shared_data, tmp_path, resized_megc):
    """A grayscale map cannot hold u, v and strain: the error names the clip and its mode (no silent copy of one
    channel into three). An RGBA map loads as its RGB channels."""
    from PIL import Image

    from icegan.data.features import FLOW_DIR
    root = resized_megc(tmp_path, 28)
    table = read_megc2019_table(root)
    gray_clip, rgba_clip = table["clip"].iloc[0], table["clip"].iloc[1]
    ref = load_megc2019_features(root)
    for clip, mode in ((gray_clip, "L"), (rgba_clip, "RGBA")):
        path = next((root / FLOW_DIR).glob(f"*_{clip} .png"))
        Image.open(path).convert(mode).save(path)
    with pytest.raises(ValueError, match=rf"clip '{gray_clip}' is a L-mode image \(1 band\(s\) L\); expected RGB"):
        load_megc2019_features(root)
    path = next((root / FLOW_DIR).glob(f"*_{gray_clip} .png"))
    Image.open(path).convert("RGB").save(path)       # fixed: back to three (equal) channels, as the user would
    fs = load_megc2019_features(root)
    torch.testing.assert_close(fs.features[1], ref.features[1])      # the RGBA map: alpha dropped, RGB unchanged


def test_dataset_indices_known_values():
    """Each subject's dataset prefix as an index into the sorted dataset names."""
    from icegan.data.features import dataset_indices
    index, names = dataset_indices(["smic/s1", "casme2/sub01", "samm/006", "smic/s2"])
    assert names == ["casme2", "samm", "smic"]
    assert index.dtype == torch.long and index.tolist() == [2, 0, 1, 2]


def test_face_path_without_an_imagename_column_is_subject_and_clip(shared_data, tmp_path):
    """Without its imagename column, a composite row's face file is <subject>_<clip>.jpg (the release's naming)."""
    import os
    from icegan.data.features import CSV_NAME, FLOW_DIR, read_megc2019_table
    src = shared_data / "megc2019_htnet"
    df = pd.read_csv(src / CSV_NAME, dtype=str, keep_default_na=False).drop(columns=["imagename"])
    df.to_csv(tmp_path / CSV_NAME, index=False)
    os.symlink(src / FLOW_DIR, tmp_path / FLOW_DIR)
    t = read_megc2019_table(tmp_path)
    assert Path(t["face_path"][0]).name == "sub01_EP02_01f.jpg"


def test_a_label_equal_to_the_class_count_is_refused():
    """Labels lie in 0..K−1: label 3 with three classes is refused, naming it."""
    from icegan.data.features import validate_samples
    bad = pd.DataFrame({"dataset": ["casme2", "samm"], "subject": ["casme2/sub01", "samm/006"],
                        "clip": ["a", "b"], "label": [0, 3]})
    with pytest.raises(ValueError, match="label 3"):
        validate_samples(bad)


def test_toy_features_are_min_max_per_map():
    """The toy feature set is min–max normalised per clip and map: each map spans exactly [0, 1]."""
    from icegan.data.toy_features import make_toy_features
    x = make_toy_features().features
    torch.testing.assert_close(x.amin(dim=(2, 3)), torch.zeros(x.shape[:2]))
    torch.testing.assert_close(x.amax(dim=(2, 3)), torch.ones(x.shape[:2]))


_MEGC_HEADER = "dataset,sub,filename_o,label,apex,imagename,sub_filename\n"


@pytest.mark.parametrize("text, msg", [
    ("", "the file is empty"),
    (_MEGC_HEADER, "no rows (only the header line)"),
    (_MEGC_HEADER + "\n\n", "no rows (only the header line)"),
])
def test_an_empty_or_header_only_megc2019_table_says_it_has_no_rows(tmp_path, text, msg):
    """An empty or header-only composite CSV is one error naming the file, not numpy's 'need at least one array to
    stack' after reading nothing."""
    (tmp_path / CSV_NAME).write_text(text)
    with pytest.raises(ValueError) as exc:
        load_megc2019_features(tmp_path)
    assert str(exc.value).startswith(f"{tmp_path / CSV_NAME}: {msg}")


def test_a_megc2019_row_with_extra_fields_names_the_file(tmp_path):
    """A row longer than the header is a ValueError naming the CSV (pandas' tokenizing error alone does not)."""
    (tmp_path / CSV_NAME).write_text(_MEGC_HEADER + "casme2,sub01,EP01,0,,a.jpg,\ncasme2,sub01,EP02,1,,b.jpg,,x,y\n")
    with pytest.raises(ValueError) as exc:
        read_megc2019_table(tmp_path)
    assert str(exc.value).startswith(f"{tmp_path / CSV_NAME}: not a readable CSV table") and "line 3" in str(exc.value)


def test_megc2019_line_numbers_count_blank_lines(tmp_path):
    """With blank lines in the CSV, a bad row is reported at its real line in the file (here 6, not 4)."""
    (tmp_path / CSV_NAME).write_text(_MEGC_HEADER + "casme2,sub01,EP01,0,,a.jpg,\n\n\ncasme2,sub01,EP02,1,,b.jpg,\n"
                                     "casme2,sub02,EP03,happy,,c.jpg,\n")
    with pytest.raises(ValueError, match=r", line 6 \(clip 'EP03'\): label 'happy'"):
        read_megc2019_table(tmp_path)


def test_an_empty_sub_cell_is_named_as_empty(tmp_path):
    """An empty ``sub`` cell is reported as an empty cell on its line, not later as a flow file that is not found."""
    (tmp_path / CSV_NAME).write_text(_MEGC_HEADER + "casme2,sub01,EP01,0,,a.jpg,\ncasme2,,EP02,1,,b.jpg,\n")
    with pytest.raises(ValueError, match=r", line 3 \(clip 'EP02'\): empty sub cell$"):
        load_megc2019_features(tmp_path)


def test_validate_samples_label_rules():
    """Labels are whole class ids: 2.0 and "2" read as 2, 1.5 is refused; -1 (unknown) only with unlabelled=True."""
    good = pd.DataFrame({"dataset": ["casme2", "samm"], "subject": ["casme2/sub01", "samm/006"],
                         "clip": ["a", "b"], "label": [2.0, "2"]})
    assert validate_samples(good)["label"].tolist() == [2, 2]
    with pytest.raises(ValueError, match=r"row 1 \(clip 'b'\): label 1.5 is not a class id"):
        validate_samples(good.assign(label=[0, 1.5]))
    with pytest.raises(ValueError, match=r"row 0 \(clip 'a'\): label -1 is not a class id"):
        validate_samples(good.assign(label=[-1, 0]))
    assert validate_samples(good.assign(label=[-1, 0]), unlabelled=True)["label"].tolist() == [-1, 0]
    with pytest.raises(ValueError, match="label -2"):
        validate_samples(good.assign(label=[-2, 0]), unlabelled=True)


def test_validate_samples_subject_prefix_is_the_dataset_and_a_slash():
    """A subject must start with '<dataset>/': 'casme2sub01' or 'casme2x/sub01' in dataset casme2 is refused; the same
    clip name under two subjects is fine."""
    base = pd.DataFrame({"dataset": ["casme2", "casme2"], "subject": ["casme2/sub01", "casme2/sub02"],
                         "clip": ["EP01", "EP01"], "label": [0, 1]})
    assert len(validate_samples(base)) == 2
    for bad in ("casme2sub02", "casme2x/sub02"):
        with pytest.raises(ValueError, match=rf"row 1 \(clip 'EP01'\): subject '{bad}' must be prefixed"):
            validate_samples(base.assign(subject=["casme2/sub01", bad]))


def test_layout_without_a_flow_folder_is_the_icegan_layout(tmp_path):
    """With neither layout's flow folder present the icegan layout is returned (its file is then the one named
    missing)."""
    assert megc2019_layout(tmp_path) == ("icegan", tmp_path / FLOW_DIR, tmp_path / "faces_224")
    (tmp_path / "datasets" / "STSNet_whole_norm_u_v_os").mkdir(parents=True)
    assert megc2019_layout(tmp_path)[0] == "HTNet release"


def test_feature_set_refuses_non_finite_maps_and_a_row_count_mismatch():
    """FeatureSet names the first clip whose maps hold NaN or Inf, and refuses a feature tensor whose rows do not
    match the sample table."""
    from icegan.data.features import FeatureSet
    samples = pd.DataFrame({"dataset": ["samm"] * 3, "subject": ["samm/006", "samm/006", "samm/007"],
                            "clip": ["a", "b", "c"], "label": [0, 1, 2]})
    x = torch.rand(3, 3, 4, 4)
    assert torch.equal(FeatureSet(samples, x).features, x)
    bad = x.clone()
    bad[1, 2, 3, 0] = float("inf")
    bad[2, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"features of clip 'b' \(row 1\) contain NaN or Inf"):
        FeatureSet(samples, bad)
    with pytest.raises(ValueError, match=r"N = 3 rows, got \(2, 3, 4, 4\)"):
        FeatureSet(samples, x[:2])


def test_feature_set_replace_keeps_its_label_set_and_cuts_rows():
    """FeatureSet.replace: a derived set keeps n_classes (a five-class set's labels 3 and 4 stay valid; before,
    every rebuild had to pass n_classes again and one that forgot refused them) and unlabelled; ``keep`` cuts rows of
    the table and the maps together, the index reset; a mask of the wrong length is refused."""
    from icegan.data.features import FeatureSet
    samples = pd.DataFrame({"dataset": ["casme2"] * 5, "subject": [f"casme2/s{i % 2}" for i in range(5)],
                            "clip": list("abcde"), "label": [0, 1, 2, 3, 4]})
    x = torch.rand(5, 3, 4, 4)
    five = FeatureSet(samples, x, n_classes=5)
    moved = five.replace(features=x + 1)
    assert moved.n_classes == 5 and torch.equal(moved.features, x + 1) and moved.samples.equals(five.samples)
    cut = five.replace(keep=np.array([False, True, False, True, True]))
    assert cut.n_classes == 5 and list(cut.samples["clip"]) == ["b", "d", "e"]
    assert list(cut.samples.index) == [0, 1, 2] and torch.equal(cut.features, x[[1, 3, 4]])
    assert cut.labels.tolist() == [1, 3, 4]
    unl = FeatureSet(samples.assign(label=-1), x, unlabelled=True)
    assert unl.replace(keep=torch.tensor([True] * 4 + [False])).unlabelled
    with pytest.raises(ValueError, match=r"keep must be 5 booleans \(one per row\)"):
        five.replace(keep=np.ones(4, bool))
    with pytest.raises(ValueError, match=r"N = 5 rows, got \(2, 3, 4, 4\)"):
        five.replace(features=x[:2])


def test_a_megc2019_root_one_folder_too_high_names_the_folder_inside(shared_data):
    """data.root given as the data folder that holds megc2019_htnet/ (one too high): the error names that folder
    (was the missing CSV alone)."""
    from icegan.data.features import read_megc2019_table
    with pytest.raises(FileNotFoundError, match=rf"; it is in {shared_data / 'megc2019_htnet'}: give that folder"):
        read_megc2019_table(shared_data)
