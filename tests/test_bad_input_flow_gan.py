"""Bad input to the flow and GAN commands: images, flow files, face pairs and checkpoints a user may have, each with
one defect. Each is named (the file and what is wrong), never dropped unseen nor turned into a garbage flow or pair."""
from __future__ import annotations

import logging
import shutil

import cv2
import numpy as np
import pandas as pd
import pytest
from _nan_flow import NAN_NET

from icegan.cli import main as icegan_main


#: (subject, clip, onset, apex) of two composite CASME II clips; frames onset..apex+1 are copied
CLIPS = [("sub01", "EP02_01f", 46, 59), ("sub01", "EP19_05f", 396, 416)]


@pytest.fixture
def casme2_pairs_copy(shared_data, tmp_path):
    """A small copy of the cropped CASME II data (manifest rows and the frames of CLIPS' onset and apex±1)."""
    src = shared_data / "casme2"
    root = tmp_path / "casme2"
    m = pd.read_csv(src / "manifest.csv", dtype=str)
    m = m[[(s, c) in {(s_, c_) for s_, c_, _, _ in CLIPS} for s, c in zip(m.subject, m.filename)]]
    assert len(m) == len(CLIPS)
    for subject, clip, onset, apex in CLIPS:
        (root / subject / clip).mkdir(parents=True)
        for n in (onset, apex - 1, apex, apex + 1):
            shutil.copy(src / subject / clip / f"img{n}.jpg", root / subject / clip / f"img{n}.jpg")
    m.to_csv(root / "manifest.csv", index=False)
    return root


def _resize_frame(path, dw=40, dh=30):
    img = cv2.imread(str(path))
    cv2.imwrite(str(path), cv2.resize(img, (img.shape[1] + dw, img.shape[0] + dh)))


def test_gan_pairs_skip_a_clip_whose_apex_has_another_size(casme2_pairs_copy, caplog):
    """An apex frame of another size than the onset (a frame of another crop copied in) was resized on its own and
    paired: garbage onset->apex motion, without a word. Now the clip is skipped, naming the frame and both sizes."""
    from icegan.gan.pairs import load_casme2_pairs
    subject, clip, onset, apex = CLIPS[0]
    _resize_frame(casme2_pairs_copy / subject / clip / f"img{apex}.jpg")
    with caplog.at_level(logging.WARNING, logger="icegan.gan.pairs"):
        pairs = load_casme2_pairs(casme2_pairs_copy, img_size=32, apex_neighbors=1, cache=False)
    assert set(pairs.clips) == {f"{CLIPS[1][0]}/{CLIPS[1][1]}"} and len(pairs) == 3
    (name, why), = pairs.skipped
    assert name == f"{subject}/{clip}"
    assert f"frame {apex} (img{apex}.jpg) is 271x312 pixels, the onset frame (img{onset}.jpg) 231x282" in why
    assert why in caplog.text


def test_gan_pairs_leave_out_an_apex_neighbour_of_another_size(casme2_pairs_copy, caplog):
    """A neighbour of the apex of another size is left out of the pairs with a warning naming it; the clip's apex
    and its other neighbour are kept."""
    from icegan.gan.pairs import load_casme2_pairs
    subject, clip, onset, apex = CLIPS[0]
    _resize_frame(casme2_pairs_copy / subject / clip / f"img{apex + 1}.jpg")
    with caplog.at_level(logging.WARNING, logger="icegan.gan.pairs"):
        pairs = load_casme2_pairs(casme2_pairs_copy, img_size=32, apex_neighbors=1, cache=False)
    assert not pairs.skipped
    got = sorted(int(a) for c, a in zip(pairs.clips, pairs.apex_frames) if c == f"{subject}/{clip}")
    assert got == [apex - 1, apex]
    assert f"{subject}/{clip}: apex neighbour left out: frame {apex + 1} (img{apex + 1}.jpg) is 271x312" in caplog.text


def test_kitti_png_writes_non_finite_flow_as_invalid_and_checks_the_mask(tmp_path):
    """A NaN flow pixel was cast to 0 and written as a valid flow of (-512, -512) px; now it is written invalid. A
    valid mask of another shape is named instead of numpy's 'all input arrays must have the same shape'."""
    from flownet.io import read_kitti_png, write_kitti_png
    f = np.zeros((4, 5, 2), np.float32)
    f[0, 0] = [np.nan, 1.0]
    f[0, 1] = [np.inf, 0.0]
    f[1, 1] = [3.25, -2.5]
    write_kitti_png(tmp_path / "k.png", f)
    flow, valid = read_kitti_png(tmp_path / "k.png")
    assert not valid[0, 0] and not valid[0, 1] and valid.sum() == 18
    assert flow[1, 1].tolist() == [3.25, -2.5] and (flow[0, :2] == 0).all()
    with pytest.raises(ValueError, match=r"valid mask shape \(3, 3\) does not match flow \(4, 5\)"):
        write_kitti_png(tmp_path / "k2.png", f, valid=np.ones((3, 3), bool))


def _frames(tmp_path, shape=(24, 32)):
    """Two frames of a smooth texture, the second shifted by one pixel; their paths."""
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(rng.integers(0, 256, (shape[0], shape[1] + 1)).astype(np.uint8), (5, 5), 0)
    paths = [tmp_path / "f1.png", tmp_path / "f2.png"]
    cv2.imwrite(str(paths[0]), img[:, 1:])
    cv2.imwrite(str(paths[1]), img[:, :-1])
    return [str(p) for p in paths]


@pytest.mark.parametrize("decompose", [False, True])
def test_flow_run_names_a_network_whose_flow_is_not_finite(tmp_path, capsys, decompose):
    """A network (here --model custom) whose flow holds NaN ended in an IndexError deep in torchvision's
    flow_to_image; now one line names the model and the pixel count, and no file is written. With --decompose too
    (whose RANSAC fit runs the network) the network's own message was replaced by a generic one."""
    (tmp_path / "nan_net.py").write_text(NAN_NET)
    argv = ["flow", "run", *_frames(tmp_path), "--out", str(tmp_path / "out" / "f.png"), "--flo",
            str(tmp_path / "out" / "f.flo"), "--model", "custom", "--module", f"{tmp_path / 'nan_net.py'}:make",
            *(["--decompose"] if decompose else [])]
    assert icegan_main(argv) == 2
    err = capsys.readouterr().err
    f1, f2 = argv[2:4]          # the network's own refusal (naming --module), the frames added
    assert err.startswith(f"icegan flow run: error: frames {f1} and {f2}: --module='{tmp_path / 'nan_net.py'}:make': "
                          f"the flow network produced NaN/Inf flow"), err
    assert "at 6 of 768 pixels" in err and err.strip().endswith("; nothing written"), err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_flow_to_color_refuses_a_non_finite_flow():
    from flownet.io import flow_to_color
    f = np.zeros((8, 8, 2), np.float32)
    f[0, 0, 1] = np.nan
    f[2, 3] = np.inf
    with pytest.raises(ValueError, match=r"NaN or infinite values at 2 pixel\(s\)"):
        flow_to_color(f)


def test_flo_with_a_wrong_magic_number_says_what_it_holds(tmp_path):
    """A wrong magic number was shown as numpy's repr ('magic np.float32(52816.535)'); now the first 4 bytes are
    shown beside the expected b'PIEH', and a byte-swapped (big-endian) .flo is called so."""
    import struct

    from flownet.io import read_flo, write_flo, write_kitti_png
    write_kitti_png(tmp_path / "kitti.png", np.zeros((4, 5, 2), np.float32))
    (tmp_path / "kitti.flo").write_bytes((tmp_path / "kitti.png").read_bytes())
    with pytest.raises(ValueError) as err:
        read_flo(tmp_path / "kitti.flo")
    assert str(err.value).startswith(f"{tmp_path / 'kitti.flo'}: not a Middlebury .flo file: its magic number "
                                     r"(first 4 bytes) is b'\x89PNG' (float32 ")
    assert str(err.value).endswith("not b'PIEH' (float32 202021.25)") and "np.float32" not in str(err.value)
    (tmp_path / "be.flo").write_bytes(struct.pack(">fii", 202021.25, 5, 4) + np.zeros((4, 5, 2), ">f4").tobytes())
    with pytest.raises(ValueError, match="magic number is byte-swapped: a big-endian .flo file"):
        read_flo(tmp_path / "be.flo")
    write_flo(tmp_path / "ok.flo", np.ones((4, 5, 2), np.float32))
    assert (tmp_path / "ok.flo").read_bytes()[:4] == b"PIEH"


def test_generate_names_an_out_that_is_a_file(tmp_path, capsys):
    """--out given as an existing file (e.g. the onset image itself) ended in a FileExistsError traceback after the
    faces were made; now one line names it before the checkpoint is read."""
    from _gan_sizes import tiny_gan_config

    from icegan.gan.trainer import build_models, save_checkpoint
    cfg = tiny_gan_config(32)
    save_checkpoint(tmp_path / "last.pt", cfg, *build_models(cfg), 0, [])
    face = tmp_path / "face.png"
    cv2.imwrite(str(face), np.full((32, 32), 128, np.uint8))
    assert icegan_main(["generate", "--checkpoint", str(tmp_path / "last.pt"), "--onset", str(face), "--class", "all",
                        "--out", str(face), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (f"icegan generate: error: --out {face} is a file; --out is the folder the faces are written "
                           f"to"), err


def test_selfsup_pairs_skip_a_clip_with_frames_of_another_size(casme2_pairs_copy, tmp_path):
    """A frame of another size in a clip was resized on its own into a self-supervised training pair (no real
    motion, no word); then the pair was refused, but only when first drawn, stopping a long training run midway.
    Now the clip is skipped at construction (sizes from the files' headers), with a warning naming the frame, both
    sizes and the clip; the other clips train as before, and a pair of two sizes is still refused if met."""
    from flownet.data.real_pairs import RealFramePairs
    subject, clip, onset, apex = CLIPS[0]
    folder = casme2_pairs_copy / subject / clip
    kw = dict(root=casme2_pairs_copy.parent, subjects=[subject], size=32, flip=False)
    whole = RealFramePairs(**kw)
    _resize_frame(folder / f"img{apex}.jpg")
    for preload in (False, True):
        with pytest.warns(UserWarning) as caught:
            ds = RealFramePairs(**kw, preload=preload)
        why = (f"{subject}/{clip}: frame img{apex}.jpg is 271x312 pixels, img{onset}.jpg 231x282: the frames of a "
               f"clip must have one size (a frame of another crop mixed in?); clip skipped")
        assert str(caught[0].message) == f"RealFramePairs: skipped 1 clip(s) with frames of different sizes: {why}"
        assert ds.skipped == [why]
        kept = {k: [pq for pq in v if pq[0].parent.name != clip] for k, v in whole.pairs.items()}
        assert ds.pairs == kept and kept["onset_apex"] and kept["consecutive"]
        assert {ds[i]["path1"].split("/")[-2] for i in range(len(ds))} == {CLIPS[1][1]}
    with pytest.raises(ValueError) as err:
        ds.frames(folder / f"img{onset}.jpg", folder / f"img{apex}.jpg")
    assert str(err.value) == (f"frames of one clip differ in size: {folder / f'img{onset}.jpg'} is 231x282 pixels, "
                              f"{folder / f'img{apex}.jpg'} 271x312 (a frame of another crop mixed in?)")
    (folder / f"img{apex + 1}.jpg").write_bytes(b"not a jpeg")       # a header that cannot be read: skipped too
    with pytest.warns(UserWarning, match=rf"{clip}: frame .*img{apex + 1}\.jpg cannot be read as an image"):
        RealFramePairs(**kw)


def test_flow_run_names_an_image_cut_short_empty_or_a_folder(shared_data, tmp_path, capsys):
    """A JPEG cut short (an interrupted copy) was decoded with grey rows into a garbage flow, with only libjpeg's
    'Premature end of JPEG file' on stderr; an empty file and a folder were 'could not decode image' / 'image not
    found'. Now one line names the file and what is wrong, before any flow is computed."""
    frames = shared_data / "casme2" / "sub01" / "EP02_01f"
    onset = tmp_path / "img46.jpg"
    shutil.copy(frames / "img46.jpg", onset)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes((frames / "img59.jpg").read_bytes()[:6000])
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    cases = [(cut, "truncated: no JPEG end marker (FF D9) after its image data (an interrupted copy or unzip?)"),
             (empty, "the file is empty (0 bytes"), (tmp_path, "cannot read image " + str(tmp_path) + ": Is a directory")]
    for second, why in cases:
        out = tmp_path / "out" / "f.png"
        assert icegan_main(["flow", "run", str(onset), str(second), "--out", str(out), "--model", "farneback"]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"icegan flow run: error: cannot read image {second}") and why in err, err
        assert len(err.strip().splitlines()) == 1 and not out.exists()


def test_flow_train_on_a_folder_without_casme2_points_at_data_root(tmp_path, capsys):
    """`icegan flow train` has no --root, yet a data root without casme2/ said 'set --root'; now the message names
    data.root of the training config (and --root of flow eval). The run folder, with a config.yaml of a run that
    never started, was made before the data root was looked at; now nothing is written (both training modes)."""
    empty = tmp_path / "empty"
    empty.mkdir()
    for mode, config in (("selfsup", "configs/flow_selfsup.yaml"), ("supervised", "configs/flow_srflownet_fast.yaml")):
        assert icegan_main(["flow", "train", "--mode", mode, "--config", config, f"data.root={empty}",
                            f"out_dir={tmp_path / 'runs'}", "name=x", "train.device=cpu", "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert err.strip() == (f"icegan flow train: error: CASME II crops not found at {empty / 'casme2'}: the data "
                               f"root holds casme2/ (--root of icegan flow eval, data.root of a flow training config, "
                               f"or $ICEGAN_SHARED_DATA)"), err
        assert not (tmp_path / "runs").exists(), mode


@pytest.mark.parametrize("command", [["flow", "eval", "--model", "farneback", "--data", "synthetic-face"],
                                     ["gan", "eval", "--checkpoint", "c.pt", "--device", "cpu"]])
def test_eval_json_that_cannot_be_written_is_named_before_evaluating(tmp_path, capsys, monkeypatch, command):
    """--json naming a folder, or a file under a file, ended in an IsADirectoryError / FileExistsError traceback after
    the whole evaluation; now one line names it before any work (the evaluation is never reached here)."""
    import flownet.evaluate
    import icegan.gan.evaluate

    def never(*a, **kw):
        raise AssertionError("evaluated before --json was checked")
    monkeypatch.setattr(flownet.evaluate, "evaluate", never)
    monkeypatch.setattr(icegan.gan.evaluate, "run_eval", never)
    (tmp_path / "afile").write_text("x")
    what = "results" if command[0] == "flow" else "metrics"
    for js, why in ((tmp_path, f"{tmp_path} is a folder; give a file name in it, e.g. {tmp_path / 'eval.json'}"),
                    (tmp_path / "afile" / "m.json", f"cannot be written, {tmp_path / 'afile'} is a file, not a folder")):
        assert icegan_main(command + ["--json", str(js)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"icegan {command[0]} eval: error: --json (the {what} file): ") and why in err, err
        assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("size, why", [(30, "Generator: img_size must be a power of two >= 16, got 30"),
                                       (16, "CapsuleDiscriminator: img_size must be >= 32 and a multiple of 16")])
def test_gan_train_refuses_a_face_size_the_models_cannot_take_before_any_work(tmp_path, capsys, size, why):
    """data.img_size=30 was refused only after the pairs were loaded and the run folder (config.yaml, split.json)
    written; now it is refused first, naming data.img_size, and nothing is read or written (data.root is absent)."""
    assert icegan_main(["gan", "train", "--config", "configs/gan_casme2.yaml", f"out_dir={tmp_path}", "name=x",
                        f"data.img_size={size}", f"data.root={tmp_path / 'nowhere'}", "train.device=cpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"icegan gan train: error: data.img_size={size} or the model section: {why}"), err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("data", ["synthetic-face", "synthetic-generic"])
def test_flow_eval_refuses_a_negative_pair_count_and_a_side_under_8(capsys, data):
    """--n-pairs -3 said only '__len__() should return >= 0', and --size 7 scored 7x7 pixel 'faces' (icegan flow run
    refuses images under 8 pixels); now both name the option."""
    for extra, why in ((["--n-pairs", "-3"], "n_pairs (--n-pairs) must be >= 0, got -3"),
                       (["--size", "7", "--n-pairs", "2"],
                        "size (--size) of the synthetic pairs must be at least 8 pixels, got 7")):
        assert icegan_main(["flow", "eval", "--model", "farneback", "--data", data, *extra]) == 2
        err = capsys.readouterr().err
        assert err.strip() == f"icegan flow eval: error: {why}", err


def test_gan_eval_names_an_out_that_is_a_file(tmp_path, capsys, monkeypatch):
    """gan eval --out naming an existing file ended in a FileExistsError traceback; now one line names it before the
    evaluation."""
    import icegan.gan.evaluate

    def never(*a, **kw):
        raise AssertionError("evaluated before --out was checked")
    monkeypatch.setattr(icegan.gan.evaluate, "run_eval", never)
    (tmp_path / "afile").write_text("x")
    assert icegan_main(["gan", "eval", "--checkpoint", "c.pt", "--device", "cpu", "--out", str(tmp_path / "afile")]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (f"icegan gan eval: error: --out {tmp_path / 'afile'} is a file; --out is the folder the "
                           f"grids and report are written to"), err


def test_flow_run_refuses_16_bit_images_holding_12_bit_data(tmp_path, capsys):
    """A 16-bit PNG pair whose values stay below 4096 (12-bit camera data) was read as 8 bits, 16 grey levels at most,
    into another flow than the 8-bit pair's (farneback on a Middlebury crop: 0.57 px against 3.28), without a word;
    now it is refused, naming the file. A full-range 16-bit pair gives the 8-bit pair's flow."""
    from flownet.io import read_flo
    f1, f2 = _frames(tmp_path)
    for p in (f1, f2):
        img = cv2.imread(p, cv2.IMREAD_GRAYSCALE).astype(np.uint16)
        cv2.imwrite(p.replace(".png", "_12.png"), img * 16)
        cv2.imwrite(p.replace(".png", "_16.png"), img * 257)
    out = tmp_path / "o" / "f.png"
    assert icegan_main(["flow", "run", f1.replace(".png", "_12.png"), f2.replace(".png", "_12.png"), "--out", str(out),
                        "--model", "farneback"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"icegan flow run: error: {f1.replace('.png', '_12.png')} is a 16-bit image whose values "
                          f"reach only ") and "12-bit data" in err and not out.exists(), err
    flows = []
    for suffix in ("", "_16"):
        flo = tmp_path / f"f{suffix}.flo"
        assert icegan_main(["flow", "run", f1.replace(".png", f"{suffix}.png"), f2.replace(".png", f"{suffix}.png"),
                            "--out", str(out), "--flo", str(flo), "--model", "farneback"]) == 0
        flows.append(read_flo(flo)[0])
    assert np.array_equal(flows[0], flows[1])


def test_generate_reads_folders_among_several_onsets(shared_data, tmp_path):
    """--onset A_FOLDER B_FOLDER (or a folder beside files) said 'face image not found: A_FOLDER'; folders in a list
    are now read like a folder given alone, in the order given."""
    from icegan.gan.pairs import fit_square, list_face_files, read_grey

    def faces_of(paths, size):          # the faces of the files listed, as icegan gan train reads them
        files = list_face_files(paths)
        return np.stack([fit_square(read_grey(f), size) for f in files]), [f.stem for f in files]
    frames = shared_data / "casme2" / "sub01" / "EP02_01f"
    for folder, n in (("a", 46), ("a", 47), ("b", 48)):
        (tmp_path / folder).mkdir(exist_ok=True)
        shutil.copy(frames / f"img{n}.jpg", tmp_path / folder / f"img{n}.jpg")
    single = tmp_path / "img50.jpg"
    shutil.copy(frames / "img50.jpg", single)
    faces, names = faces_of([tmp_path / "b", single, str(tmp_path / "a")], 32)
    assert names == ["img48", "img50", "img46", "img47"] and faces.shape == (4, 32, 32)
    alone, _ = faces_of(tmp_path / "a", 32)
    assert np.array_equal(faces[2:], alone)
    (tmp_path / "c").mkdir()
    with pytest.raises(ValueError, match=f"no face images .* in folder {tmp_path / 'c'}"):
        faces_of([single, tmp_path / "c"], 32)


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 cut short"])
def test_gan_train_names_a_resume_checkpoint_it_cannot_read(casme2_pairs_copy, tmp_path, capsys, content,
                                                             monkeypatch):
    """A run folder's checkpoints/last.pt that is empty or cut short (a full disk, a copy interrupted) ended in an
    EOFError / OSError traceback of torch.load when the run was started again; now one line names it and what to do."""
    monkeypatch.setenv("ICEGAN_DATA", str(tmp_path / "data"))     # the pairs cache, not in the repository's data/
    ckpt = tmp_path / "runs" / "x" / "checkpoints" / "last.pt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(content)
    assert icegan_main(["gan", "train", "--config", "configs/gan_casme2.yaml", f"out_dir={tmp_path / 'runs'}",
                        "name=x", f"data.root={casme2_pairs_copy}", "data.img_size=32", "data.apex_neighbors=0",
                        "train.device=cpu", "model.motion_prior=none"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"icegan gan train: error: the checkpoint to resume (train.resume=true; remove it, or set "
                          f"train.resume=false, to train afresh): {ckpt} cannot be read by torch.load"), err
    assert len(err.strip().splitlines()) == 1 and ckpt.read_bytes() == content


@pytest.mark.parametrize("argv", [["train", "--config", "configs/flow_srflownet_fast.yaml"],
                                  ["train", "--mode", "selfsup", "--config", "configs/flow_selfsup.yaml"],
                                  ["train-decflow", "--config", "configs/flow_decflow.yaml"]])
def test_flow_training_names_a_resume_checkpoint_it_cannot_read(tmp_path, capsys, argv):
    """A run's last.pt cut short (a full disk, an interrupted copy) ended in torch.load's RuntimeError traceback
    ('PytorchStreamReader failed reading zip archive') when the run was started again; now one line names it and
    what to do, and the file is left as it is."""
    ckpt = tmp_path / "x" / "last.pt"
    ckpt.parent.mkdir()
    ckpt.write_bytes(b"PK\x03\x04 cut short")
    assert icegan_main(["flow", *argv, f"out_dir={tmp_path}", "name=x", "train.device=cpu", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"icegan flow {argv[0]}: error: the checkpoint to resume (train.resume=true; remove it, or "
                          f"set train.resume=false, to train afresh): {ckpt} cannot be read by torch.load"), err
    assert len(err.strip().splitlines()) == 1 and ckpt.read_bytes() == b"PK\x03\x04 cut short"


def test_gan_pairs_cache_reads_a_replaced_frame_again(casme2_pairs_copy, tmp_path, shared_data):
    """The pairs cache was keyed by the manifest only: an apex of another size copied again correctly kept its clip
    skipped (and a frame replaced in place kept its old face) on every later run. Now a frame replaced is read again."""
    from icegan.gan.pairs import load_casme2_pairs
    subject, clip, onset, apex = CLIPS[0]
    frame = casme2_pairs_copy / subject / clip / f"img{apex}.jpg"
    _resize_frame(frame)
    kw = dict(img_size=32, apex_neighbors=0, cache=True, cache_dir=tmp_path / "cache")
    first = load_casme2_pairs(casme2_pairs_copy, **kw)
    assert [c for c, _ in first.skipped] == [f"{subject}/{clip}"]
    assert load_casme2_pairs(casme2_pairs_copy, **kw).skipped == first.skipped      # from the cache
    shutil.copy(shared_data / "casme2" / subject / clip / f"img{apex}.jpg", frame)   # the right frame again
    fixed = load_casme2_pairs(casme2_pairs_copy, **kw)
    assert not fixed.skipped and f"{subject}/{clip}" in fixed.clips
    assert np.array_equal(fixed.apex, load_casme2_pairs(casme2_pairs_copy, **{**kw, "cache": False}).apex)


def test_middlebury_root_at_one_sequence_names_its_parent(shared_data, tmp_path, capsys):
    """--root pointed at one sequence (Grove2/, holding frame10.png, frame11.png and flow10.flo) said only 'no
    sequence folders under .../Grove2'; now it says that this is a sequence folder and names the folder to give."""
    seq = tmp_path / "mb" / "Grove2"
    shutil.copytree(shared_data / "middlebury" / "Grove2", seq)
    assert icegan_main(["flow", "eval", "--model", "farneback", "--data", "middlebury", "--root", str(seq)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (f"icegan flow eval: error: {seq} is a sequence folder itself (it holds flow10.flo): give "
                           f"the folder that holds the sequence folders, {tmp_path / 'mb'}"), err


def test_middlebury_root_one_folder_too_high_names_the_folder_inside(shared_data, tmp_path, capsys):
    """--root at the data folder that holds middlebury/ beside other datasets said 'Middlebury sequence annotations:
    missing .../annotations/frame10.png' (another dataset's folder taken for a sequence); now it says that no folder
    there is a sequence and names the one to give."""
    top = tmp_path / "data"
    shutil.copytree(shared_data / "middlebury" / "Grove2", top / "middlebury" / "Grove2")
    (top / "annotations").mkdir()
    assert icegan_main(["flow", "eval", "--model", "farneback", "--data", "middlebury", "--root", str(top)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (f"icegan flow eval: error: {top} holds no Middlebury sequence folder (it holds "
                           f"annotations/, middlebury/): give the folder that holds the sequences, --root "
                           f"{top / 'middlebury'}"), err
    (top / "middlebury" / "Grove2" / "flow10.flo").unlink()
    (top / "middlebury" / "Grove2" / "frame10.png").unlink()       # nothing inside is a sequence either
    assert icegan_main(["flow", "eval", "--model", "farneback", "--data", "middlebury", "--root", str(top)]) == 2
    assert "(it holds annotations/, middlebury/): give the folder that holds the sequence folders (<Sequence>/" \
        in capsys.readouterr().err


def test_kitti_png_that_is_not_16_bit_flow_says_what_it_is(tmp_path):
    """A flow picture or a grey frame given as KITTI ground truth said 'got ((4, 5, 3), dtype('uint8'))'; now the
    message says what the file holds, in words."""
    from flownet.io import read_kitti_png, save_flow_image
    save_flow_image(tmp_path / "picture.png", np.ones((4, 5, 2), np.float32))
    cv2.imwrite(str(tmp_path / "grey.png"), np.zeros((4, 5), np.uint16))
    (tmp_path / "empty.png").write_bytes(b"")
    for name, desc in (("picture", "an image of 3 channel(s) of 8 bits (a colour-coded flow picture?)"),
                       ("grey", "an image of 1 channel(s) of 16 bits"),
                       ("empty", "not an image OpenCV can decode (an empty file)")):
        with pytest.raises(ValueError) as err:
            read_kitti_png(tmp_path / f"{name}.png")
        assert str(err.value) == f"{tmp_path / name}.png: not a KITTI flow PNG (3 channels of 16 bits): {desc}"


def test_gan_pairs_cache_of_another_code_version_is_not_read(casme2_pairs_copy, tmp_path, monkeypatch):
    """A pairs cache written before mixed-size apexes were skipped held that apex resized into the pair; its key
    had no code version, so it was read on every later run. Now the version is part of the key: the old file is
    left alone and the pairs are read again from the frames."""
    from icegan.gan import pairs as pairs_mod
    kw = dict(img_size=32, apex_neighbors=0, cache=True, cache_dir=tmp_path / "cache")
    monkeypatch.setattr(pairs_mod, "PAIRS_CACHE_VERSION", pairs_mod.PAIRS_CACHE_VERSION - 1)
    old = pairs_mod.load_casme2_pairs(casme2_pairs_copy, **kw)
    (old_file,) = (tmp_path / "cache").glob("*.npz")
    with np.load(old_file) as z:                                  # a stale cache: its faces differ from the frames'
        np.savez_compressed(old_file, **{**dict(z), "apex": np.zeros_like(z["apex"])})
    assert not pairs_mod.load_casme2_pairs(casme2_pairs_copy, **kw).apex.any()        # same version: the cache
    monkeypatch.undo()
    new = pairs_mod.load_casme2_pairs(casme2_pairs_copy, **kw)
    assert new.apex.any() and np.array_equal(new.apex, old.apex)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2


def test_selfsup_onset_apex_pairs_look_only_at_the_onset_and_apex_sizes(casme2_pairs_copy):
    """With onset→apex pairs only, a frame of another size elsewhere in the clip (apex+1 here) no longer drops the
    clip's good onset→apex pair; with consecutive pairs, which use it, the clip is still skipped."""
    from flownet.data.real_pairs import RealFramePairs
    subject, clip, onset, apex = CLIPS[0]
    _resize_frame(casme2_pairs_copy / subject / clip / f"img{apex + 1}.jpg")
    kw = dict(root=casme2_pairs_copy.parent, subjects=[subject], size=32, flip=False)
    only = RealFramePairs(**kw, kinds=("onset_apex",))
    assert not only.skipped and len(only.pairs["onset_apex"]) == 2
    with pytest.warns(UserWarning, match=rf"{clip}: frame img{apex + 1}\.jpg is 271x312 pixels"):
        both = RealFramePairs(**kw)
    assert [p.parent.name for p, _ in both.pairs["onset_apex"]] == [CLIPS[1][1]]


def test_gan_train_with_every_subject_held_out_names_the_setting(tmp_path, monkeypatch, capsys):
    """`icegan gan train` whose data.holdout_subjects (--fold) takes every subject with pairs says so, naming the
    subjects and the settings, before any run folder (was 'training ICE-GAN on 0 pairs', then 'train_gan: no
    training pairs')."""
    from _gan_sizes import fake_casme2_pairs

    from icegan.cli import main
    from icegan.gan import pairs as gan_pairs
    pairs = fake_casme2_pairs(4)
    monkeypatch.setattr(gan_pairs, "load_casme2_pairs", lambda *a, **k: pairs)
    assert main(["gan", "train", "name=t", f"out_dir={tmp_path}", "data.img_size=32", "data.apex_neighbors=0",
                 "model.g_base_channels=8", "model.g_max_channels=16", "model.d_base_channels=8",
                 "data.holdout_subjects=[sub01,sub02]"]) == 2
    err = capsys.readouterr().err
    assert ("no training pairs: the data's 4 pairs are of the subjects casme2/sub01, casme2/sub02, and "
            "data.holdout_subjects=['sub01', 'sub02'] (--fold)") in err
    assert not (tmp_path / "t").exists()
