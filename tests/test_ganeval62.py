"""ICE-GAN evaluation and generation fixes of round 62: `gan eval` records its seed, draws, data, subjects, clips and
cross-dataset switch (JSON and eval.md, with the reason of an empty cell); its folder check also catches mirror
images of training faces; `icegan generate` warns about training faces and marks them in generated.csv; onsets of
the official layout (subXX/EPxx/imgN.jpg) are named subject_clip_imgN whatever other onsets are given."""
import csv

import cv2
import numpy as np
import pytest
from _gan_sizes import stubbed_manifest_checkpoint

from icegan.cli import main


@pytest.fixture
def ckpt_pairs(tmp_path, monkeypatch):
    """A tiny manifest-trained checkpoint holding out sub02 (trained on sub01 of fake_casme2_pairs(6)); the pair
    loader, face embeddings and speed replaced by fast stand-ins. Returns (checkpoint, pairs)."""
    return stubbed_manifest_checkpoint(tmp_path, monkeypatch, epochs=1)


# --- 1: gan eval records what it evaluated and how ---------------------------------------------------------------------

def test_gan_eval_records_seed_draws_data_subjects_clips_and_cross_dataset_switch(ckpt_pairs, tmp_path):
    from icegan.gan.evaluate import run_eval
    ckpt, pairs = ckpt_pairs
    res = run_eval(ckpt, "casme2", n_per_class=2, seed=5, out_dir=tmp_path / "ev", cross_dataset=False)
    assert res["seed"] == 5 and res["n_per_class"] == 2 and res["data"] == "casme2"
    assert res["subjects_requested"] is None and res["eval_subjects"] == ["casme2/sub02"]
    assert res["cross_dataset"] is False
    assert res["eval_clips"] == [c for c, s in zip(pairs.clips, pairs.subjects) if s == "casme2/sub02"]
    md = (tmp_path / "ev" / "eval.md").read_text()
    assert ("seed 5, 2 synthetic faces per onset and class, --data casme2, subjects casme2/sub02 (3 clips: "
            "sub02/c1, sub02/c3, sub02/c5), cross-dataset check off (--no-cross-dataset)") in md, md
    assert "| — (off: --no-cross-dataset) |" in md, md


def test_gan_eval_of_a_folder_says_why_its_expcaps_and_reference_cells_are_empty(ckpt_pairs, tmp_path):
    from icegan.gan.evaluate import run_eval
    ckpt, _ = ckpt_pairs
    faces = tmp_path / "onsets"
    faces.mkdir()
    for i in range(2):
        cv2.imwrite(str(faces / f"f{i}.png"), np.full((32, 32), 30 + 60 * i, np.uint8))
    res = run_eval(ckpt, faces, subjects=["x"], n_per_class=1, seed=2, out_dir=tmp_path / "ev")
    assert res["data"] == str(faces) and res["cross_dataset"] is True and res["eval_images"] == ["f0", "f1"]
    md = (tmp_path / "ev" / "eval.md").read_text()
    assert f"seed 2, 1 synthetic face per onset and class, --data {faces}" in md, md
    assert "| ExpCaps UF1 on held-out real apexes | — (no labels: a folder of onset images) |" in md, md
    assert "| — (no real apexes: a folder of onset images) |" in md, md


# --- 2: the folder check catches mirror images of training faces ----------------------------------------------------

def test_gan_eval_refuses_a_mirror_image_of_a_training_onset(ckpt_pairs, tmp_path):
    from icegan.gan.evaluate import run_eval
    ckpt, pairs = ckpt_pairs
    faces = tmp_path / "onsets"
    faces.mkdir()
    cv2.imwrite(str(faces / "mirror.png"), pairs.onset[2][:, ::-1])       # sub01/c2's onset, flipped left-right
    cv2.imwrite(str(faces / "fresh.png"), np.full((32, 32), 7, np.uint8))
    with pytest.raises(ValueError, match=r"1 of its 2 images are training faces .*mirror\.png = sub01/c2 onset "
                                         r"\(frame 0\), mirrored.*not checked: other frames"):
        run_eval(ckpt, faces, n_per_class=1, out_dir=tmp_path / "ev", cross_dataset=False)


# --- 3: icegan generate warns about a training face and marks it in generated.csv -----------------------------------

def test_generate_warns_about_training_faces_and_marks_them_in_generated_csv(ckpt_pairs, tmp_path, capsys):
    ckpt, pairs = ckpt_pairs
    faces = tmp_path / "onsets"
    faces.mkdir()
    cv2.imwrite(str(faces / "a_seen.png"), pairs.onset[0])                # sub01/c0's onset: trained on
    cv2.imwrite(str(faces / "b_fresh.png"), np.full((32, 32), 7, np.uint8))
    assert main(["generate", "--checkpoint", str(ckpt), "--onset", str(faces), "--class", "negative",
                 "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "warning: 1 of the 2 onset images are training faces of" in out, out
    assert "a_seen.png = sub01/c0 onset (frame 0)" in out, out
    with open(tmp_path / "out" / "generated.csv", newline="") as fh:
        rows = {r["file"]: r["in_gan_training"] for r in csv.DictReader(fh)}
    assert rows == {"a_seen_negative_00.png": "yes", "b_fresh_negative_00.png": "no"}


# --- 4: onset names of the official layout do not depend on the other onsets ----------------------------------------

def test_generate_names_official_layout_frames_by_subject_and_clip_whatever_else_is_given(ckpt_pairs, tmp_path):
    ckpt, _ = ckpt_pairs
    rng = np.random.default_rng(3)
    a = tmp_path / "casme" / "sub01" / "EP02_01f" / "img46.jpg"
    b = tmp_path / "casme" / "sub02" / "EP01_11f" / "img46.jpg"
    for f in (a, b):
        f.parent.mkdir(parents=True)
        cv2.imwrite(str(f), rng.integers(0, 256, (32, 32), dtype=np.uint8))
    base = ["generate", "--checkpoint", str(ckpt), "--class", "positive"]
    assert main(base + ["--onset", str(b), "--out", str(tmp_path / "alone")]) == 0
    assert main(base + ["--onset", str(a), str(b), "--out", str(tmp_path / "both")]) == 0
    name = "sub02_EP01_11f_img46_positive_00.png"
    assert sorted(p.name for p in (tmp_path / "both").glob("*.png")) == ["sub01_EP02_01f_img46_positive_00.png", name]
    alone = cv2.imread(str(tmp_path / "alone" / name), cv2.IMREAD_GRAYSCALE)
    both = cv2.imread(str(tmp_path / "both" / name), cv2.IMREAD_GRAYSCALE)
    assert alone is not None and np.array_equal(alone, both)             # the same name, the same face
