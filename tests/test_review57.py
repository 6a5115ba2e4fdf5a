"""Review 57 of this session's own fixes: icegan generate refuses an --out that is an onset folder or the folder of a
given onset file (a shell glob's faces/*.png), not a subfolder of an onset folder; a duplicate-label refusal of
labelled entries suggests an entry that parses; flow run / flow eval keep a custom network's own NaN message (it
names --module) and add the frames / pair; the 'done:' line prints lr in .4g and the rest as before (.4f); the
library's train_gan refuses a resume that would shorten a run, as icegan gan train does."""
from __future__ import annotations

import dataclasses
import re

import cv2
import numpy as np
import pytest
import torch
from _gan_sizes import fake_casme2_pairs, tiny_gan_config, tiny_gan_train_args

from icegan.cli import main

# ---- 1: icegan generate --out in an onset folder, or the folder of the onset files


@pytest.fixture
def gen_setup(tmp_path):
    """A tiny generator checkpoint and a folder of 3 onset faces; the generate arguments without --onset/--out."""
    from icegan.gan.trainer import build_models, save_checkpoint
    cfg = tiny_gan_config(32)
    g, d = build_models(cfg)
    ckpt = save_checkpoint(tmp_path / "last.pt", cfg, g, d, 0, [])
    faces = tmp_path / "faces"
    faces.mkdir()
    for i in range(3):
        cv2.imwrite(str(faces / f"f{i}.png"), np.random.default_rng(i).integers(0, 256, (32, 32), dtype=np.uint8))
    base = ["generate", "--checkpoint", str(ckpt), "--class", "all", "--device", "cpu", "--overwrite"]
    return base, faces, g.n_classes


def test_generate_writes_into_a_subfolder_of_an_onset_folder(gen_setup):
    """An onset folder's images are listed flat: faces/gen's faces are never read as onsets, reruns stay at 3 x K."""
    base, faces, k = gen_setup
    for _ in range(2):
        assert main(base + ["--onset", str(faces), "--out", str(faces / "gen")]) == 0
        assert len(list((faces / "gen").glob("*.png"))) == 3 * k
        assert len(list(faces.glob("*.png"))) == 3


def test_generate_refuses_the_folder_of_the_onset_files(gen_setup, capsys):
    """--onset faces/*.png (the shell's list) with --out faces: each --overwrite rerun read its own outputs (3 faces
    then 12, then 39)."""
    base, faces, _ = gen_setup
    files = [str(p) for p in sorted(faces.glob("*.png"))]
    assert main(base + ["--onset", *files, "--out", str(faces / ".." / faces.name)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"icegan generate: error: --out {faces / '..' / faces.name} is the folder of the --onset "
                          f"file {files[0]}"), err
    assert sorted(p.name for p in faces.iterdir()) == ["f0.png", "f1.png", "f2.png"]       # nothing written


def test_generate_still_refuses_the_onset_folder_itself(gen_setup, capsys):
    base, faces, _ = gen_setup
    assert main(base + ["--onset", str(faces), "--out", str(faces / ".")]) == 2
    assert f"is the --onset folder {faces}" in capsys.readouterr().err
    assert sorted(p.name for p in faces.iterdir()) == ["f0.png", "f1.png", "f2.png"]


# ---- 2: the label suggested for labelled duplicate entries


@pytest.mark.parametrize("labelled", [False, True])
def test_duplicate_label_suggestion_parses(tmp_path, monkeypatch, labelled):
    from icegan.report import parse_entries, parse_entry
    monkeypatch.chdir(tmp_path)
    for d in ("runs/a/x_s0", "runs/b/x_s0"):
        (tmp_path / d).mkdir(parents=True)
    texts = ["G=runs/a/x_s0", "G=runs/b/x_s0"] if labelled else ["runs/a/x_s0", "runs/b/x_s0"]
    label = "G" if labelled else "x_s0"
    with pytest.raises(ValueError, match="both labelled") as exc:
        parse_entries(texts)
    suggested = re.search(r"\(e\.g\. '([^']*)'\)$", str(exc.value)).group(1)
    assert suggested == f"a {label}=runs/a/x_s0", str(exc.value)
    entry = parse_entry(suggested)                  # the suggestion is an entry that reads
    assert entry.label == f"a {label}" and entry.runs == [tmp_path.joinpath("runs/a/x_s0").relative_to(tmp_path)]
    assert [e.label for e in parse_entries([suggested, texts[1]])] == [f"a {label}", label]


# ---- 3: a custom network's own NaN message kept by flow run and flow eval

NAN_NET = '''
import torch


class Nan(torch.nn.Module):
    def forward(self, a, b):
        return torch.full((a.shape[0], 2, a.shape[2], a.shape[3]), float("nan"))
'''


def _frames(tmp_path):
    paths = [tmp_path / "a.png", tmp_path / "b.png"]
    for i, p in enumerate(paths):
        cv2.imwrite(str(p), np.random.default_rng(i).integers(0, 256, (32, 32), dtype=np.uint8))
    return [str(p) for p in paths]


@pytest.mark.parametrize("decompose", [False, True])
def test_flow_run_keeps_the_network_s_message_and_names_the_frames(tmp_path, monkeypatch, capsys, decompose):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "nan57r.py").write_text(NAN_NET)
    a, b = _frames(tmp_path)
    out = tmp_path / "out" / "f.png"
    assert main(["flow", "run", a, b, "--out", str(out), "--model", "custom", "--module", "nan57r.py:Nan",
                 "--device", "cpu", *(["--decompose"] if decompose else [])]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"icegan flow run: error: frames {a} and {b}: --module='nan57r.py:Nan': the flow network "
                          f"produced NaN/Inf flow for finite images"), err
    assert "at 1024 of 1024 pixels" in err and err.endswith("; nothing written"), err
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_flow_eval_keeps_the_network_s_message_and_names_the_pair(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "nan57r.py").write_text(NAN_NET)
    assert main(["flow", "eval", "--model", "custom", "--module", "nan57r.py:Nan", "--data", "synthetic-face",
                 "--n-pairs", "1", "--size", "32", "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert re.match(r"icegan flow eval: error: pair '0000[^']*': --module='nan57r\.py:Nan': the flow network produced "
                    r"NaN/Inf flow for finite images", err), err
    assert "at 1024 of 1024 pixels" in err and err.endswith("; no metrics reported"), err


# ---- 4: the done: line


def test_gan_train_done_line_lr_in_g_and_seconds_as_before(monkeypatch, tmp_path, capsys):
    import icegan.gan.pairs
    monkeypatch.setenv("ICEGAN_DATA", str(tmp_path / "data"))
    pairs = fake_casme2_pairs(8)
    monkeypatch.setattr(icegan.gan.pairs, "load_casme2_pairs", lambda *a, **k: pairs)
    args = tiny_gan_train_args(tmp_path) + ["train.lr=7.3e-05"]
    assert main(args + ["train.epochs=1"]) == 0
    ck = tmp_path / "t" / "checkpoints" / "last.pt"
    payload = torch.load(ck, weights_only=False)
    payload["elapsed_s"] = 12000.0          # 3.3 hours trained before: 1.2e+04 in .4g
    torch.save(payload, ck)
    capsys.readouterr()
    assert main(args + ["train.epochs=2"]) == 0
    done = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("done:")]
    assert len(done) == 1 and " lr=" in done[0], done
    assert re.search(r" seconds=120\d\d\.\d{4}( |$)", done[0]), done
    values = dict(kv.split("=") for kv in done[0].split("last epoch ")[1].split())
    assert all(re.fullmatch(r"-?\d+\.\d{4}", v) for k, v in values.items() if k != "lr"), done


# ---- 5: the library's train_gan refuses a resume that would shorten a run


def test_train_gan_refuses_a_resume_with_fewer_epochs(tmp_path):
    from icegan.gan.trainer import GanCheckpointError, RESUME_ADVICE, train_gan
    cfg = tiny_gan_config(32)
    cfg.train = dataclasses.replace(cfg.train, progress=False, batch_size=8, epochs=2, max_minutes=None,
                                    sample_every=0)
    torch.manual_seed(0)
    on = torch.rand(8, 1, 32, 32) * 2 - 1
    ap, y = (on + 0.1 * torch.randn_like(on)).clamp(-1, 1), torch.arange(8) % 3
    run = tmp_path / "r"
    assert train_gan(on, ap, y, cfg, device="cpu", out_dir=run).epochs_done == 2
    ckpt = run / "checkpoints" / "last.pt"
    before = ckpt.read_bytes()
    cfg.train = dataclasses.replace(cfg.train, epochs=1)
    with pytest.raises(GanCheckpointError, match=rf"^{re.escape(str(ckpt))} has trained 2 epochs, more than "
                       rf"train\.epochs=1; a resume cannot shorten a run: resume with train\.epochs=2 or more, or "
                       rf"{re.escape(RESUME_ADVICE)}$"):
        train_gan(on, ap, y, cfg, device="cpu", out_dir=run)
    assert ckpt.read_bytes() == before
