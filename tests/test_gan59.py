"""ICE-GAN fixes of round 59: `gan eval --data DIR` refuses training faces and says its images are no subjects,
`gan train --fold` takes one subject, a run stopped by train.max_minutes says so (train and eval), frames named
reg_img{N}.jpg (the official Cropped release) are found by number, and `icegan generate` writes generated.csv."""
import csv

import cv2
import numpy as np
import pytest
from _gan_sizes import fake_casme2_pairs, stubbed_manifest_checkpoint, tiny_gan_config, tiny_gan_train_args


# --- 1 and 3: gan eval of a folder of onset images ------------------------------------------------------------------

@pytest.fixture
def manifest_checkpoint(tmp_path, monkeypatch):
    """A tiny manifest-trained checkpoint holding out sub02 (trained on sub01 of fake_casme2_pairs(6)), saved at epoch
    1 of train.epochs=3; the pair loader, face embeddings and speed replaced by fast stand-ins."""
    return stubbed_manifest_checkpoint(tmp_path, monkeypatch, epochs=3)


def test_gan_eval_refuses_a_folder_holding_training_onsets_and_names_them(manifest_checkpoint, tmp_path):
    from icegan.gan.evaluate import run_eval
    ckpt, pairs = manifest_checkpoint
    faces = tmp_path / "onsets"
    faces.mkdir()
    assert pairs.subjects[0] == "casme2/sub01"          # trained on
    cv2.imwrite(str(faces / "seen.png"), pairs.onset[0])
    cv2.imwrite(str(faces / "fresh.png"), np.full((32, 32), 7, np.uint8))
    with pytest.raises(ValueError, match=r"--data .*onsets: 1 of its 2 images are training faces of .*last\.pt .*"
                                         r"seen\.png = sub01/c0 onset \(frame 0\).*remove them"):
        run_eval(ckpt, faces, n_per_class=1, out_dir=tmp_path / "ev", cross_dataset=False)
    assert not (tmp_path / "ev" / "eval.md").exists()


def test_gan_eval_of_a_folder_says_images_not_subjects_and_flags_an_unfinished_checkpoint(manifest_checkpoint,
                                                                                          tmp_path):
    from icegan.gan.evaluate import run_eval
    ckpt, _ = manifest_checkpoint
    faces = tmp_path / "onsets"
    faces.mkdir()
    for i in range(3):
        cv2.imwrite(str(faces / f"f{i}.png"), np.full((32, 32), 30 + 60 * i, np.uint8))
    res = run_eval(ckpt, faces, n_per_class=1, out_dir=tmp_path / "ev", cross_dataset=False)
    assert res["checkpoint_epoch"] == 1 and res["train_epochs"] == 3
    assert res["subjects_known"] is False and res["n_images"] == 3
    assert res["training_faces_compared"] == 6          # sub01's 3 pairs: 3 onsets and 3 apexes
    md = (tmp_path / "ev" / "eval.md").read_text()
    head = md.splitlines()[0]
    assert "3 images (subjects unknown; each image treated as its own identity)" in head
    assert "of 3 subjects" not in head and "unfinished (epoch 1 of 3)" in head
    assert "among 3 images (each its own identity" in md and "among 3 subjects" not in md


def test_training_faces_in_match_copies_not_a_face_one_grey_level_away():
    from icegan.gan.evaluate import training_faces_in
    train = np.stack([np.full((8, 8), 100, np.uint8), np.full((8, 8), 200, np.uint8)])
    near = train[0].copy()
    near[0, :4] = 103                                   # 12 / 64 = 0.19 grey levels on average: a lossy copy
    faces = np.stack([near, np.full((8, 8), 101, np.uint8), train[1]])
    assert training_faces_in(faces, train) == {0: 0, 2: 1}
    assert training_faces_in(faces[1:2], train) == {}
    with pytest.raises(ValueError, match="same size"):
        training_faces_in(faces, np.zeros((1, 4, 4), np.uint8))


# --- 2: --fold takes one subject --------------------------------------------------------------------------------------

@pytest.mark.parametrize("fold", ["sub01,sub02", "sub01 sub02", "[sub01]", "{a: b}", "samm/006:x"])
def test_gan_train_refuses_a_fold_of_several_subjects_or_yaml(fold, tmp_path, capsys):
    from icegan.cli import main
    rc = main(tiny_gan_train_args(tmp_path) + ["--fold", fold, "--print-config"])
    err = capsys.readouterr().err
    assert rc != 0 and "--fold" in err and "one subject" in err and "data.holdout_subjects=[" in err


def test_gan_train_fold_sets_one_subject(tmp_path, capsys):
    from icegan.cli import main
    import yaml
    assert main(tiny_gan_train_args(tmp_path) + ["--fold", "samm/006", "--print-config"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["data"]["holdout_subjects"] == ["samm/006"]


# --- 3: the done line of a run stopped by train.max_minutes ---------------------------------------------------------

def test_gan_train_stopped_by_max_minutes_says_so_and_how_to_finish(tmp_path, monkeypatch, capsys):
    from icegan.cli import main
    from icegan.gan import pairs as gan_pairs
    pairs = fake_casme2_pairs(8)
    monkeypatch.setattr(gan_pairs, "load_casme2_pairs", lambda *a, **k: pairs)
    args = tiny_gan_train_args(tmp_path, "train.epochs=3", "train.max_minutes=0.000001")
    assert main(args) == 0
    out = capsys.readouterr().out
    assert ("stopped at epoch 1 of 3 by train.max_minutes (counted across resumes); rerun with a larger "
            "train.max_minutes or 0 to finish") in out
    assert main(tiny_gan_train_args(tmp_path, "train.epochs=3", "train.max_minutes=0")) == 0
    out = capsys.readouterr().out
    assert "done: 3 epochs" in out and "stopped at" not in out


# --- 4: frames named reg_img{N}.jpg ---------------------------------------------------------------------------------

def _reg_img_tree(root, frames=(1, 2, 3, 4), prefix="reg_img"):
    clip = root / "sub01" / "EP01"
    clip.mkdir(parents=True)
    for n in frames:
        img = np.full((24, 20, 3), 30 * n, np.uint8)
        img[::4] = 200
        ok, buf = cv2.imencode(".jpg", img)
        (clip / f"{prefix}{n}.jpg").write_bytes(buf.tobytes())
    return clip


def test_casme2_pairs_find_reg_img_frames_of_the_cropped_release(tmp_path):
    from icegan.gan.pairs import load_casme2_pairs
    _reg_img_tree(tmp_path)
    (tmp_path / "manifest.csv").write_text(
        "subject,filename,emotion,class3,onset,apex,offset,verified,apex_in_folder,note\n"
        "sub01,EP01,happiness,positive,1,3,4,True,True,\n")
    ps = load_casme2_pairs(tmp_path, img_size=16, apex_neighbors=1, cache=False)
    assert list(ps.apex_frames) == [2, 3, 4] and list(ps.onset_frames) == [1, 1, 1]
    (tmp_path / "manifest.csv").write_text(
        "subject,filename,emotion,class3,onset,apex,offset,verified,apex_in_folder,note\n"
        "sub01,EP01,happiness,positive,1,9,9,True,True,\n")
    with pytest.raises(FileNotFoundError, match=r"apex frame missing: .*EP01.*img9\.jpg"):
        load_casme2_pairs(tmp_path, img_size=16, cache=False)


def test_real_frame_pairs_find_reg_img_frames_of_the_cropped_release(tmp_path):
    from flownet.data.real_pairs import RealFramePairs
    clip = _reg_img_tree(tmp_path / "casme2", frames=(1, 2, 3))
    (tmp_path / "casme2" / "manifest.csv").write_text("subject,filename,onset,apex,verified\nsub01,EP01,1,3,true\n")
    ds = RealFramePairs(root=tmp_path, subjects=["sub01"], size=16, flip=False)
    assert ds.skipped == []
    assert ds.pairs["consecutive"] == [(clip / "reg_img1.jpg", clip / "reg_img2.jpg"),
                                       (clip / "reg_img2.jpg", clip / "reg_img3.jpg")]
    assert ds.pairs["onset_apex"] == [(clip / "reg_img1.jpg", clip / "reg_img3.jpg")]
    assert ds[0]["img1"].shape == (1, 16, 16)


# --- 5: generated.csv -----------------------------------------------------------------------------------------------

def test_generate_writes_generated_csv_mapping_outputs_to_their_sources(tmp_path, capsys):
    from icegan.cli import main
    from icegan.gan.trainer import build_models, save_checkpoint
    cfg = tiny_gan_config(32)
    g, d = build_models(cfg)
    ckpt = tmp_path / "ck.pt"
    save_checkpoint(ckpt, cfg, g, d, 1, [])
    srcs = []
    for clip, v in (("A", 40), ("B", 160)):
        (tmp_path / clip).mkdir()
        srcs.append(tmp_path / clip / "img46.png")
        cv2.imwrite(str(srcs[-1]), np.full((32, 32), v, np.uint8))
    out = tmp_path / "out"
    assert main(["generate", "--checkpoint", str(ckpt), "--onset", *map(str, srcs), "--class", "positive", "-n", "2",
                 "--seed", "5", "--out", str(out), "--device", "cpu"]) == 0
    rows = list(csv.DictReader((out / "generated.csv").open(encoding="utf-8")))
    a, b = (f"{tmp_path.name}_{clip}_img46" for clip in "AB")    # frames named by their clip folder and its parent
    assert [r["file"] for r in rows] == [f"{a}_positive_00.png", f"{a}_positive_01.png", f"{b}_positive_00.png",
                                         f"{b}_positive_01.png"]
    assert [r["source"] for r in rows] == [str(srcs[0])] * 2 + [str(srcs[1])] * 2
    assert {r["class"] for r in rows} == {"positive"} and [r["draw"] for r in rows] == ["0", "1", "0", "1"]
    assert {r["seed"] for r in rows} == {"5"}
    assert all((out / r["file"]).is_file() for r in rows)
    assert sorted(p.name for p in out.iterdir() if not p.name.endswith(".png")) == ["generated.csv"]  # no temporary
    # a second run into the folder (--overwrite) keeps the rows of the files it did not rewrite
    other = tmp_path / "C" / "x.png"
    other.parent.mkdir()
    cv2.imwrite(str(other), np.full((32, 32), 90, np.uint8))
    assert main(["generate", "--checkpoint", str(ckpt), "--onset", str(other), str(srcs[0]), "--class", "surprise",
                 "--out", str(out), "--device", "cpu", "--overwrite"]) == 0
    rows = list(csv.DictReader((out / "generated.csv").open(encoding="utf-8")))
    by_file = {r["file"]: r for r in rows}
    assert len(rows) == 6 and by_file["x_surprise_00.png"]["source"] == str(other)
    assert by_file[f"{a}_surprise_00.png"]["source"] == str(srcs[0])
    assert by_file[f"{b}_positive_01.png"]["source"] == str(srcs[1])
