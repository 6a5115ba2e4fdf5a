"""Tests written by a mutation audit of the ICE-GAN data and synthesis code (icegan.gan.pairs, icegan.gan.synthesis,
icegan.gan.generate and the ``icegan gan train`` / ``icegan generate`` commands around them): each one fails on a
small deliberate change of the code that the earlier tests (tests/test_gan_training.py, tests/test_gan_eval.py,
tests/test_gan_prepared.py, tests/test_bad_input_flow_gan.py, tests/test_seams45.py, tests/test_pipeline.py,
tests/test_leakage.py) let pass, named in the test's docstring. Expected values are worked out by hand, never copied
from the code's output. Every test runs on tiny arrays, with a stub generator or none, in about a second."""
from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from icegan.gan.synthesis import balanced_augmentation, synthesize, to_uint8


class _ShiftGenerator(torch.nn.Module):
    """A stub of :class:`icegan.models.generator.Generator` whose output is the onset shifted by ``0.25·c`` (noise
    ignored): which onset and which class made each synthetic face can be read off the face by hand. It records the
    train/eval mode it was called in."""
    z_dim, n_classes, in_channels, img_size = 2, 3, 1, 4

    def __init__(self):
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(1))       # _generate reads the device off a parameter
        self.modes: list[bool] = []

    def forward(self, onset, z, c):
        return self.decode(onset, *self.encode(onset), z, c)

    def encode(self, onset):        # synthesize encodes each onset once and decodes its repeated encoding
        return onset.clone(), []

    def decode(self, onset, e, gs, z, c):
        self.modes.append(self.training)
        assert z.shape == (len(onset), self.z_dim) and e.shape == onset.shape
        return e + 0.25 * c.float().view(-1, 1, 1, 1)


def _onsets(n: int) -> torch.Tensor:
    """(n, 1, 4, 4) onsets, onset i filled with i/10 (any two differ, every one in [-1, 1])."""
    return torch.arange(n, dtype=torch.float32).div(10).view(n, 1, 1, 1).expand(n, 1, 4, 4).clone()


# ------------------------------------------------------------------------------------------ icegan.gan.synthesis

def test_to_uint8_rounds_clamps_and_spans_0_255():
    """[-1, 1] → uint8: (x + 1)·127.5 rounded to the nearest level, values outside [-1, 1] clamped first.
    By hand: −1 → 0, 1 → 255, 0.004 → 128.01 → 128, 10.6/127.5 − 1 → 10.6 → 11, −3 → 0, 2 → 255.
    Mutations killed: truncation instead of rounding (10.6 → 10), the clamp left out (2 → 382 wraps to 126,
    −3 → −255 wraps), a scale of 127 instead of 127.5 (1 → 254)."""
    x = torch.tensor([-1.0, 1.0, 0.004, 10.6 / 127.5 - 1, -3.0, 2.0]).view(6, 1, 1, 1)
    got = to_uint8(x)
    assert got.dtype == np.uint8 and got.shape == (6, 1, 1)
    assert got[:, 0, 0].tolist() == [0, 255, 128, 11, 0, 255]


def test_synthesize_makes_each_face_from_its_own_onset_and_class_and_restores_the_mode():
    """Each synthetic face is G(onset[source], z, class) of the source and class returned beside it: with the stub
    G(o, z, c) = o + 0.25·c, face m is onset[src[m]] + 0.25·cls[m] (onset i = i/10). The generator runs in eval mode
    and is handed back in the mode it came in (training here).
    Mutations killed: every face made from the first onset of its batch (``onset[src*0]``: faces of onsets 1, 2
    read 0.0 + 0.25·c); the generator left in eval mode after synthesis."""
    g = _ShiftGenerator().train()
    on = _onsets(3)
    apex, src, cls = synthesize(g, on, [1, 2], n_per_onset=1, seed=0, batch_size=4)
    assert src.tolist() == [0, 0, 1, 1, 2, 2] and cls.tolist() == [1, 2, 1, 2, 1, 2]
    want = torch.tensor([0.25, 0.5, 0.35, 0.6, 0.45, 0.7])
    torch.testing.assert_close(apex[:, 0, 0, 0], want)
    assert g.modes and not any(g.modes) and g.training


def test_balanced_augmentation_faces_come_from_their_sources_in_a_seed_dependent_order():
    """balanced_augmentation on six onsets all of class 0: classes 1 and 2 each need 6 faces, 12 in all, two per
    onset (round-robin); face m is onset[src[m]] + 0.25·cls[m]; which onset comes first depends on the seed
    ("in a seed-dependent order").
    Mutations killed: every face made from one onset (``onset[src*0]``); the onset order drawn from a fixed seed
    (the same for every seed, so every fold would start its round-robin at the same onsets)."""
    g = _ShiftGenerator().eval()
    on = _onsets(6)
    orders = []
    for seed in range(4):
        apex, src, cls = balanced_augmentation(g, on, torch.zeros(6, dtype=torch.long), seed=seed, batch_size=5)
        assert cls.tolist() == [1] * 6 + [2] * 6
        assert torch.bincount(src, minlength=6).tolist() == [2] * 6
        torch.testing.assert_close(apex[:, 0, 0, 0], src.float() / 10 + 0.25 * cls.float())
        orders.append(tuple(src.tolist()))
    assert len(set(orders)) > 1


def test_synthesize_refuses_no_draws_and_a_class_id_of_k():
    """n_per_onset must be ≥ 1 and class ids lie in 0..K−1 (K = 3 here), each refused with a ValueError naming it.
    Mutations killed: ``n_per_onset < 0`` (0 silently gave no faces); ``max(classes) > K`` (class 3 reached the
    generator's embedding)."""
    g = _ShiftGenerator()
    with pytest.raises(ValueError, match="n_per_onset must be >= 1, got 0"):
        synthesize(g, _onsets(2), [0], n_per_onset=0)
    with pytest.raises(ValueError, match=r"classes must be non-empty ids in \[0, 3\), got \[0, 3\]"):
        synthesize(g, _onsets(2), [0, 3])


def test_balanced_augmentation_refuses_labels_of_another_length():
    """One label per onset: two labels for three onsets are refused (before: counted as they were, so the classes
    were filled against the wrong counts and the third onset had no class).
    Mutation killed: the labels' shape check left out."""
    with pytest.raises(ValueError, match=r"labels must be \(3,\), got \(2,\)"):
        balanced_augmentation(_ShiftGenerator(), _onsets(3), [0, 1])


# ------------------------------------------------------------------------------------------ icegan.gan.pairs

def test_pairs_cache_gives_back_what_the_frames_gave(tmp_path):
    """load_casme2_pairs of a three-row manifest (one composite clip, one without a class3, one composite clip not
    verified), read from the frames and then again from its cache: both give one pair (onset img1, apex img3,
    class positive = 1), n_not_composite 1 and the unverified clip in skipped with its note.
    Mutation killed: n_not_composite not read back from the cache (0 on every cached load)."""
    import cv2
    import pandas as pd

    from icegan.gan.pairs import load_casme2_pairs
    root = tmp_path / "casme2"
    rng = np.random.default_rng(0)
    for clip in ("EP01_01", "EP02_01", "EP03_01"):
        (root / "sub01" / clip).mkdir(parents=True)
        for f in (1, 3):
            assert cv2.imwrite(str(root / "sub01" / clip / f"img{f}.png"), rng.integers(0, 256, (8, 8), np.uint8))
            (root / "sub01" / clip / f"img{f}.png").rename(root / "sub01" / clip / f"img{f}.jpg")
    rows = [("EP01_01", "positive", True, ""), ("EP02_01", "", True, ""), ("EP03_01", "surprise", False, "cut")]
    pd.DataFrame([{"subject": "sub01", "filename": c, "class3": k, "onset": 1, "apex": 3, "verified": v,
                   "apex_in_folder": True, "note": n} for c, k, v, n in rows]).to_csv(root / "manifest.csv",
                                                                                    index=False)
    fresh = load_casme2_pairs(root, 8, cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1
    cached = load_casme2_pairs(root, 8, cache_dir=tmp_path / "cache")
    for ps in (fresh, cached):
        assert ps.labels.tolist() == [1] and ps.clips == ["sub01/EP01_01"] and ps.subjects == ["casme2/sub01"]
        assert ps.onset_frames.tolist() == [1] and ps.apex_frames.tolist() == [3]
        assert ps.n_not_composite == 1 and ps.skipped == [("sub01/EP03_01", "cut")]
        assert np.array_equal(ps.onset[0], cv2.imread(str(root / "sub01/EP01_01/img1.jpg"), cv2.IMREAD_GRAYSCALE))
        assert np.array_equal(ps.apex[0], cv2.imread(str(root / "sub01/EP01_01/img3.jpg"), cv2.IMREAD_GRAYSCALE))


def test_a_folder_of_faces_is_read_in_name_order(tmp_path):
    """list_face_files: a folder's images (suffix in any case; other files left out) sorted by name, files given
    one by one kept in the order given. The order decides which of x.jpg / x.png gets the renamed outputs of
    ``icegan generate`` (the later one: x-2).
    Mutation killed: a folder listed in the file system's order instead of by name."""
    from icegan.gan.pairs import list_face_files
    names = ["e.png", "b.bmp", "C.PNG", "a.jpg", "d.tif", "x.jpg", "x.png"]
    for n in names + ["notes.txt"]:
        (tmp_path / n).write_bytes(b"")
    got = [p.name for p in list_face_files(tmp_path)]
    assert got == ["C.PNG", "a.jpg", "b.bmp", "d.tif", "e.png", "x.jpg", "x.png"]
    assert [p.name for p in list_face_files([tmp_path / "e.png", tmp_path / "a.jpg"])] == ["e.png", "a.jpg"]


def test_a_held_out_subject_stays_out_even_when_the_training_subjects_name_it():
    """by_subjects(include, exclude): a subject in both is left out (data.holdout_subjects / --fold wins over
    data.train_subjects, as icegan gan train and gan eval call it), given with or without the casme2/ prefix. On
    six fake pairs (sub01 rows 0, 2, 4; sub02 rows 1, 3, 5) every call keeps sub01's rows 0, 2, 4 only.
    Mutation killed (leakage): the exclusion applied only when no training subjects are named."""
    from _gan_sizes import fake_casme2_pairs
    pairs = fake_casme2_pairs(6)
    for include, exclude in ((["sub01", "sub02"], ["sub02"]), (["casme2/sub01", "sub02"], ["casme2/sub02"]),
                             (None, ["sub02"])):
        kept = pairs.by_subjects(include, exclude=exclude)
        assert kept.subjects == ["casme2/sub01"] * 3 and kept.clips == ["sub01/c0", "sub01/c2", "sub01/c4"]
        assert np.array_equal(kept.onset, pairs.onset[[0, 2, 4]]) and np.array_equal(kept.apex, pairs.apex[[0, 2, 4]])
        assert kept.labels.tolist() == [0, 2, 1]


# ------------------------------------------------------------------------------------------ icegan gan train --fold

def test_gan_train_fold_trains_on_the_other_subjects_pairs_only(tmp_path, monkeypatch):
    """`icegan gan train --fold sub02` on four pairs of sub01 (rows 0, 2) and sub02 (rows 1, 3), with no
    data.train_subjects: the pairs handed to train_gan are exactly sub01's (onset, apex and label of rows 0 and 2,
    labels 0 and 2), none of sub02's faces, and split.json says so (1 subject, 2 pairs).
    Mutation killed (leakage): the held-out subjects not excluded from the GAN's pairs (before, only the run that
    held out every subject caught it, by its missing error)."""
    from _gan_sizes import fake_casme2_pairs, tiny_gan_train_args

    from icegan.cli import main
    from icegan.gan import pairs as gan_pairs
    from icegan.gan import trainer
    from icegan.gan.pairs import to_tensor
    pairs = fake_casme2_pairs(4)
    monkeypatch.setattr(gan_pairs, "load_casme2_pairs", lambda *a, **k: pairs)
    seen = {}

    def train(onset, apex, labels, cfg, **kw):
        seen.update(onset=onset, apex=apex, labels=labels)
        return SimpleNamespace(history=[], epochs_done=0, stopped_by_time=False)   # as GanState has it
    monkeypatch.setattr(trainer, "train_gan", train)
    assert main(tiny_gan_train_args(tmp_path) + ["--fold", "sub02", "train.epochs=1"]) == 0
    torch.testing.assert_close(seen["onset"], to_tensor(pairs.onset[[0, 2]]), rtol=0, atol=0)
    torch.testing.assert_close(seen["apex"], to_tensor(pairs.apex[[0, 2]]), rtol=0, atol=0)
    assert seen["labels"].tolist() == [0, 2]
    held_out = {a.tobytes() for a in np.concatenate([pairs.onset[[1, 3]], pairs.apex[[1, 3]]])}
    trained = {a.tobytes() for a in np.concatenate([pairs.onset[[0, 2]], pairs.apex[[0, 2]]])}
    assert held_out.isdisjoint(trained)                  # the fake faces differ, so the check above means something
    split = json.loads((tmp_path / "t" / "split.json").read_text())
    assert split["train_subjects"] == ["casme2/sub01"] and split["holdout_subjects"] == ["sub02"]
    assert split["n_train_pairs"] == 2 and split["n_train_clips"] == 2


def test_load_generator_returns_the_checkpoints_generator_in_eval_mode(tmp_path):
    """load_generator (exported by icegan.gan) gives the checkpoint's generator, weights as saved, in eval mode.
    Mutation killed: the discriminator returned (``load_checkpoint(...)[1]``), which no test read before."""
    from _gan_sizes import tiny_gan_config

    from icegan.gan.synthesis import load_generator
    from icegan.gan.trainer import build_models, save_checkpoint
    from icegan.models.generator import Generator
    torch.manual_seed(0)
    g, d = build_models(tiny_gan_config(32))
    save_checkpoint(tmp_path / "last.pt", tiny_gan_config(32), g.train(), d, 1, [])
    got = load_generator(tmp_path / "last.pt")
    assert isinstance(got, Generator) and not got.training
    want = g.state_dict()
    assert got.state_dict().keys() == want.keys()
    for k, v in got.state_dict().items():
        assert torch.equal(v, want[k]), k


# ------------------------------------------------------------------------------------------ icegan generate

def test_generate_class_ids_run_from_0_to_k_minus_1():
    """``icegan generate --class`` takes a name (any case) or an id 0..K−1 of the generator's K classes: for the
    three MEGC2019 classes '2' is surprise and '3' is refused naming --class, the checkpoint and the classes.
    Mutation killed: ``int(t) <= len(classes)`` (class 3 went on to synthesize, whose error names neither --class nor
    the checkpoint)."""
    from icegan.commands.gan import _class_of
    names = ("negative", "positive", "surprise")
    assert [_class_of(t, names, "c.pt") for t in ("0", "2", "Positive")] == [0, 2, 1]
    with pytest.raises(ValueError, match=r"unknown class '3' \(--class\): the generator of c\.pt is conditioned on "
                                         r"the classes negative, positive, surprise"):
        _class_of("3", names, "c.pt")


def test_load_onsets_counts_every_resized_image_and_lists_each_size(tmp_path):
    """load_onsets for a generator of 32 px faces (data.source=manifest) given one 50x50 image, two 24x40 and one
    32x32 (in that name order): the note counts the 3 images resized (not the 2 sizes), lists each size with its
    count, most common first, and says the 2 that were not square had their aspect ratio changed; the 32x32 image is
    not counted.
    Mutations killed: the count taken as the number of distinct sizes (``len(sizes)``); the sizes listed in reading
    order instead of most common first."""
    import cv2

    from _gan_sizes import tiny_gan_config

    from icegan.gan.generate import load_onsets
    rng = np.random.default_rng(1)
    for name, (w, h) in {"a": (50, 50), "b": (24, 40), "c": (24, 40), "d": (32, 32)}.items():
        assert cv2.imwrite(str(tmp_path / f"{name}.png"), rng.integers(0, 256, (h, w), np.uint8))
    faces, names, note = load_onsets(tmp_path, tiny_gan_config(32))
    assert faces.shape == (4, 32, 32) and faces.dtype == np.uint8 and names == ["a", "b", "c", "d"]
    assert note.startswith("3 onset image(s) of 24x40 (2), 50x50 (1) pixels resized to 32x32 with INTER_AREA")
    assert "; 2 not square: aspect ratio changed" in note
