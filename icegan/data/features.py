"""Precomputed MEGC2019 flow features (``megc2019_htnet``): u, v and optical strain per clip.

Two layouts of the same files are read (see ``../shared/data/README.md`` and :func:`megc2019_layout`)::

    <root>/combined_3_class2_for_optical_flow.csv                 # dataset, sub, filename_o, label, ...
    <root>/flow_uvos_28/<sub>_<filename_o> .png                   # NOTE the space before ".png"
    <root>/faces_224/<imagename>                                  # the apex face of each clip

    # or the HTNet release as cloned (github.com/wangzhifengharrison/HTNet), root = the clone:
    <root>/combined_3_class2_for_optical_flow.csv
    <root>/datasets/STSNet_whole_norm_u_v_os/<sub>_<filename_o> .png
    <root>/datasets/combined_datasets_whole/<imagename>

Each PNG is a 28×28 RGB image whose channels hold the onset→apex TV-L1 flow of the clip, each channel
min–max normalised per image to 0..255: channel 0 = horizontal flow u, 1 = vertical flow v,
2 = optical strain. (Channel 0 is anti-symmetric under a left–right mirror of the face and
channel 1 symmetric, which is how u and v were told apart.) Because of the per-image min–max
normalisation, negating u maps a value ``a`` in [0, 1] to ``1 - a`` exactly; horizontal-flip
augmentation relies on this (:func:`icegan.recognition.hflip_features`).

Features are returned as float32 tensors in [0, 1] of shape (3, H, W) (u, v, strain); labels are
MEGC2019 class ids (negative 0, positive 1, surprise 2); subjects are dataset-prefixed
(``casme2/sub01``, ``samm/006``, ``smic/s01``).

torch is imported where tensors are made (and :class:`MEGC2019Features`, a ``torch.utils.data.Dataset``, is built on
first use), so the names, sample tables and subject ids of this module load without it: ``icegan table``, ``compare``
and ``ensemble`` import :func:`subject_dataset` and :func:`validate_samples` and never touch a tensor.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Optional

import numpy as np
import pandas as pd
from PIL import Image

if TYPE_CHECKING:
    import torch

    MEGC2019Features: type          # built by __getattr__ (end of this module) on first use

from flownet.user_numbers import read_int
from icegan.paths import shared_data_root

from .records import CLASS3_IDS, CLASS3_NAMES
from .sheets import smic_clip_name

__all__ = ["CSV_NAME", "FLOW_DIR", "DATASETS", "LAYOUTS", "megc2019_layout", "dataset_name", "subject_dataset",
           "dataset_indices",
           "FeatureSet", "read_megc2019_table", "load_megc2019_features", "MEGC2019Features", "validate_samples",
           "recenter_flow", "keep_datasets"]

CSV_NAME = "combined_3_class2_for_optical_flow.csv"
FLOW_DIR = "flow_uvos_28"
FACE_DIR = "faces_224"
#: accepted layouts, in the order they are tried: (name, flow folder, face folder), relative to the root
LAYOUTS = (("icegan", FLOW_DIR, FACE_DIR),
           ("HTNet release", "datasets/STSNet_whole_norm_u_v_os", "datasets/combined_datasets_whole"))
#: canonical dataset names of the MEGC2019 composite
DATASETS = ("casme2", "samm", "smic")
#: known spellings, as :func:`dataset_name` compares them: lower-case, without '-' or '_' (``CASME_II``,
#: ``casme-2``, ``SMIC-HS``)
_ALIASES = {"casme2": "casme2", "casmeii": "casme2", "samm": "samm", "smic": "smic", "smichs": "smic"}
_SEPARATORS = re.compile(r"[-_]+")


def default_root() -> Path:
    """``<shared data>/megc2019_htnet`` (``$ICEGAN_SHARED_DATA`` respected)."""
    return shared_data_root() / "megc2019_htnet"


_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def dataset_name(name) -> Optional[str]:
    """Canonical dataset name: a known dataset in any case, with or without ``-`` or ``_`` (``CASME_2``,
    ``CASME-II``, ``casme_ii`` → ``casme2``; ``SMIC-HS`` → ``smic``), any other short name of letters, digits, ``_``
    and ``-`` lower-cased (a table may hold other datasets, e.g. CAS(ME)³); None when the name is unusable (empty,
    spaces, ``/``...)."""
    n = str(name).strip().lower()
    n = _ALIASES.get(_SEPARATORS.sub("", n), n)
    return n if _NAME_RE.match(n) else None


def subject_dataset(subject) -> str:
    """The dataset of a dataset-prefixed subject id: ``"casme2/sub01"`` → ``"casme2"``."""
    return str(subject).split("/", 1)[0]


def dataset_indices(subjects: Iterable) -> tuple[torch.Tensor, list[str]]:
    """The dataset of every dataset-prefixed subject id as an index: ``(index (N,) int64 in 0..D-1, the D dataset
    names in index order, sorted)``; e.g. ``["smic/s1", "casme2/sub01"]`` → ``(tensor([1, 0]), ["casme2", "smic"])``.
    """
    import torch
    names = [subject_dataset(s) for s in subjects]
    order = sorted(set(names))
    position = {d: i for i, d in enumerate(order)}
    return torch.tensor([position[d] for d in names], dtype=torch.long), order


def megc2019_layout(root: str | Path) -> tuple[str, Path, Path]:
    """Which of :data:`LAYOUTS` a feature root uses: (layout name, flow folder, face folder).

    The first layout whose flow folder exists under ``root`` wins. When none exists the icegan layout is
    returned, so that the per-clip check names the first missing file; its message then lists both
    layouts (:func:`_read_png`).

    Args:
        root: folder holding ``combined_3_class2_for_optical_flow.csv``.

    Returns:
        (name, flow folder, face folder), the folders as absolute-or-relative paths under ``root``.
    """
    root = Path(root)
    for name, flow, face in LAYOUTS:
        if (root / flow).is_dir():
            return name, root / flow, root / face
    name, flow, face = LAYOUTS[0]
    return name, root / flow, root / face


def validate_samples(samples: pd.DataFrame, n_classes: int = 3, source: str = "samples",
                     unlabelled: bool = False) -> pd.DataFrame:
    """Check a sample table (columns dataset, subject, clip, label) and return a clean copy.

    ``label`` becomes int64, the others str. A label is an int, a numpy integer or a whole float (``1.0``: a pandas
    column of floats), or text of ASCII digits with an optional sign (:func:`flownet.user_numbers.read_int`: ``'1'``,
    ``' 2 '``; not ``'1.0'``, ``'1e0'``, ``'1_0'`` or other scripts' digits such as ``'１'``); a bool or bytes is not
    a label.
    Subjects must be prefixed by their dataset (``casme2/sub01``). ``unlabelled``: also accept the label -1 (unknown;
    clips to be scored, never trained on).

    Raises:
        ValueError: a missing column, a label that is not a class id in ``0..n_classes-1`` as above (the
            message names the row and clip), a subject without its ``<dataset>/`` prefix, or a
            duplicated (subject, clip) pair.
    """
    need = ["dataset", "subject", "clip", "label"]
    missing = [c for c in need if c not in samples.columns]
    if missing:
        raise ValueError(f"{source}: missing column(s) {missing}; need {need}")
    out = samples.copy()
    out.index = range(len(out))
    for col in ("dataset", "subject", "clip"):
        out[col] = out[col].astype(str)
    labels = []
    for i, (lab, clip) in enumerate(zip(samples["label"].tolist(), out["clip"])):
        val = None
        if isinstance(lab, (str, bytes)):       # text: ASCII digits as typed, not float()'s '１', '1e0', '1_0'
            try:
                val = read_int(lab)
            except ValueError:
                pass
        elif not isinstance(lab, (bool, np.bool_)):     # an int, numpy integer or whole float; True is not class 1
            try:
                f = float(lab)
                val = int(f) if f.is_integer() else None
            except (TypeError, ValueError, OverflowError):
                pass
        if val is None or not (0 <= val < n_classes or (unlabelled and val == -1)):
            raise ValueError(f"{source}: row {i} (clip '{clip}'): label {lab!r} is not a class id in "
                             f"0..{n_classes - 1}")
        labels.append(val)
    out["label"] = np.asarray(labels, dtype=np.int64)
    bad = [i for i, (d, s) in enumerate(zip(out["dataset"], out["subject"])) if not s.startswith(d + "/")]
    if bad:
        i = bad[0]
        raise ValueError(f"{source}: row {i} (clip '{out['clip'][i]}'): subject '{out['subject'][i]}' must be "
                         f"prefixed by its dataset, e.g. '{out['dataset'][i]}/{out['subject'][i]}'")
    dup = out.duplicated(["subject", "clip"])
    if dup.any():
        i = int(np.flatnonzero(dup.values)[0])
        raise ValueError(f"{source}: row {i}: clip '{out['clip'][i]}' of subject '{out['subject'][i]}' appears twice")
    return out


def read_megc2019_table(root: str | Path | None = None, datasets: Optional[Iterable[str]] = None) -> pd.DataFrame:
    """Read the 442-row composite table of ``megc2019_htnet``.

    Args:
        root: folder holding ``combined_3_class2_for_optical_flow.csv`` and the flow folder, in either
            layout of :data:`LAYOUTS` (``flow_uvos_28/``, or the HTNet release's
            ``datasets/STSNet_whole_norm_u_v_os/``) (default: ``<shared data>/megc2019_htnet``).
        datasets: keep only these datasets (``casme2``, ``samm``, ``smic``, or any other name the table
            holds); None keeps all.

    Returns:
        DataFrame with columns dataset, subject (prefixed), clip, label (int 0..2), path (the
        flow PNG, which is not opened here), face_path (the apex face in the face folder: the CSV's
        ``imagename`` column, else ``<sub>_<clip>.jpg``; SMIC's names differ from its flow files'), in file order.

    Raises:
        FileNotFoundError: the CSV is missing (message names it).
        ValueError: the CSV is empty, unreadable (e.g. a row with more fields than the header) or has no rows; a
            required column is missing; an empty dataset, sub, filename_o or label cell; an unusable dataset name
            (:func:`dataset_name`; names other than the composite's three are accepted), a requested dataset the
            table does not hold, a bad label, or a SMIC label that contradicts the class its clip name says
            (:func:`icegan.data.sheets.smic_clip_name`: ``s01_ne_01`` labelled 2) (the message names the CSV and, for
            a row, its line in the file and the clip).
    """
    root = Path(root) if root is not None else default_root()
    csv = root / CSV_NAME
    if not csv.is_file():
        inside = sorted(str(f.parent) for f in root.glob(f"*/{CSV_NAME}")) if root.is_dir() else []
        hint = f"; it is in {inside[0]}: give that folder" if inside else ""    # data.root one folder too high
        raise FileNotFoundError(f"MEGC2019 feature table not found: {csv} (set data.root or ICEGAN_SHARED_DATA)"
                                f"{hint}")
    from icegan.data.feature_table import read_csv_cells, short_row_note    # that module imports this one
    raw = read_csv_cells(csv)                  # every cell a string; blank lines kept, so row i is line i + 2
    need = ["dataset", "sub", "filename_o", "label"]
    missing = [c for c in need if c not in raw.columns]
    if missing:
        raise ValueError(f"{csv}: missing column(s) {missing}; found {list(raw.columns)}")
    raw = raw[(raw != "").any(axis=1)]         # blank lines; the index keeps each row's place in the file
    if raw.empty:
        raise ValueError(f"{csv}: no rows (only the header line); the table needs one row per clip: "
                         f"{', '.join(need)}")
    _, flow_dir, face_dir = megc2019_layout(root)
    rows = []
    for i, r in raw.iterrows():
        line = int(i) + 2  # 1-based line number in the file (header on line 1, blank lines counted)
        empty = [c for c in need if not r[c].strip()]
        if empty:
            clip = r["filename_o"].strip()
            raise ValueError(f"{csv}, line {line}{f' (clip {clip!r})' if clip else ''}: empty {', '.join(empty)} "
                             f"cell{'s' if len(empty) > 1 else ''}{short_row_note(raw, line)}")
        ds = dataset_name(r["dataset"])
        if ds is None:
            raise ValueError(f"{csv}, line {line} (clip '{r['filename_o']}'): dataset name '{r['dataset']}' is not "
                             f"usable; give a short name of letters, digits, '_' or '-' (known datasets, in any "
                             f"case, with or without '-' or '_': {sorted(set(_ALIASES))})")
        lab = r["label"].strip()
        if lab not in ("0", "1", "2"):
            raise ValueError(f"{csv}, line {line} (clip '{r['filename_o']}'): label {r['label']!r} is not a class id "
                             f"in 0..2 (0 negative, 1 positive, 2 surprise)")
        sub, clip = r["sub"].strip(), r["filename_o"].strip()
        named = smic_clip_name(clip) if ds == "smic" else None
        if named is not None and CLASS3_NAMES[int(lab)] != named[1]:
            raise ValueError(f"{csv}, line {line} (clip '{clip}'): label {lab} ({CLASS3_NAMES[int(lab)]}) contradicts "
                             f"the clip's name, which says {named[1]} (SMIC-HS clip names give the class, as its "
                             f"folder tree does): set the label to {CLASS3_IDS[named[1]]}")
        face = (r.get("imagename") or "").strip() or f"{sub}_{clip}.jpg"
        rows.append({"dataset": ds, "subject": f"{ds}/{sub}", "clip": clip, "label": int(lab),
                     "path": str(flow_dir / f"{sub}_{clip} .png"), "face_path": str(face_dir / face), "line": line})
    table = keep_datasets(pd.DataFrame(rows, columns=["dataset", "subject", "clip", "label", "path", "face_path",
                                                      "line"]), datasets, csv)
    dup = table.duplicated(["subject", "clip"], keep=False)
    if dup.any():           # named by the file's lines (validate_samples only knows the row's place among the rows)
        twice = table[dup]
        first = twice.iloc[0]
        lines = twice["line"][(twice["subject"] == first["subject"]) & (twice["clip"] == first["clip"])].tolist()
        raise ValueError(f"{csv}, lines {', '.join(map(str, lines[:-1]))} and {lines[-1]}: clip '{first['clip']}' of subject "
                         f"'{first['subject']}' appears {'twice' if len(lines) == 2 else f'{len(lines)} times'}; "
                         f"delete the extra row")
    return validate_samples(table.drop(columns=["line"]), source=str(csv))


def keep_datasets(table: pd.DataFrame, datasets: Optional[Iterable[str]], source) -> pd.DataFrame:
    """The rows of ``table`` (column ``dataset``, canonical names) whose dataset is one of ``datasets`` (aliases
    accepted, :func:`dataset_name`), renumbered from 0; all rows when ``datasets`` is None.

    Raises:
        ValueError: a requested dataset the table does not hold (names ``source`` and the datasets it has).
    """
    if datasets is None:
        return table
    keep = [dataset_name(d) or str(d) for d in datasets]
    present = set(table["dataset"])
    unknown = [d for d in keep if d not in present]
    if unknown:
        raise ValueError(f"dataset(s) {unknown} not in {source}; it has {sorted(present)}")
    return table[table["dataset"].isin(keep)].reset_index(drop=True)


def _read_png(path: str, clip: str, size: Optional[int]) -> np.ndarray:
    p = Path(path)
    if not p.is_file():
        hint = ""
        if not p.parent.is_dir():
            hint = (" (the flow folder itself is missing; the feature root must hold one of: "
                    + "; ".join(f"{flow}/ ({name} layout)" for name, flow, _ in LAYOUTS) + ")")
        elif (p.parent / p.name.replace(" .png", ".png")).is_file():
            hint = " (a file without the space before .png exists: the loader expects the dataset's original names)"
        raise FileNotFoundError(f"flow feature file of clip '{clip}' not found: {p}{hint}")
    try:
        with Image.open(p) as im:       # as stored, EXIF orientation ignored: turning maps would not turn (u, v)
            if im.mode not in ("RGB", "RGBA"):
                raise ValueError(f"flow feature file of clip '{clip}' is a {im.mode}-mode image ({len(im.getbands())} "
                                 f"band(s) {''.join(im.getbands())}); expected RGB whose channels hold u, v and optical "
                                 f"strain: {p}")
            im = im.convert("RGB")
            if size is not None and im.size != (size, size):
                raise ValueError(f"flow feature file of clip '{clip}' is {im.size[0]}×{im.size[1]}, expected "
                                 f"{size}×{size}: {p}")
            return np.asarray(im, dtype=np.uint8)
    except OSError as exc:
        raise ValueError(f"flow feature file of clip '{clip}' cannot be read as an image: {p}: {exc}") from None


class FeatureSet:
    """An in-memory feature set: a sample table plus one feature tensor row per sample.

    Attributes:
        samples: DataFrame with columns dataset, subject (prefixed), clip, label (int64 0..K-1; -1 = unknown when
            built with ``unlabelled=True``, for clips to be scored by ``icegan predict``) (and possibly path), row i
            describing ``features[i]``.
        features: float32 tensor (N, 3, H, W): u, v, optical strain, each in [0, 1].
        n_classes: K, the classes of the label set of ``label`` (:mod:`icegan.labels`; 3 for MEGC2019, 5 for
            CASME II's or SAMM's five).
        unlabelled: True for a set of clips to be scored, labels -1 allowed.

    A set derived from another one (rows kept, maps recentred or cut) is made with :meth:`replace`, which keeps its
    ``n_classes`` and ``unlabelled``.

    Raises:
        ValueError: a bad sample table (:func:`validate_samples`, a label outside ``0..n_classes-1`` included), a
            feature tensor of another shape than (N, C, H, W), NaN or Inf features.
    """

    def __init__(self, samples: pd.DataFrame, features: torch.Tensor, unlabelled: bool = False, n_classes: int = 3):
        import torch
        samples = validate_samples(samples, n_classes, unlabelled=unlabelled)
        self.n_classes = int(n_classes)
        self.unlabelled = bool(unlabelled)
        if features.ndim != 4 or features.shape[0] != len(samples):
            raise ValueError(f"features must be (N, C, H, W) with N = {len(samples)} rows, got {tuple(features.shape)}")
        if not torch.isfinite(features).all():
            bad = int(torch.nonzero(~torch.isfinite(features.flatten(1)).all(1))[0])
            raise ValueError(f"features of clip '{samples['clip'][bad]}' (row {bad}) contain NaN or Inf")
        self.samples = samples
        self.features = features.float()

    def __len__(self) -> int:
        return len(self.samples)

    def replace(self, samples: Optional[pd.DataFrame] = None, features: Optional[torch.Tensor] = None,
                keep=None) -> "FeatureSet":
        """A feature set derived from this one, of the same label set (``n_classes``) and ``unlabelled``: with new
        ``samples`` and/or ``features`` (None: this set's), then cut to the rows ``keep`` (a (N,) bool array or
        tensor; None: every row), the sample table's index reset.

        Raises:
            ValueError: as the constructor (e.g. features of another number of rows than the samples), or ``keep``
                not of N booleans.
        """
        import torch
        samples = self.samples if samples is None else samples
        features = self.features if features is None else features
        if keep is not None:
            # a writable copy: a pandas mask is read-only, and a tensor is cloned rather than read through NumPy
            mask = keep.detach().cpu().clone() if isinstance(keep, torch.Tensor) else \
                torch.from_numpy(np.array(keep, copy=True))
            if mask.dtype != torch.bool or mask.shape != (len(samples),):
                raise ValueError(f"keep must be {len(samples)} booleans (one per row), got {mask.dtype} "
                                 f"{tuple(mask.shape)}")
            samples = samples[mask.numpy()].reset_index(drop=True)
            features = features[mask]
        return FeatureSet(samples, features, unlabelled=self.unlabelled, n_classes=self.n_classes)

    @property
    def labels(self) -> torch.Tensor:
        """(N,) int64 class ids."""
        import torch
        return torch.tensor(self.samples["label"].to_numpy(dtype=np.int64))


def load_megc2019_features(root: str | Path | None = None, datasets: Optional[Iterable[str]] = None,
                           size: Optional[int] = 28) -> FeatureSet:
    """Load every flow feature of the composite into memory (442 × 3 × 28 × 28 floats ≈ 4 MB).

    Args:
        root: ``megc2019_htnet`` folder (default ``<shared data>/megc2019_htnet``).
        datasets: subset of ``casme2``, ``samm``, ``smic`` (None: all three).
        size: expected side of the PNGs in pixels (28); a file of another size is an error. None: any square
            size, the first clip's, which every other file must then have (e.g. 112×112 maps).

    Returns:
        :class:`FeatureSet` with features (N, 3, size, size) float32 in [0, 1], channels u, v, strain.

    Raises:
        FileNotFoundError: the table or a clip's PNG is missing (the message names the clip and path).
        ValueError: a bad label (names the CSV line and clip), an unreadable or wrongly sized PNG (names the
            clip and file).
    """
    import torch
    table = read_megc2019_table(root, datasets)
    arrays = []
    for p, c in zip(table["path"], table["clip"]):
        arrays.append(_read_png(p, c, size))
        if size is None:
            h, w = arrays[0].shape[:2]
            if h != w:
                raise ValueError(f"flow feature file of clip '{c}' is {w}×{h}: the maps must be square: {p}")
            size = h
    x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div_(255.0).contiguous()
    return FeatureSet(table, x)


def recenter_flow(x: torch.Tensor) -> torch.Tensor:
    """Move the median of each clip's u and v maps to 0.5; strain is left as it is.

    The per-image min–max normalisation of ``flow_uvos_28`` puts zero motion at a grey level that
    depends on the clip's own extremes (over the 442 clips the median of u sits at 0.49 ± 0.15 and
    that of v at 0.53 ± 0.23), so the same facial motion reaches a recognizer at different offsets.
    This undoes the offset with the clip's own median (most of a face barely moves between onset and
    apex, so the median is its background motion): ``u' = u - median(u) + 0.5``, the same for v. It
    uses nothing but the clip itself, so it is as inductive as the features (no statistics of
    other clips or subjects). The median is the midpoint of the two middle values (``torch.quantile``),
    which keeps the mirror rule of :func:`icegan.recognition.hflip_features` exact:
    ``recenter(hflip(x)) = hflip(recenter(x))`` (both map u to 1 − u).

    Args:
        x: (N, 3, H, W) features, channels u, v, strain (values of any range; [0, 1] for the PNGs).

    Returns:
        (N, 3, H, W) float tensor, strain unchanged; for u and v in [0, 1] (the PNGs) they then lie in
        [-0.5, 1.5] (a shift by 0.5 - median, median in [0, 1]); inputs of another range are shifted the same
        way, so their values keep their spread around 0.5 (u, v in [-5, 5] can reach 10.5).

    Raises:
        ValueError: ``x`` is not (N, 3, H, W).
    """
    import torch
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"recenter_flow needs (N, 3, H, W) u/v/strain features, got {tuple(x.shape)}")
    uv = x[:, :2].float()
    med = torch.quantile(uv.flatten(2), 0.5, dim=-1)           # (N, 2), midpoint of the two middles
    return torch.cat([uv - med[..., None, None] + 0.5, x[:, 2:].float()], dim=1)


def __getattr__(name: str):
    """:class:`MEGC2019Features`, built on its first use: its base, ``torch.utils.data.Dataset``, needs torch, which
    the rest of this module does not load (a name lookup such as ``from icegan.data.features import
    MEGC2019Features`` builds it; every lookup gets the same class)."""
    if name != "MEGC2019Features":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from torch.utils.data import Dataset

    class MEGC2019Features(Dataset):
        """``torch.utils.data.Dataset`` over the precomputed features of ``megc2019_htnet``.

        Item ``i`` is a dict: ``features`` float32 (3, 28, 28) in [0, 1] (u, v, strain), ``label`` int
        (0 negative, 1 positive, 2 surprise), ``dataset`` str, ``subject`` str (prefixed), ``clip`` str.
        All files are read once at construction (errors are raised there, naming the clip).
        """

        def __init__(self, root: str | Path | None = None, datasets: Optional[Iterable[str]] = None):
            self.data = load_megc2019_features(root, datasets)

        def __len__(self) -> int:
            return len(self.data)

        def __getitem__(self, i: int) -> dict:
            row = self.data.samples.iloc[i]
            return {"features": self.data.features[i], "label": int(row["label"]), "dataset": row["dataset"],
                    "subject": row["subject"], "clip": row["clip"]}

    MEGC2019Features.__qualname__ = "MEGC2019Features"         # pickled and shown as icegan.data.features.<name>
    return globals().setdefault(name, MEGC2019Features)
