"""How often ``icegan table``, ``icegan compare`` and ``icegan suite --reuse`` read the runs' config.yaml (once per run
and command, not once per comparison), and that the refusals they make read the same as before: a run listed twice
names both ways it was listed, a config.yaml changed between two commands is read anew."""
import json
import re

import pandas as pd
import pytest
import yaml

import icegan.report as report
from _runs import write_metrics
from icegan.cli import main
from icegan.report import check_one_recipe, parse_entry, reading_configs, results_table, run_recipe


def _config(name, seed, model="ststnet"):
    """A resolved config as ``icegan loso`` saves it (the keys that matter here)."""
    return {"name": name, "protocol": "CDE", "oracle_epoch": False, "seed": seed, "device": "cpu", "threads": 0,
            "workers": 1, "data": {"source": "megc2019_htnet", "datasets": [], "permute_labels": -1},
            "model": {"name": model, "epochs": 100}}


def _run(root, name, seed=None, model="ststnet"):
    """A finished run folder that ``icegan table`` and ``icegan compare`` both read: config.yaml (seed: the digits that
    end the name), metrics.json (computed from the predictions), run.json and predictions.csv (3 subjects of 4 clips; clip ``seed`` of the 12
    predicted otherwise, so that two seeds' predictions differ, as a seeded recipe's do)."""
    d = root / name
    d.mkdir()
    seed = int(re.search(r"(\d*)$", name).group(1) or 0) if seed is None else seed
    (d / "config.yaml").write_text(yaml.safe_dump(_config(name, seed, model), sort_keys=False))
    rows = [(s, "casme2", f"casme2/s{s}", f"c{s}{j}", j % 3, (j + s + (4 * s + j == seed)) % 3) for s in range(3)
            for j in range(4)]
    pd.DataFrame(rows, columns=["fold", "dataset", "subject", "clip", "y_true", "y_pred"]).to_csv(
        d / "predictions.csv", index=False)
    write_metrics(d)                                 # from the predictions, as icegan table checks it
    (d / "run.json").write_text(json.dumps({"protocol": "CDE", "oracle_epoch": False,
                                            "folds": [f"casme2/s{s}" for s in range(3)]}))
    return d


@pytest.fixture
def parses(monkeypatch):
    """The config.yaml files parsed (yaml.safe_load of a text naming a run), in order."""
    seen = []
    real = yaml.safe_load

    def counting(text, *a, **kw):
        m = re.search(r"^name: (\S+)$", text, re.M) if isinstance(text, str) else None
        seen.append(m.group(1) if m else None)
        return real(text, *a, **kw)
    monkeypatch.setattr(yaml, "safe_load", counting)
    return seen


def test_check_one_recipe_parses_each_config_once(tmp_path, parses):
    """The recipe check and the seed check of an entry's runs used to parse each config.yaml once each."""
    runs = [_run(tmp_path, f"st_s{i}") for i in range(5)]
    check_one_recipe("ST", runs)
    assert sorted(parses) == [f"st_s{i}" for i in range(5)]
    assert report._CONFIGS is None            # nothing kept after the check


def test_table_parses_each_config_once_whichever_entries_list_it(tmp_path, parses, capsys):
    for i in range(4):
        _run(tmp_path, f"st_s{i}")
    assert main(["table", f"ST={tmp_path}/st_s*", f"two={tmp_path}/st_s0,{tmp_path}/st_s1"]) == 0
    assert "| ST | honest | CDE | 4 |" in capsys.readouterr().out
    assert sorted(parses) == [f"st_s{i}" for i in range(4)]
    assert report._CONFIGS is None


def test_compare_parses_each_config_once(tmp_path, parses):
    """``icegan compare`` read each config.yaml four times: twice for data.permute_labels, twice for the recipe."""
    for i in range(3):
        _run(tmp_path, f"st_s{i}")
    _run(tmp_path, "off_s0", model="offtanet")
    out = tmp_path / "cmp.md"
    assert main(["compare", f"ST={tmp_path}/st_s*", f"off={tmp_path}/off_s0", "--resamples", "100",
                 "--out", str(out)]) == 0
    assert "| ST | 3 | honest |" in out.read_text()
    assert sorted(parses) == ["off_s0", "st_s0", "st_s1", "st_s2"]
    assert report._CONFIGS is None


def test_a_run_listed_twice_is_still_refused_naming_both_ways(tmp_path):
    runs = [_run(tmp_path, f"st_s{i}") for i in range(6)]
    again = tmp_path / "st_s5" / ".." / "st_s1"         # st_s1 written another way, last
    with pytest.raises(ValueError, match=f"^entry 'ST' lists the run {re.escape(str(again))} twice \\(also as "
                                         f"{re.escape(str(runs[1]))}\\); it would count twice in the mean over runs: "
                                         "list each run once"):
        check_one_recipe("ST", runs + [again])
    with pytest.raises(ValueError, match=f"^entry 'ST' lists the run {re.escape(str(runs[2]))} twice; it would"):
        check_one_recipe("ST", [runs[2], runs[0], runs[2]])
    link = tmp_path / "link"
    link.symlink_to(runs[0], target_is_directory=True)
    with pytest.raises(ValueError, match=f"lists the run {re.escape(str(link))} twice \\(also as "
                                         f"{re.escape(str(runs[0]))}\\)"):
        check_one_recipe("ST", runs[:3] + [link])


def test_one_seed_run_twice_and_two_recipes_are_refused_as_before(tmp_path):
    runs = [_run(tmp_path, f"st_s{i}") for i in range(3)]
    dup = _run(tmp_path, "copy", seed=1)
    with pytest.raises(ValueError, match=f"^entry 'ST': {re.escape(str(runs[1]))} and {re.escape(str(dup))} are the "
                                         r"same recipe with the same seed \(seed=1\): one seed run twice"):
        check_one_recipe("ST", runs + [dup])
    other = _run(tmp_path, "off_s7", model="offtanet")
    with pytest.raises(ValueError, match=f"^entry 'ST': {re.escape(str(runs[0]))} and {re.escape(str(other))} are "
                                         r"different recipes, not seeds of one \(they differ in model.name "
                                         r"\('ststnet' vs 'offtanet'\)\)"):
        check_one_recipe("ST", runs + [other])


def test_a_config_changed_between_two_commands_is_read_anew(tmp_path, capsys):
    runs = [_run(tmp_path, f"st_s{i}") for i in range(3)]
    assert main(["table", f"ST={tmp_path}/st_s*"]) == 0
    capsys.readouterr()
    (runs[2] / "config.yaml").write_text(yaml.safe_dump(_config("st_s2", 2, "offtanet"), sort_keys=False))
    assert main(["table", f"ST={tmp_path}/st_s*"]) == 2
    assert "model.name ('ststnet' vs 'offtanet')" in capsys.readouterr().err
    check_one_recipe("two", runs[:2])                   # the unchanged runs still pass


def test_a_config_changed_within_one_block_is_read_anew(tmp_path, parses):
    run = _run(tmp_path, "st_s0")
    with reading_configs():
        assert run_recipe(run)["model"]["name"] == "ststnet"
        assert run_recipe(run)["model"]["name"] == "ststnet"
        assert parses == ["st_s0"]                      # the second read from the block's copy
        (run / "config.yaml").write_text(yaml.safe_dump(_config("st_s0", 0, "offtanet"), sort_keys=False))
        assert run_recipe(run)["model"]["name"] == "offtanet"
        assert parses == ["st_s0", "st_s0"]
        with reading_configs():                         # a block inside shares the outer one's files
            run_recipe(run)
        assert parses == ["st_s0", "st_s0"] and report._CONFIGS is not None
    assert report._CONFIGS is None
    run_recipe(run)                                     # outside a block: read each time
    run_recipe(run)
    assert parses == ["st_s0"] * 4


def test_a_damaged_config_is_named_inside_a_block_too(tmp_path):
    runs = [_run(tmp_path, f"st_s{i}") for i in range(2)]
    (runs[1] / "config.yaml").write_text("model: [unclosed\n")
    for _ in range(2):                                  # a damaged file is not kept: named each time
        with pytest.raises(ValueError, match=f"(?s){re.escape(str(runs[1] / 'config.yaml'))}: cannot be read .*looks "
                                             "damaged or incomplete"):
            with reading_configs():
                results_table([parse_entry(f"ST={tmp_path}/st_s*")])
    assert report._CONFIGS is None


CONFIGS = __import__("pathlib").Path(__file__).resolve().parents[1] / "configs"


def _pool_run(d, config: dict, oracle=False):
    """A finished run folder ``icegan suite --reuse`` offers: config.yaml as ``config``, run.json, predictions.csv
    and metrics.json."""
    d.mkdir(parents=True)
    (d / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (d / "run.json").write_text("{}")
    (d / "predictions.csv").write_text("fold,dataset,subject,clip,y_true,y_pred\n")
    (d / "metrics.json").write_text(json.dumps({"oracle_epoch": oracle}))
    return d


def test_suite_reuse_parses_each_config_once(tmp_path, parses):
    """reusable_runs parsed each config.yaml, dumped it and parsed it again (the comparable form)."""
    from icegan.commands.loso import LosoConfig
    from icegan.config import load_config, to_dict
    from icegan.suite import find_reusable_run, reusable_runs
    for i in range(4):
        _pool_run(tmp_path / "pool" / f"st_s{i}", {**to_dict(load_config(LosoConfig, CONFIGS / "features_ststnet.yaml",
                                                                          [f"seed={i}"])), "name": f"st_s{i}"})
    pool = reusable_runs([tmp_path / "pool"])
    assert sorted(parses) == [f"st_s{i}" for i in range(4)]
    want = load_config(LosoConfig, CONFIGS / "features_ststnet.yaml", ["seed=2"])
    assert find_reusable_run(want, pool) == (tmp_path / "pool" / "st_s2").resolve()


def test_suite_reuse_reads_a_changed_config_anew(tmp_path):
    from icegan.commands.loso import LosoConfig
    from icegan.config import load_config, to_dict
    from icegan.suite import find_reusable_run, reusable_runs
    cfg = load_config(LosoConfig, CONFIGS / "features_ststnet.yaml", ["seed=3"])
    run = _pool_run(tmp_path / "pool" / "st_s3", to_dict(cfg))
    assert find_reusable_run(cfg, reusable_runs([tmp_path / "pool"])) == run.resolve()
    (run / "config.yaml").write_text(yaml.safe_dump({**to_dict(cfg), "seed": 4}, sort_keys=False))
    assert find_reusable_run(cfg, reusable_runs([tmp_path / "pool"])) is None


def _yaml_texts():
    """Every shipped config as written, and as the run folders of its command hold it (the resolved config,
    :func:`icegan.config.config_yaml`)."""
    from test_configs import _config_class

    from icegan.config import config_yaml, load_config
    for path in sorted(CONFIGS.glob("*.yaml")):
        yield path.name, path.read_text(encoding="utf-8")
        yield f"{path.name} resolved", config_yaml(load_config(_config_class(path.name), path, []))


def test_a_parsed_config_compares_as_its_yaml_round_trip():
    """Skipping the dump-and-parse of a config.yaml just parsed gives the same comparable config (equal, and with the
    same types and reprs, which a near-miss note shows) on every shipped config and the configs of run folders."""
    from icegan.suite import _comparable
    n = 0
    for name, text in _yaml_texts():
        parsed = yaml.safe_load(text)
        fast, slow = _comparable(parsed, parsed=True), _comparable(parsed)
        assert fast == slow and repr(fast) == repr(slow), name
        assert parsed == yaml.safe_load(text), name             # the parsed dict is left as it was
        n += 1
    assert n >= 2 * 40
