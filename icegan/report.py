"""Results tables across finished LOSO runs (``icegan table``): one row per method, seeds pooled as mean ± std.

Each entry is a label and one or more run folders holding a ``metrics.json`` (written by ``icegan loso``,
``train.py`` or ``icegan ensemble``). A row shows UF1 and UAR overall and per dataset; with several runs (seeds)
the cell is ``mean ± std`` (sample standard deviation over the runs, n in its own column), never the best run.
"""
from __future__ import annotations

import glob
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from icegan.protocol import DATASET_TITLES

__all__ = ["TableEntry", "parse_entry", "results_table", "latex_escape"]


@dataclass
class TableEntry:
    """One row: ``label`` and the run folders whose metrics it pools."""
    label: str
    runs: list[Path]


def parse_entry(text: str) -> TableEntry:
    """``DIR``, ``LABEL=DIR`` or ``LABEL=DIR,DIR,...``; each DIR may be a glob pattern (``runs/G_s*``, folders only).
    Without a label the row is named after the folder.

    Raises:
        ValueError: a pattern that matches no folder, or an empty label or list (names the entry).
    """
    label, sep, spec = text.partition("=")
    if not sep:
        label, spec = Path(text.rstrip("/")).name, text
    if not label.strip() or not spec.strip():
        raise ValueError(f"table entry '{text}': expected DIR or LABEL=DIR[,DIR...]")
    runs: list[Path] = []
    for pat in spec.split(","):
        hits = (sorted(h for h in glob.glob(pat) if Path(h).is_dir()) if glob.has_magic(pat)
                else ([pat] if Path(pat).exists() else []))
        if not hits:
            raise ValueError(f"table entry '{text}': '{pat}' matches no run folder")
        runs += [Path(h) for h in hits]
    return TableEntry(label.strip(), runs)


def _load(run: Path) -> dict:
    f = run / "metrics.json"
    if not f.is_file():
        raise ValueError(f"{run}: no metrics.json (an unfinished run, or not a run folder)")
    m = json.loads(f.read_text())
    for key in ("protocol", "oracle_epoch", "overall", "per_dataset"):
        if key not in m:
            raise ValueError(f"{f}: no '{key}' (not an icegan metrics.json)")
    return m


def _stats(values: list[float]) -> tuple[float, float] | None:
    """(mean, sample std; NaN for one run) of a metric over runs, None when no run has it."""
    if not values:
        return None
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")


def _cell(st: tuple[float, float] | None, pm: str = "±", missing: str = "—") -> str:
    """``mean ± std`` to 4 decimals (the mean alone for one run; ``missing`` for none); ``pm`` is the sign between."""
    if st is None:
        return missing
    return f"{st[0]:.4f}" if np.isnan(st[1]) else f"{st[0]:.4f} {pm} {st[1]:.4f}"


LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                 "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    r"""``text`` with LaTeX's ten special characters escaped, for a table cell in text mode (``STSTNet_2 & co`` →
    ``STSTNet\_2 \& co``)."""
    return "".join(LATEX_SPECIAL.get(ch, ch) for ch in text)


def results_table(entries: Sequence[TableEntry], fmt: str = "markdown") -> str:
    """The table of ``entries`` as Markdown (paste into a README), LaTeX (paste into a paper) or CSV (for pandas / a
    spreadsheet).

    Columns: Method, Selection (honest / ORACLE epoch), Protocol, n (runs), Full UF1, Full UAR, then UF1 and UAR per
    dataset present in any run (SMIC, CASME II, SAMM first). Markdown cells: the metric of one run, or
    ``mean ± std`` (sample std) over the entry's runs, to 4 decimals. LaTeX: the same cells in a booktabs
    ``tabular`` (``\\usepackage{booktabs}``; pandas ``DataFrame.to_latex``) whose column groups (Full, SMIC,
    CASME II, SAMM) each span UF1 and UAR, labels escaped, ``--`` for a dataset an entry has no runs on. CSV: each
    metric as two numeric columns, ``<metric>`` (the mean) and ``<metric> std`` (empty for one run), full precision.

    Raises:
        ValueError: a run without metrics.json; an entry whose runs differ in protocol, in oracle selection, or in the
            number of folds or samples (pooling them would mix different experiments); ``fmt`` not markdown /
            latex / csv.
    """
    if fmt not in ("markdown", "latex", "csv"):
        raise ValueError(f"format must be markdown, latex or csv, got '{fmt}'")
    rows, datasets = [], []
    for e in entries:
        ms = [_load(r) for r in e.runs]
        for key in ("protocol", "oracle_epoch", "n_folds", "n_samples"):
            vals = {str(m.get(key)) for m in ms}
            if len(vals) > 1:
                raise ValueError(f"table entry '{e.label}': its runs differ in {key} ({sorted(vals)}); give them "
                                 "separate entries")
        for m in ms:
            datasets += [d for d in m["per_dataset"] if d not in datasets]
        rows.append((e, ms))
    order = list(DATASET_TITLES)
    datasets.sort(key=lambda d: (order.index(d) if d in order else len(order), d))
    metric_cols = [("Full", None)] + [(DATASET_TITLES.get(d, d), d) for d in datasets]
    head = ["Method", "Selection", "Protocol", "n"]
    body = []
    for e, ms in rows:
        cells = []
        for _, d in metric_cols:
            per = [m["overall"] if d is None else m["per_dataset"][d] for m in ms
                   if d is None or d in m["per_dataset"]]
            cells += [_stats([p["UF1"] for p in per]), _stats([p["UAR"] for p in per])]
        body.append(([e.label, "ORACLE epoch" if ms[0]["oracle_epoch"] else "honest", ms[0]["protocol"],
                       str(len(ms))], cells))
    names = [f"{t} {k}" for t, _ in metric_cols for k in ("UF1", "UAR")]
    if fmt == "csv":
        import csv
        import io
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(head + [c for n in names for c in (n, f"{n} std")])
        for lead, cells in body:
            w.writerow(lead + [x for st in cells for x in
                               (("", "") if st is None else (repr(st[0]), "" if np.isnan(st[1]) else repr(st[1])))])
        return buf.getvalue()
    if fmt == "latex":
        import pandas as pd
        cols = pd.MultiIndex.from_tuples([("", h) for h in head] + [(t, k) for t, _ in metric_cols
                                                                      for k in ("UF1", "UAR")])
        frame = pd.DataFrame([[latex_escape(x) for x in lead] + [_cell(st, "$\\pm$", "--") for st in cells]
                              for lead, cells in body], columns=cols)
        tab = frame.to_latex(index=False, escape=False, multicolumn=True, multicolumn_format="c",
                             column_format="llcr" + "c" * len(names))
        return ("% icegan table: UF1 / UAR pooled over all folds (MEGC2019); several runs: mean $\\pm$ sample std "
                "over the n runs;\n% honest = no selection on the held-out subject. Needs \\usepackage{booktabs}.\n"
                + tab)
    out = ["| " + " | ".join(head + names) + " |", "|" + "---|" * (len(head) + len(names))]
    out += ["| " + " | ".join(lead + [_cell(st) for st in cells]) + " |" for lead, cells in body]
    return "\n".join(out) + "\n"
