"""Tidy-ups of session 51: suite folder names of labels written in other scripts than ASCII."""
import re
from pathlib import Path

import pytest
import yaml

from icegan.suite import SuiteConfig, SuiteRun, slug

ROOT = Path(__file__).resolve().parents[1]

# slug of ASCII labels as recorded runs' folders are named (must never move)
KNOWN = [("STSTNet + shifts", "ststnet_shifts"), ("  Off-TANet (60 ep.) ", "off_tanet_60_ep"), ("++", "run"),
         ("", "run"), ("ICE-GAN, synthetic rows x 0.25", "ice_gan_synthetic_rows_x_0_25"),
         ("SRFlowNet (shipped)", "srflownet_shipped"), ("TV-L1", "tv_l1"), ("no GAN", "no_gan"),
         ("STSTNet + shifts + random forest, all seeds", "ststnet_shifts_random_forest_all_seeds"),
         ("under_score__x", "under_score_x"), ("../etc", "etc")]


def _old_slug(label):
    return re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_") or "run"


@pytest.mark.parametrize("label, expected", KNOWN)
def test_slug_of_ascii_labels_unchanged(label, expected):
    assert slug(label) == expected


def test_slug_of_every_shipped_suite_label_unchanged():
    labels = []
    for p in sorted((ROOT / "configs").glob("suite_*.yaml")):
        d = yaml.safe_load(p.read_text())
        labels += [e["label"] for key in ("runs", "ensembles") for e in d.get(key) or [] if "label" in e]
        labels += [d["selection"]["label"]] if "label" in (d.get("selection") or {}) else []
    assert len(labels) > 20 and all(lab.isascii() for lab in labels)
    assert [slug(lab) for lab in labels] == [_old_slug(lab) for lab in labels]


NON_ASCII = ["基线", "基线 + 位移", "生成对抗网络", "βάση", "βάση 2", "μοντέλο 2", "Базовая линия", "ベースライン",
             "기준선", "हिन्दी", "हिन्दू", "ICE-GAN β", "ICE-GAN α", "café", "cafe\u0301 2"]


def test_non_ascii_labels_give_distinct_safe_folder_names():
    slugs = [slug(lab) for lab in NON_ASCII]
    assert len(set(slugs)) == len(slugs), dict(zip(NON_ASCII, slugs))
    for s in slugs:
        assert re.fullmatch(r"[a-z0-9]+(_[a-z0-9]+)*", s) and s not in ("run", ".", "..") and "/" not in s
        assert slug(s) == s
    assert slug("ICE-GAN β").startswith("ice_gan_")          # the ASCII part stays readable
    # stable (not Python's salted hash()) and blind to case, Unicode normal form and punctuation, as for ASCII
    assert slug("βάση") == slug("ΒΆΣΗ!") == slug(" βάση ")
    assert slug("café") == slug("cafe\u0301")


def test_suite_accepts_labels_in_other_scripts():
    runs = [SuiteRun(label=lab, config="x.yaml") for lab in ("基线", "生成对抗网络", "βάση")]
    assert [r.label for r in SuiteConfig(runs=runs).runs] == ["基线", "生成对抗网络", "βάση"]
    with pytest.raises(ValueError, match="same folder"):
        SuiteConfig(runs=[SuiteRun(label="基线", config="x.yaml"), SuiteRun(label="基线!", config="y.yaml")])
