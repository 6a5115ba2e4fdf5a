"""Tests that kill the mutants of this session's changes that the other tests let live (a mutation audit): the busy-CPU
note's measurement and threshold, the threads a LOSO run counts, the per-class metrics.md section, the frame-size
checks of data check, the EXIF quarter-turn note and the self-supervised logs' host reads."""
import os
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from icegan.environment import other_load as measured_other_load     # conftest replaces other_load in each test


# ------------------------------------------------------------------------------------------------ busy-CPU note

def test_usable_cpus_is_the_affinity_mask_not_the_machine_s_cpu_count(monkeypatch):
    import icegan.environment as env
    monkeypatch.setattr(env.os, "sched_getaffinity", lambda pid: {0}, raising=False)
    monkeypatch.setattr(env.os, "cpu_count", lambda: 64)
    assert env.usable_cpus() == 1           # taskset / a container's limit of one CPU on a 64-core machine


def test_own_cpu_rate_counts_the_finished_children_cpu_time(monkeypatch):
    import icegan.environment as env
    monkeypatch.setattr(env.os, "times", lambda: os.times_result((1.0, 2.0, 3.0, 4.0, 0.0)))
    cpu, wall = env._own_cpu_rate()
    assert cpu == 10.0 and wall > 0         # user + system + children's user + children's system


def test_other_load_is_never_negative_when_this_process_share_exceeds_the_load_average(monkeypatch):
    import icegan.environment as env
    monkeypatch.setattr(env.os, "getloadavg", lambda: (3.0, 2.0, 1.0))
    monkeypatch.setattr(env, "_runnable_others", lambda: None)
    monkeypatch.setattr(env, "_own_cpu_rate", lambda: (12000.0, 3000.0))  # 4 busy cores, the load average says 3
    assert measured_other_load() == 0.0


def test_cpu_contention_threshold_is_half_a_cpu_above_the_usable_cpus():
    from icegan.environment import cpu_contention
    assert cpu_contention(1, others=1.5, cpus=2) is None        # 2.5 busy on 2 CPUs: exactly the margin, no note
    assert cpu_contention(1, others=1.2, cpus=2) is None        # 2.2: within the margin
    assert cpu_contention(1, others=1.6, cpus=2) is not None    # 2.6: past it


def test_cpu_workers_of_a_local_pool_with_workers_0_use_every_usable_cpu(monkeypatch):
    import icegan.environment as env
    from icegan.protocol import _cpu_workers
    monkeypatch.setattr(env, "usable_cpus", lambda: 3)
    # a local pool with workers=0 (no num_cpus per task): as many folds at once as the machine has CPUs
    assert _cpu_workers(SimpleNamespace(workers=0, threads=2, address=None), None) == (3, 2)


# ------------------------------------------------------------------------------------- metrics.md, per class

def test_per_class_markdown_hand_computed_for_the_pooled_predictions_and_each_dataset():
    from icegan.protocol import per_class_markdown
    pred = pd.DataFrame({"dataset": ["samm", "casme2", "casme2", "casme2", "samm"],
                         "y_true": [2, 0, 0, 1, 2], "y_pred": [2, 0, 1, 1, 0]})
    rows = [r for r in per_class_markdown(pred).splitlines() if r.startswith("| ") and "Scope" not in r]
    assert rows == [
        "| Full | negative | 2 | 2 | 0.5000 | 0.5000 | 0.5000 |",
        "| Full | positive | 1 | 2 | 1.0000 | 0.5000 | 0.6667 |",
        "| Full | surprise | 2 | 1 | 0.5000 | 1.0000 | 0.6667 |",
        "| CASME II | negative | 2 | 1 | 0.5000 | 1.0000 | 0.6667 |",
        "| CASME II | positive | 1 | 2 | 1.0000 | 0.5000 | 0.6667 |",
        "| CASME II | surprise | 0 | 0 | — | — | — |",
        "| SAMM | negative | 0 | 1 | — | 0.0000 | — |",        # predicted once, wrongly, without clips
        "| SAMM | positive | 0 | 0 | — | — | — |",
        "| SAMM | surprise | 2 | 1 | 0.5000 | 1.0000 | 0.6667 |",
    ]
    # the datasets in the order of every table (the composite's SMIC, CASME II, SAMM, then others), not sorted
    pred = pd.DataFrame({"dataset": ["samm", "other", "casme2", "smic"], "y_true": [0, 1, 2, 0],
                         "y_pred": [0, 1, 2, 0]})
    rows = [r for r in per_class_markdown(pred).splitlines() if r.startswith("| ") and "Scope" not in r]
    assert [r.split("|")[1].strip() for r in rows[::3]] == ["Full", "SMIC", "CASME II", "SAMM", "other"]


# ------------------------------------------------------------------------------- EXIF quarter turns, data check

def _tagged_png(path, orientation, h=12, w=16):
    """A black h x w PNG carrying EXIF Orientation ``orientation``."""
    from PIL import Image
    im = Image.fromarray(np.zeros((h, w, 3), np.uint8))
    exif = im.getexif()
    exif[0x0112] = orientation
    im.save(path, exif=exif)
    return path


def test_quarter_turn_note_passes_over_files_pillow_cannot_open_and_names_every_tagged_one(tmp_path):
    from flownet.frame_io import quarter_turn_note
    missing, garbage = tmp_path / "gone.png", tmp_path / "garbage.png"
    garbage.write_bytes(b"not an image at all")
    assert quarter_turn_note([missing, garbage], "the flow") == ""
    a, b = _tagged_png(tmp_path / "a.png", 5), _tagged_png(tmp_path / "b.png", 7)
    note = quarter_turn_note([missing, a, garbage, b], "the flow")
    assert note == (f"; {a} carries the EXIF Orientation tag 5, which mirrors it across its main diagonal as it is "
                    f"read (width and height swapped); {b} carries the EXIF Orientation tag 7, which mirrors it across "
                    f"its other diagonal as it is read (width and height swapped), unlike the flow: save the frame "
                    f"without the tag")


def test_data_check_frame_size_of_a_broken_link_is_unreadable_not_a_crash(tmp_path):
    from icegan.data.check import _frame_size
    link = tmp_path / "img1.jpg"
    link.symlink_to(tmp_path / "moved_away.jpg")
    assert _frame_size(link) is None


@pytest.mark.parametrize("orientation", range(1, 9))
def test_oriented_size_is_the_size_read_frame_reads_for_every_orientation(tmp_path, orientation):
    from flownet.frame_io import oriented_size, read_frame
    p = _tagged_png(tmp_path / "f.png", orientation)
    h, w = read_frame(p).shape[:2]
    assert oriented_size(p) == (w, h) == ((12, 16) if orientation >= 5 else (16, 12))


# ------------------------------------------------------------------------------------------------- main job

def test_main_job_hands_run_loso_a_fold_map_naming_its_executor(tmp_path, monkeypatch):
    """The busy-CPU note counts the executor's workers times their threads (protocol._cpu_workers), so the main
    job's timed map around the executor must name it."""
    import icegan.protocol
    from icegan.pipeline import load_main_config, run_main
    from icegan.protocol import _cpu_workers

    class Seen(Exception):
        pass

    def run_loso(*args, fold_map=None, **kw):
        raise Seen(fold_map)
    monkeypatch.setattr(icegan.protocol, "run_loso", run_loso)
    executor = SimpleNamespace(workers=3, threads=2, address=None)
    cfg = load_main_config(None, ["data.n_subjects=3", "data.clips_per_class=1", "data.img_size=32",
                                  "data.max_folds=1", "threads=1", "flow.method=farneback", "name=t"])
    with pytest.raises(Seen) as seen:
        run_main(cfg, tmp_path / "run", progress=False, executor=executor)
    fold_map = seen.value.args[0]
    assert fold_map.executor is executor and _cpu_workers(fold_map, None) == (3, 2)


def test_data_check_frame_size_of_a_frame_only_opencv_reads_is_0_0(tmp_path, monkeypatch):
    import flownet.frame_io
    from icegan.data.check import _frame_size
    p = _tagged_png(tmp_path / "f.png", 1)

    def no_header(path, data=None):
        raise OSError("cannot identify image file")     # as Pillow says of a format only OpenCV decodes
    monkeypatch.setattr(flownet.frame_io, "oriented_size", no_header)
    assert _frame_size(p) == (0, 0)                      # readable, of unknown size: not unreadable


# ---------------------------------------------------------------------------- self-supervised flow, host reads

def test_host_values_reads_the_tensors_and_keeps_every_other_value_in_order():
    import torch

    from flownet.devices import host_values
    assert host_values({"occ_f": 0.0, "n": 3}) == {"occ_f": 0.0, "n": 3}       # nothing to read
    third = torch.tensor(1 / 3, dtype=torch.float64)
    out = host_values({"pho": torch.tensor([0.25]), "occ_f": 0.0, "smo": third, "name": "x"})
    assert out == {"pho": 0.25, "occ_f": 0.0, "smo": float(third), "name": "x"}
    assert list(out) == ["pho", "occ_f", "smo", "name"] and all(type(out[k]) is float for k in ("pho", "smo"))


def test_teacher_and_student_losses_log_python_floats_by_default():
    import torch

    from flownet.selfsup_losses import student_loss, teacher_loss
    g = torch.Generator().manual_seed(0)
    img1, img2 = torch.rand(1, 3, 16, 16, generator=g), torch.rand(1, 3, 16, 16, generator=g)
    ff, fb = torch.randn(1, 2, 16, 16, generator=g), torch.randn(1, 2, 16, 16, generator=g)
    conf = torch.ones(1, 1, 16, 16)
    _, t = teacher_loss(img1, img2, ff, fb)
    _, s = student_loss(ff, fb, ff * 0.5, fb * 0.5, conf, conf, img1, img2)
    assert list(t) == ["pho", "smo"] and list(s) == ["dis", "smo"]
    assert all(type(v) is float for v in [*t.values(), *s.values()])
    _, raw = teacher_loss(img1, img2, ff, fb, logs_as_floats=False)
    assert all(torch.is_tensor(v) and v.dim() == 0 for v in raw.values())
    assert {k: float(v) for k, v in raw.items()} == t          # the same values, read on the host


def test_selfsup_logs_the_flow_magnitude_of_every_logging_step_with_log_every_2(tmp_path, monkeypatch):
    import test_flow_selfsup as selfsup_tests
    res, _ = selfsup_tests._loop_run(tmp_path, monkeypatch, "train.teacher_steps=4", "train.student_steps=4",
                                     "train.log_every=2")
    for stage in ("teacher", "student"):
        recs = res["history_tail"][stage]
        assert [r["step"] for r in recs] == [2, 4]
        assert all(type(r["flow_mag"]) is float and r["flow_mag"] > 0 for r in recs)


def test_teacher_step_logs_no_occluded_share_before_masking_starts_and_a_float_share_after():
    import torch

    from flownet.selfsup import SelfSupLossConfig, teacher_step_loss
    g = torch.Generator().manual_seed(1)
    img1, img2 = torch.rand(1, 3, 16, 16, generator=g), torch.rand(1, 3, 16, 16, generator=g)
    flows = [(torch.randn(1, 2, 16, 16, generator=g), torch.randn(1, 2, 16, 16, generator=g)) for _ in range(2)]
    _, off = teacher_step_loss(flows, img1, img2, SelfSupLossConfig(), use_occlusion=False)
    assert off == {"pho": off["pho"], "smo": off["smo"], "occ_f": 0.0, "occ_b": 0.0}
    _, on = teacher_step_loss(flows, img1, img2, SelfSupLossConfig(), use_occlusion=True)
    assert all(type(on[k]) is float and 0.0 <= on[k] <= 1.0 for k in ("occ_f", "occ_b"))


def test_cpu_workers_of_a_sequential_run_are_torch_s_threads(monkeypatch):
    import torch

    from icegan.protocol import _cpu_workers
    monkeypatch.setattr(torch, "get_num_threads", lambda: 5)
    assert _cpu_workers(None, None) == (1, 5)


def test_environment_record_s_usable_cpus_is_the_affinity_mask(monkeypatch):
    import icegan.environment as env
    monkeypatch.setattr(env, "usable_cpus", lambda: 1)
    assert env.describe_environment()["usable_cpus"] == 1


def test_selfsup_stops_on_an_infinite_loss_naming_the_stage_and_step(tmp_path, monkeypatch):
    import flownet.selfsup as ss
    import test_flow_selfsup as selfsup_tests
    real = ss.teacher_step_loss

    def infinite(flows, img1, img2, lc, use_occlusion=True, **kw):
        loss, parts = real(flows, img1, img2, lc, use_occlusion=use_occlusion, **kw)
        return loss * float("inf"), parts
    monkeypatch.setattr(ss, "teacher_step_loss", infinite)
    with pytest.raises(FloatingPointError, match="teacher stage: non-finite loss at step 0"):
        selfsup_tests._loop_run(tmp_path, monkeypatch)


# --------------------------------------------------------------------------------------- flow training, resume

def _flow_run_config(trainer, tmp_path, shared_data):
    """A tiny run of ``trainer`` (flow, selfsup, decflow) named r under tmp_path, with train.resume=false."""
    from _flow_sizes import TINY_SRFLOWNET

    from flownet.models.srflownet import SRFlowNetConfig
    from flownet.train import FlowDataConfig, FlowTrainConfig, FlowTrainSection
    data = FlowDataConfig(root=str(shared_data), size=32, n_train=4, n_test=1, frames_per_clip=1)
    if trainer == "flow":
        t = FlowTrainSection(regularizer="tvr", batch_size=2, crop=0, steps=1, eval_every=1, threads=1, seed=1,
                             resume=False)
        return FlowTrainConfig(name="r", out_dir=str(tmp_path), model=SRFlowNetConfig(**TINY_SRFLOWNET), data=data,
                               train=t)
    if trainer == "decflow":
        from dataclasses import replace

        from flownet.models.decflow import DecFlowConfig, DecFlowTrainConfig, DecFlowTrainSection
        data = replace(data, frames_per_clip=0)       # not read by DecFlow, which refuses it set
        return DecFlowTrainConfig(name="r", out_dir=str(tmp_path), data=data, model=DecFlowConfig(**TINY_SRFLOWNET),
                                  train=DecFlowTrainSection(init_weights=None, batch_size=2, crop=0, steps=1, iters=1,
                                                                    resume=False))
    from flownet.selfsup import SelfSupConfig
    from icegan.config import load_config
    from icegan.paths import REPO_ROOT
    return load_config(SelfSupConfig, str(REPO_ROOT / "configs" / "flow_selfsup.yaml"),
                       [f"out_dir={tmp_path}", "name=r", f"data.root={shared_data}", "train.resume=false"])


@pytest.mark.parametrize("trainer", ["flow", "selfsup", "decflow"])
def test_flow_training_with_resume_false_does_not_read_an_old_last_pt(tmp_path, shared_data, monkeypatch, trainer):
    """train.resume=false is what the damaged-checkpoint message advises: the run starts afresh without reading
    the old last.pt (here past the pre-start checks, to the run folder)."""
    import flownet.train as ftrain
    from flownet.models.decflow import train_decflow
    from flownet.selfsup import train_selfsup

    class Started(Exception):
        pass

    def start_run(cfg):
        raise Started
    monkeypatch.setattr(ftrain, "start_run", start_run)
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "last.pt").write_bytes(b"cut short")
    train = {"flow": ftrain.train, "selfsup": train_selfsup, "decflow": train_decflow}[trainer]
    with pytest.raises(Started):
        train(_flow_run_config(trainer, tmp_path, shared_data), progress=False)
