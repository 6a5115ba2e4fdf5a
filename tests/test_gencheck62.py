"""`icegan generate`'s training-face check (round 62 follow-up of ea59885) for a generator trained on
data.source=prepared: it reads the faces from a cache already on this machine only, never prepares them (face
detection over every clip: minutes, silently, for a warning); without one, or with a cache it cannot read
(PrepareError), generated.csv says in_gan_training=unknown and a note says why, never a traceback."""
import csv
import dataclasses

import cv2
import numpy as np
import pytest
from _gan_sizes import tiny_gan_config

from icegan.cli import main


@pytest.fixture
def prepared_ckpt(tmp_path):
    """A tiny checkpoint trained on data.source=prepared: a clip list of two subjects (p01 trained on, p02 held out),
    2 clips each of 6 random 40x40 frames, cropped mode, cache root tmp_path/cache (absent). Returns (checkpoint,
    its GanConfig, {clip: its frames folder})."""
    from icegan.data.prepare import DatasetSpec
    from icegan.gan.trainer import build_models, save_checkpoint
    rng = np.random.default_rng(4)
    rows, folders = ["subject,clip,frames,onset,apex,offset,label"], {}
    for subj in ("p01", "p02"):
        for k, label in enumerate(("negative", "positive")):
            d = tmp_path / "frames" / subj / f"c{k}"
            d.mkdir(parents=True)
            for n in range(1, 7):
                cv2.imwrite(str(d / f"img{n}.png"), rng.integers(0, 256, (40, 40), dtype=np.uint8))
            rows.append(f"{subj},c{k},{d},1,3,6,{label}")
            folders[f"{subj}/c{k}"] = d
    (tmp_path / "clips.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    cfg = tiny_gan_config(32)
    cfg.data.source = "prepared"
    cfg.data.apex_neighbors = 0
    cfg.data.prepare = dataclasses.replace(cfg.data.prepare, cache_root=str(tmp_path / "cache"), progress=False,
                                           datasets=[DatasetSpec(name="clips", root=str(tmp_path / "clips.csv"))])
    cfg.data.train_subjects = ["clips/p01"]
    cfg.data.holdout_subjects = ["clips/p02"]
    g, d = build_models(cfg)
    ckpt = tmp_path / "run" / "checkpoints" / "last.pt"
    save_checkpoint(ckpt, cfg, g, d, 1, [])
    return ckpt, cfg, folders


def _never(*args, **kwargs):
    raise AssertionError("icegan generate prepared the datasets (it reads a cache already there only)")


def _generate(ckpt, onset, out):
    assert main(["generate", "--checkpoint", str(ckpt), "--onset", str(onset), "--class", "negative",
                 "--out", str(out), "--device", "cpu"]) == 0
    with open(out / "generated.csv", newline="") as fh:
        return {r["file"]: r["in_gan_training"] for r in csv.DictReader(fh)}


def test_generate_never_prepares_a_prepared_gans_faces_it_says_unknown_and_why(prepared_ckpt, tmp_path, monkeypatch,
                                                                               capsys):
    import icegan.data.prepare as prep
    ckpt, _, folders = prepared_ckpt
    monkeypatch.setattr(prep, "prepare_dataset", _never)
    monkeypatch.setattr(prep, "process_clip", _never)
    rows = _generate(ckpt, folders["p01/c0"] / "img1.png", tmp_path / "out")
    assert rows == {"p01_c0_img1_negative_00.png": "unknown"}
    out = capsys.readouterr().out
    assert ("its training faces are not prepared on this machine: no cache of its data.prepare datasets at 32 "
            f"pixels in {tmp_path / 'cache'}; prepare them with icegan prepare") in out, out
    assert "generated.csv's in_gan_training says unknown" in out, out
    assert not (tmp_path / "cache").exists()                # nothing prepared, nothing written


def test_generate_reads_a_prepared_gans_faces_from_the_cache_already_there(prepared_ckpt, tmp_path, monkeypatch,
                                                                           capsys):
    import icegan.data.prepare as prep
    from icegan.gan.pairs import load_prepared_pairs
    ckpt, cfg, folders = prepared_ckpt
    load_prepared_pairs(cfg.data.prepare, 32, 0)            # as icegan gan train prepared them
    monkeypatch.setattr(prep, "prepare_dataset", _never)
    monkeypatch.setattr(prep, "process_clip", _never)
    onsets = tmp_path / "onsets"
    onsets.mkdir()
    cv2.imwrite(str(onsets / "seen.png"), cv2.imread(str(folders["p01/c1"] / "img1.png"), cv2.IMREAD_GRAYSCALE))
    cv2.imwrite(str(onsets / "held.png"), cv2.imread(str(folders["p02/c0"] / "img1.png"), cv2.IMREAD_GRAYSCALE))
    rows = _generate(ckpt, onsets, tmp_path / "out")
    assert rows == {"held_negative_00.png": "no", "seen_negative_00.png": "yes"}
    assert "seen.png = p01/c1 onset (frame 1)" in capsys.readouterr().out


def test_generate_says_unknown_with_a_note_when_the_cache_cannot_be_read(prepared_ckpt, tmp_path, capsys):
    """A PrepareError (here a cache folder damaged after it was written) gives in_gan_training=unknown and a note
    naming the problem, not a traceback."""
    from icegan.gan.pairs import load_prepared_pairs
    ckpt, cfg, folders = prepared_ckpt
    load_prepared_pairs(cfg.data.prepare, 32, 0)
    (cache,) = [p for p in (tmp_path / "cache").iterdir() if (p / "COMPLETE").is_file()]
    (cache / "onset.npy").unlink()
    rows = _generate(ckpt, folders["p01/c0"] / "img1.png", tmp_path / "out")
    assert rows == {"p01_c0_img1_negative_00.png": "unknown"}
    out = capsys.readouterr().out
    assert f"({cache} is not a complete icegan cache: onset.npy missing" in out, out
    assert "generated.csv's in_gan_training says unknown" in out, out
