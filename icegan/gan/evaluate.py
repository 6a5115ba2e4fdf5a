"""Evaluation of a trained ICE-GAN (``icegan gan eval``).

Metrics (issue #5; the JSON keys in brackets):

(a) identity preservation — face_recognition's 128-d dlib embedding of every onset and every
    synthetic apex; [``identity_mean_distance``] mean Euclidean distance between a synthetic apex and
    its own onset; [``identity_rank1``] fraction of synthetic apexes whose nearest onset embedding,
    among the onsets of all evaluated clips, belongs to their own subject. Embeddings are computed
    on the known face box (the whole crop, ``known_face_locations=[(0, S, S, 0)]``), never a fresh
    detection, on an 8-bit RGB image made by repeating the grayscale face in the three channels;
    faces smaller than ``upsample_to`` pixels (default 128) are first upsampled with bicubic
    interpolation, so 64×64 models are measured at the same 128×128 scale as the issue's reference
    numbers (onset vs real apex 0.10, different subjects 0.50). The same numbers for the *real*
    apexes are reported beside them (``real_apex_*``) as the reference.
(b) controllability — a recognizer trained on real (onset, apex) pairs of the training subjects
    (:class:`FlowRecognizer`: OpenCV Farneback optical flow onset→apex and its optical strain,
    normalised per pair, resized to 28×28, standardised, logistic regression with balanced class
    weights from scikit-learn) classifies (onset, synthetic apex); [``controllability``] fraction
    classified as the requested class, [``controllability_per_class``] per requested class. Its
    accuracy / UF1 on the *real* held-out pairs is reported too (``recognizer_real_*``): it bounds
    how much the controllability number can say. A generator that copies its onset scores 1/3.
(b') independent controllability — the recognizer of (b) shares its training pairs with the class-mean
    motion prior of a ``motion_prior`` generator, so it can reward class-typical motion almost by
    construction. :class:`CrossDatasetRecognizer` shares neither data nor flow code with it: STSTNet
    (the ``configs/features_ststnet.yaml`` recipe) trained on the MEGC2019 composite's precomputed TV-L1
    features of the *other* datasets — those of ``megc2019_htnet`` (CASME II, SAMM, SMIC) holding no subject the
    GAN trained on and none evaluated (:func:`_cross_dataset_datasets`; SAMM and SMIC for a CASME II GAN) — applied
    to (u, v, optical strain) of flownet's TV-L1 flow onset→apex, min–max normalised per map at 28×28
    (:func:`flownet.strain.flow_features`). [``controllability_cross_dataset``] and
    [``controllability_cross_dataset_per_class``], and its accuracy / UF1 on the real held-out pairs
    (``cross_dataset_real_*``), [``cross_dataset_trained_on``] its datasets. Computed when ``megc2019_htnet`` is
    present and a dataset remains (otherwise None, with a log line and the reason in [``cross_dataset_skipped``]: a
    fold GAN of the whole composite, ``configs/megc2019.yaml``, has none).
(c) [``expcaps_uf1``, ``expcaps_uar``] the discriminator's ExpCaps as a recognizer on the held-out
    real apexes (argmax capsule length); a motion-input discriminator (``motion_input``) is given each apex with
    its own onset. These scores (and the ``*_real_uf1`` of (b), (b')) are MEGC UF1 / UAR,
    :func:`icegan.metrics.compute_metrics` as in the LOSO runs: means over the classes present in the held-out
    labels, so a class with no held-out clip takes no part (labels [2, 0, 0, 0, 0] all answered 0: UF1 4/9, UAR
    1/2). With every class held out (the 5-subject CASME II sets of docs/benchmarks.md: 19 / 6 / 4 clips) this is
    scikit-learn's macro F1 / recall over all classes.
    Also reported, to read (a) and (b) together: [``z_diversity``] mean absolute grey-level
    difference (0–255) between the first two noise draws of the same (onset, class);
    [``class_diversity``] the same between requested classes (first draw); [``mean_abs_change_from_onset``]
    synthetic apex vs its onset — a copy of the onset scores 0 on all three.
(d) [``faces_per_s``] generator throughput (batch 16, inference mode, eval mode) on the evaluation
    device (:func:`generator_speed`).
(e) one grid image per class (onset | synthetic apex of that class, 8 onsets) in ``out_dir``.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .pairs import CLASS_NAMES, PairSet, load_casme2_pairs, to_tensor
from .synthesis import synthesize, to_uint8

__all__ = ["face_embeddings", "identity_metrics", "diversity_metrics", "FlowRecognizer", "CrossDatasetRecognizer",
           "generator_speed", "run_eval", "evaluate_generator", "metrics_markdown", "training_faces_in",
           "TRAINING_FACE_TOLERANCE", "TRAINING_FACE_CHECK", "training_face_text", "training_face_matches",
           "checkpoint_training_pairs"]

log = logging.getLogger(__name__)


def face_embeddings(faces: np.ndarray, upsample_to: int = 128) -> np.ndarray:
    """face_recognition 128-d embeddings of grayscale face crops, with the whole crop as the face box.

    Args:
        faces: (N, H, W) uint8 grayscale face crops (already cropped to the face).
        upsample_to: crops smaller than this (pixels) are resized (bicubic) to upsample_to × upsample_to.
    Returns:
        (N, 128) float64.
    Raises:
        ValueError: not (N, H, W) uint8.
    """
    import cv2

    from icegan.data.landmarks import face_recognition_modules
    face_recognition = face_recognition_modules()[0]
    if faces.dtype != np.uint8 or faces.ndim != 3:
        raise ValueError(f"face_embeddings expects uint8 (N, H, W), got {faces.dtype} {faces.shape}")
    out = np.zeros((len(faces), 128))
    for i, f in enumerate(faces):
        if max(f.shape) < upsample_to:
            f = cv2.resize(f, (upsample_to, upsample_to), interpolation=cv2.INTER_CUBIC)
        h, w = f.shape
        rgb = np.ascontiguousarray(np.repeat(f[:, :, None], 3, axis=2))
        out[i] = face_recognition.face_encodings(rgb, known_face_locations=[(0, w, h, 0)])[0]
    return out


#: mean absolute grey-level difference (0–255) at or under which a face of ``icegan gan eval --data DIR`` is taken for a
#: training face (:func:`training_faces_in`): a copy of the frame, or the frame saved again without loss, differs by 0;
#: consecutive frames of one CASME II clip differ by about 0.5 (32×32), 1.0 (64×64) and 1.4 (128×128)
TRAINING_FACE_TOLERANCE = 0.25


def training_faces_in(faces: np.ndarray, train_faces: np.ndarray,
                      tolerance: float = TRAINING_FACE_TOLERANCE) -> dict[int, int]:
    """Which of ``faces`` are faces the generator trained on.

    Args:
        faces: (N, S, S) uint8 faces, resized as the training faces were (:func:`icegan.gan.generate.load_onsets`).
        train_faces: (M, S, S) uint8 training faces (the onsets and apexes of the checkpoint's training pairs).
        tolerance: largest mean absolute grey-level difference (0–255) of a match (:data:`TRAINING_FACE_TOLERANCE`).
    Returns:
        ``{index in faces: index of its nearest training face}`` for every face within ``tolerance`` of one, in
        ascending order of the face index (empty when none is).
    Raises:
        ValueError: either set is not uint8 (names the argument and its dtype: float faces, e.g. in [0, 1], would
            be compared as other grey levels), or the two are not (N, S, S) faces of the same size.
    """
    for arg, a in (("faces", faces), ("train_faces", train_faces)):
        if a.dtype != np.uint8:
            raise ValueError(f"training_faces_in: {arg} must be uint8 faces (0-255), got {a.dtype}: give grey levels "
                             f"0-255 as np.uint8, as icegan.gan.generate.load_onsets and the training pairs hold them")
    if faces.ndim != 3 or train_faces.ndim != 3 or faces.shape[1:] != train_faces.shape[1:]:
        raise ValueError(f"training_faces_in: faces {faces.shape} and training faces {train_faces.shape} must be "
                         f"(N, S, S) faces of the same size")
    found: dict[int, int] = {}
    if not len(train_faces):
        return found
    train = train_faces.astype(np.int16)
    means = train.mean(axis=(1, 2))
    for i, f in enumerate(faces.astype(np.int16)):
        # |mean(a) - mean(b)| <= mean|a - b|: only training faces of a mean grey level that close can match
        near = np.flatnonzero(np.abs(means - f.mean()) <= tolerance)
        if not len(near):
            continue
        d = np.abs(train[near] - f).mean(axis=(1, 2))
        j = int(d.argmin())
        if d[j] <= tolerance:
            found[i] = int(near[j])
    return found


#: what the training-face check (:func:`training_face_matches`) compares an image with, and what it cannot catch
TRAINING_FACE_CHECK = ("the onsets and apexes of its training pairs (apex neighbours included when it trained on "
                       f"them) and their mirror images, within {TRAINING_FACE_TOLERANCE} grey levels; not checked: "
                       "other frames of the training clips, shifted or re-cropped copies, and other images of the "
                       "training subjects")


def training_face_text(hits: dict[int, str], files: Sequence[Path]) -> str:
    """The text naming training-face hits, for ``icegan gan eval --data`` (refused) and ``icegan generate`` (warned).

    Args:
        hits: image index -> the training clip and frame it matches (:func:`training_face_matches`).
        files: the images, indexed as in ``hits`` (only their names are shown).
    Returns:
        ``"a.jpg = <clip frame>; ...; and N more; compared with <TRAINING_FACE_CHECK>"``: the first 5 hits, then a
        count of the rest.
    """
    shown = "; ".join(f"{files[i].name} = {w}" for i, w in list(hits.items())[:5])
    more = f"; and {len(hits) - 5} more" if len(hits) > 5 else ""
    return f"{shown}{more}; compared with {TRAINING_FACE_CHECK}"


def training_face_matches(faces: np.ndarray, train_pairs: PairSet) -> tuple[dict[int, str], int]:
    """Which of ``faces`` are faces a generator trained on: an onset or apex of its training pairs, or the mirror
    image of one (training flips faces left-right, ``train.hflip``), within :data:`TRAINING_FACE_TOLERANCE` grey
    levels (:func:`training_faces_in`; :data:`TRAINING_FACE_CHECK` says what is not caught).

    Args:
        faces: (N, S, S) uint8 faces, resized as the training faces were (:func:`icegan.gan.generate.load_onsets`).
        train_pairs: the generator's training pairs (:func:`checkpoint_training_pairs`), faces of size S.
    Returns:
        ``({index in faces: "CLIP onset|apex (frame F)[, mirrored]"}, number of distinct training faces compared)``,
        the dict in ascending order of the face index.
    Raises:
        ValueError: the faces are not of the training faces' size.
    """
    train = np.concatenate([train_pairs.onset, train_pairs.apex])
    where = [f"{c} onset (frame {int(f)})" for c, f in zip(train_pairs.clips, train_pairs.onset_frames)] + \
            [f"{c} apex (frame {int(f)})" for c, f in zip(train_pairs.clips, train_pairs.apex_frames)]
    _, first = np.unique(train.reshape(len(train), -1), axis=0, return_index=True)     # a face once
    first = np.sort(first)                              # in the pairs' order
    train, where = train[first], [where[i] for i in first]
    both = np.concatenate([train, train[:, :, ::-1]])   # each face, then its mirror image
    hits = training_faces_in(faces, both)
    return {i: where[j % len(train)] + (", mirrored" if j >= len(train) else "") for i, j in hits.items()}, len(train)


def checkpoint_training_pairs(cfg, cache_only: bool = False) -> PairSet | None:
    """The training pairs of the generator of the :class:`icegan.gan.trainer.GanConfig` ``cfg`` (its checkpoint's),
    from its own data: the shared CASME II copy (``data.source=manifest``) or the datasets it was prepared from
    (``prepared``), apex±1..``data.apex_neighbors`` included, of ``data.train_subjects`` without
    ``data.holdout_subjects``.

    Args:
        cache_only: ``prepared``: read the faces from a cache already on this machine only, never prepare them
            (face detection over every clip: minutes); None when there is none
            (:func:`icegan.gan.pairs.load_prepared_pairs`).
    Returns:
        the pairs; None: ``cache_only`` and the prepared faces are not on this machine.
    Raises:
        FileNotFoundError: that data is not on this machine; ValueError: as :meth:`PairSet.by_subjects`;
        :class:`icegan.data.prepare.PrepareError` (a ValueError): preprocessing cannot run or its cache is damaged.
    """
    if cfg.data.source == "prepared":
        from .pairs import load_prepared_pairs
        ps = load_prepared_pairs(cfg.data.prepare, cfg.data.img_size, cfg.data.apex_neighbors, progress=False,
                                 cache_only=cache_only)
        if ps is None:
            return None
    else:
        ps = load_casme2_pairs(cfg.data.root, cfg.data.img_size, cfg.data.apex_neighbors)
    return ps.by_subjects(cfg.data.train_subjects, exclude=cfg.data.holdout_subjects)


def _refuse_training_faces(data: Path, ckpt: Path, faces: np.ndarray, names: Sequence[str], train_pairs: PairSet,
                           files: Sequence[Path]) -> int:
    """Refuse a ``--data`` folder of onset images holding faces the checkpoint trained on
    (:func:`training_face_matches`): they would be scored as held-out faces.

    Returns:
        the number of distinct training faces compared with (each also mirrored).
    Raises:
        ValueError: names the folder, the checkpoint and each image that is a training face (the first 5), with the
            training clip and frame it matches, what is checked (:data:`TRAINING_FACE_CHECK`), and what to do.
    """
    hits, n_train = training_face_matches(faces, train_pairs)
    if hits:
        raise ValueError(f"--data {data}: {len(hits)} of its {len(names)} images are training faces of {ckpt} "
                         f"({training_face_text(hits, files)}); they are not held out and would be scored as if "
                         f"they were: remove them from the folder, or evaluate the checkpoint's held-out subjects "
                         f"with --data casme2")
    return n_train


def identity_metrics(onset_emb: np.ndarray, onset_ids: Sequence[str], query_emb: np.ndarray,
                     query_src: np.ndarray) -> tuple[float, float]:
    """(mean distance to own onset, rank-1 identification) of query embeddings.

    Args:
        onset_emb: (N, 128) onset embeddings; onset_ids: N subject ids.
        query_emb: (M, 128); query_src: (M,) index of each query's own onset.
    Rank-1 is correct when the nearest onset (Euclidean) has the same subject id as the query's onset.
    """
    from scipy.spatial.distance import cdist
    d = cdist(query_emb, onset_emb)
    own = d[np.arange(len(query_src)), query_src]
    ids = np.asarray(onset_ids)
    rank1 = float(np.mean(ids[d.argmin(axis=1)] == ids[query_src]))
    return float(own.mean()), rank1


class FlowRecognizer:
    """Small real-data recognizer for the controllability metric (STSTNet-style input, linear model).

    Features of an (onset, apex) pair of uint8 (H, W) faces: OpenCV Farneback flow onset→apex
    (pyr_scale 0.5, 3 levels, window 15, 3 iterations, poly_n 5, poly_sigma 1.2, in pixels), its
    optical strain ``sqrt(u_x² + v_y² + ½(u_y + v_x)²)`` (Sobel derivatives), each of u, v, strain
    divided by its maximum absolute value in the pair, resized (area) to ``grid × grid`` →
    ``3·grid²`` features; ``StandardScaler`` + ``LogisticRegression(class_weight='balanced', C)``.
    """

    def __init__(self, grid: int = 28, C: float = 0.1, seed: int = 0):
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        self.grid = grid
        self.model = make_pipeline(StandardScaler(), LogisticRegression(C=C, class_weight="balanced",
                                                                        max_iter=5000, random_state=seed))

    def features(self, onset: np.ndarray, apex: np.ndarray) -> np.ndarray:
        """(N, H, W) uint8 onsets and apexes → (N, 3·grid²) float32 features."""
        import cv2
        if onset.shape != apex.shape or onset.ndim != 3 or onset.dtype != np.uint8 or apex.dtype != np.uint8:
            raise ValueError(f"FlowRecognizer: onset {onset.dtype}{onset.shape} and apex {apex.dtype}{apex.shape} "
                             f"must both be uint8 (N, H, W)")
        g = self.grid
        feats = []
        for a, b in zip(onset, apex):
            flow = cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 15, 3, 5, 1.2, 0)
            u, v = flow[..., 0], flow[..., 1]
            ux, uy = cv2.Sobel(u, cv2.CV_32F, 1, 0, ksize=3) / 8, cv2.Sobel(u, cv2.CV_32F, 0, 1, ksize=3) / 8
            vx, vy = cv2.Sobel(v, cv2.CV_32F, 1, 0, ksize=3) / 8, cv2.Sobel(v, cv2.CV_32F, 0, 1, ksize=3) / 8
            strain = np.sqrt(ux ** 2 + vy ** 2 + 0.5 * (uy + vx) ** 2)
            st = np.stack([u, v, strain], axis=2)
            st = st / (np.abs(st).reshape(-1, 3).max(axis=0) + 1e-6)
            feats.append(cv2.resize(st, (g, g), interpolation=cv2.INTER_AREA).reshape(-1))
        return np.asarray(feats, dtype=np.float32)

    def fit(self, onset: np.ndarray, apex: np.ndarray, labels: np.ndarray) -> "FlowRecognizer":
        """Fit on (N, H, W) uint8 onsets and apexes with (N,) class ids, BLAS on one thread
        (:func:`icegan.recognition.one_blas_thread`: the same probe whatever the machine's thread count)."""
        from icegan.recognition import one_blas_thread
        feats = self.features(onset, apex)
        with one_blas_thread():
            self.model.fit(feats, labels)
        return self

    def predict(self, onset: np.ndarray, apex: np.ndarray) -> np.ndarray:
        """(N,) predicted class ids of (N, H, W) uint8 onsets and apexes, BLAS on one thread."""
        from icegan.recognition import one_blas_thread
        feats = self.features(onset, apex)
        with one_blas_thread():
            return self.model.predict(feats)


class CrossDatasetRecognizer:
    """An expression recognizer that never saw the generator's training data (with the default ``datasets``: never
    saw CASME II), for controllability checks independent of it (module docstring, (b')); :func:`run_eval` passes
    the composite's datasets without a subject the GAN trained on or evaluated (:func:`_cross_dataset_datasets`).

    STSTNet (Liong et al. 2019) with the recipe of ``configs/features_ststnet.yaml`` (100 epochs, AdamW
    2e-3, cosine, class weights, flip augmentation + flip TTA, final epoch), trained on the 28×28 (u, v,
    strain) features of ``megc2019_htnet`` for ``datasets`` (default SAMM + SMIC: 297 clips). At test time
    the same kind of feature is built from flownet's OpenCV TV-L1 flow of each (onset, apex) pair
    (:func:`flownet.strain.flow_features`, min–max per map, 28×28). Checked on the training subjects of
    the GAN evaluation split (2026-11-30, 89 real CASME II pairs at 64×64, none of the held-out subjects):
    our features correlate with the precomputed ones of the same clips at r = 0.62 (u), 0.87 (v), 0.50
    (strain), and the recognizer scores accuracy 0.81 / UF1 0.79 on them (0.87 / 0.85 on the precomputed
    features), so the two feature pipelines agree in sign and scale.

    Args:
        datasets: composite datasets to train on (``casme2``, ``samm``, ``smic``).
        root: ``megc2019_htnet`` folder (None: the shared data).
        seed: recognizer seed.
    Raises:
        FileNotFoundError: ``megc2019_htnet`` is missing (from :func:`icegan.data.features.load_megc2019_features`).
    """

    def __init__(self, datasets: Sequence[str] = ("samm", "smic"), root=None, seed: int = 0):
        from icegan.data.features import load_megc2019_features
        from icegan.recognition import RecognizerConfig, fit_recognizer
        self.datasets = list(datasets)
        fs = load_megc2019_features(root, self.datasets)
        cfg = RecognizerConfig(name="ststnet", input_size=28, epochs=100, batch_size=128, lr=0.002,
                               weight_decay=1e-4, lr_schedule="cosine", dropout=0.5, class_weighting=True,
                               hflip=True, tta_hflip=True)
        self.n_train = len(fs)
        self._predict = fit_recognizer(cfg, fs.features, fs.labels, seed=seed, progress=False)

    @staticmethod
    def features(onset: np.ndarray, apex: np.ndarray, batch: int = 32) -> torch.Tensor:
        """(N, H, W) uint8 onsets and apexes → (N, 3, 28, 28) float32 (u, v, strain) in [0, 1], computed as the
        main job does (:func:`icegan.pipeline.compute_flow_features` with TV-L1, min–max)."""
        from flownet.registry import get_estimator
        from icegan.pipeline import compute_flow_features, to_unit
        if onset.shape != apex.shape or onset.ndim != 3 or onset.dtype != np.uint8 or apex.dtype != np.uint8:
            raise ValueError(f"CrossDatasetRecognizer: onset {onset.dtype}{onset.shape} and apex "
                             f"{apex.dtype}{apex.shape} must both be uint8 (N, H, W)")
        return compute_flow_features(get_estimator("tvl1"), to_unit(onset), to_unit(apex), 28, "minmax", batch)

    def predict(self, onset: np.ndarray, apex: np.ndarray) -> np.ndarray:
        """(N,) predicted class ids (0 negative, 1 positive, 2 surprise)."""
        return np.asarray(self._predict(self.features(onset, apex))).argmax(1)


def diversity_metrics(syn: np.ndarray, onset: np.ndarray, src: np.ndarray, n_classes: int,
                      n_per_class: int) -> dict:
    """How much synthetic faces depend on z and on c, and how far they are from their onsets.

    Args:
        syn: (M, H, W) uint8 synthetic faces ordered as :func:`icegan.gan.synthesis.synthesize` returns
            them (onset-major, then class, then draw), M = N·n_classes·n_per_class.
        onset: (N, H, W) uint8; src: (M,) index of each face's onset.
    Returns:
        ``z_diversity``: mean |draw 0 − draw 1| of the same (onset, class), grey levels 0–255 (None when
        ``n_per_class`` < 2); ``class_diversity``: mean over class pairs of |class a − class b| (draw 0);
        ``mean_abs_change_from_onset``: mean |synthetic − its onset|. A generator that copies its
        onset scores 0 on all three.
    Raises:
        ValueError: M does not match N·n_classes·n_per_class.
    """
    n = len(onset)
    if len(syn) != n * n_classes * n_per_class or len(src) != len(syn):
        raise ValueError(f"diversity_metrics: {len(syn)} faces for {n} onsets x {n_classes} classes x {n_per_class}")
    f = syn.astype(np.float32)
    out = {"z_diversity": float(np.mean(np.abs(f[0::n_per_class] - f[1::n_per_class]))) if n_per_class >= 2 else None}
    first = f[0::n_per_class].reshape(n, n_classes, *f.shape[1:])
    out["class_diversity"] = float(np.mean([np.abs(first[:, a] - first[:, b]).mean() for a in range(n_classes)
                                            for b in range(a + 1, n_classes)])) if n_classes > 1 else None
    out["mean_abs_change_from_onset"] = float(np.mean(np.abs(f - onset[src].astype(np.float32))))
    return out


def generator_speed(generator, batch: int = 16, repeats: int = 5, device=None, channels_last: bool = False,
                    per_batch: list | None = None, cpu_per_batch: list | None = None) -> float:
    """Synthesised faces per second: eval mode, ``torch.inference_mode``, one warm-up batch, then
    ``repeats`` timed batches of ``batch`` random onsets (total faces / total seconds).

    Args:
        channels_last: time a copy of the generator in ``torch.channels_last`` memory format (the
            model passed in is not modified). Off by default: on this 2-core CPU it did not help
            (bench/gan_speed.py, docs/benchmarks.md, "ICE-GAN ... second round"), and synthesis runs NCHW.
        per_batch: if a list is given, the wall-clock seconds of every timed batch are appended to it.
        cpu_per_batch: if a list is given, the CPU seconds this process used for every timed batch
            (``time.process_time``, all threads) are appended: on a shared machine, with 1 thread,
            ``batch / cpu seconds`` estimates the speed of an unshared core (time-slicing by other
            processes is not counted; their cache and memory-bandwidth interference still is).
    Returns:
        faces per second (float).
    """
    import copy
    dev = device or next(generator.parameters()).device
    g = generator
    if channels_last:
        g = copy.deepcopy(generator).to(dev, memory_format=torch.channels_last)
    was = generator.training
    g.eval()
    s = g.img_size
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    with torch.inference_mode():
        x = (torch.rand(batch, g.in_channels, s, s, device=dev) * 2 - 1).contiguous(memory_format=fmt)
        z = torch.randn(batch, g.z_dim, device=dev)
        c = torch.arange(batch, device=dev) % g.n_classes
        g(x, z, c)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)     # the generator's GPU, not the current one (cuda:1...)
        total = 0.0
        for _ in range(repeats):
            t, tc = time.perf_counter(), time.process_time()
            g(x, z, c)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            dt = time.perf_counter() - t
            total += dt
            if per_batch is not None:
                per_batch.append(dt)
            if cpu_per_batch is not None:
                cpu_per_batch.append(time.process_time() - tc)
    generator.train(was)
    return batch * repeats / total


def _save_class_grids(onset: torch.Tensor, syn: torch.Tensor, src: np.ndarray, cls: np.ndarray, out: Path,
                      n_show: int = 8) -> list[str]:
    from torchvision.utils import make_grid, save_image
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    show = np.unique(src)[:n_show]
    for k, name in enumerate(CLASS_NAMES):
        tiles = []
        for i in show:
            j = np.flatnonzero((src == i) & (cls == k))
            if len(j):
                tiles += [onset[i], syn[j[0]]]
        if tiles:
            grid = make_grid((torch.stack(tiles) + 1) / 2, nrow=2, padding=2, pad_value=1.0)
            p = out / f"grid_{name}.png"
            save_image(grid, p)
            paths.append(str(p))
    return paths


def _cross_dataset_datasets(cfg, trained_subjects: Sequence[str] | None,
                            evaluated_subjects: Sequence[str]) -> tuple[list[str], str]:
    """The datasets of ``megc2019_htnet`` that :class:`CrossDatasetRecognizer` may train on for a checkpoint: those
    holding no subject the GAN trained on and no evaluated subject, so it has seen no labelled clip of either.

    A dataset is the GAN's when its config names it (``data.source=manifest``: CASME II; ``prepared``: the names of
    ``data.prepare.datasets``) or a training subject carries its prefix (a clip list's subjects carry their own
    dataset's); a subject without a prefix is CASME II's (``sub01``).

    Args:
        cfg: the checkpoint's :class:`icegan.gan.trainer.GanConfig`.
        trained_subjects: the subjects of the GAN's training pairs; None when they could not be loaded (then
            ``data.train_subjects``, when the checkpoint records them).
        evaluated_subjects: the subjects scored (empty for a folder of onset images).
    Returns:
        ``(datasets, "")``, datasets in the composite's order (``["samm", "smic"]`` for a CASME II GAN), or ``([],
        reason)`` when none may be used (a one-line reason naming the datasets and subjects that rule them out).
    """
    from icegan.data.features import DATASETS, subject_dataset     # megc2019_htnet's datasets, in its order

    def dataset(s: str) -> str:
        return subject_dataset(s) if "/" in s else "casme2"
    if trained_subjects is None:
        trained_subjects = list(cfg.data.train_subjects or [])
    if cfg.data.source == "prepared":
        names = [d.name for d in cfg.data.prepare.datasets]
        if "clips" in names and not trained_subjects:
            return [], ("the GAN was prepared from a clip list whose subjects' datasets are not known without its "
                        "training pairs, so no dataset can be shown to be unseen")
        gan = {n for n in names if n != "clips"}
    else:
        gan = {"casme2"}
    gan |= {dataset(s) for s in trained_subjects}
    evaluated = {dataset(s) for s in evaluated_subjects}
    keep = [d for d in DATASETS if d not in gan | evaluated]
    if keep:
        return keep, ""
    parts = [f"the GAN trained on {', '.join(sorted(gan))}"]
    if evaluated_subjects:
        parts.append(f"evaluates {', '.join(sorted(set(evaluated_subjects)))}")
    return [], (f"{' and '.join(parts)}: no dataset of megc2019_htnet ({', '.join(DATASETS)}) is left "
                f"that holds none of their subjects, so no recognizer independent of them can be trained")


def evaluate_generator(generator, discriminator, onset: np.ndarray, subjects: Sequence[str],
                       apex: np.ndarray | None = None, labels: np.ndarray | None = None,
                       recognizer: FlowRecognizer | None = None, n_per_class: int = 2, seed: int = 0,
                       out_dir: str | Path | None = None, upsample_to: int = 128,
                       cross_recognizer: "CrossDatasetRecognizer | None" = None) -> dict:
    """All metrics of the module docstring for one evaluation set.

    Args:
        onset: (N, H, W) uint8 onset faces; subjects: N identity ids (subject per clip).
        apex, labels: real apexes (N, H, W) uint8 and class ids (N,), or None (folder of onsets).
        recognizer: fitted :class:`FlowRecognizer` (None → no controllability).
        n_per_class: synthetic faces per (onset, class).
        cross_recognizer: fitted :class:`CrossDatasetRecognizer` (None → no ``*_cross_dataset`` keys filled).
    Returns:
        dict with the JSON keys of the module docstring (None where not computable).
    """
    from icegan.metrics import compute_metrics
    dev = next(generator.parameters()).device
    k = generator.n_classes
    on_t = to_tensor(onset)
    syn, src, cls = synthesize(generator, on_t, list(range(k)), n_per_class, seed=seed)
    src_np, cls_np = src.numpy(), cls.numpy()
    syn_u8 = to_uint8(syn)
    res: dict = {"n_onsets": int(len(onset)), "n_subjects": int(len(set(subjects))), "n_synthetic": int(len(syn)),
                 "img_size": int(generator.img_size), "identity_upsample_to": upsample_to}
    t = time.perf_counter()
    emb_on = face_embeddings(onset, upsample_to)
    emb_syn = face_embeddings(syn_u8, upsample_to)
    res["identity_mean_distance"], res["identity_rank1"] = identity_metrics(emb_on, subjects, emb_syn, src_np)
    if apex is not None:
        emb_ap = face_embeddings(apex, upsample_to)
        res["real_apex_identity_mean_distance"], res["real_apex_identity_rank1"] = identity_metrics(
            emb_on, subjects, emb_ap, np.arange(len(apex)))
    if res["n_subjects"] < 2:           # the nearest onset is always of the one subject: 100 % that measures nothing
        log.warning("identity rank-1 needs onsets of at least 2 subjects (here %d): not reported", res["n_subjects"])
        res["identity_rank1"] = None
        if "real_apex_identity_rank1" in res:
            res["real_apex_identity_rank1"] = None
    log.info("identity embeddings: %.1f s", time.perf_counter() - t)

    res["controllability"] = res["controllability_per_class"] = None
    if recognizer is not None:
        pred = recognizer.predict(onset[src_np], syn_u8)
        res["controllability"] = float(np.mean(pred == cls_np))
        res["controllability_per_class"] = {CLASS_NAMES[c]: float(np.mean(pred[cls_np == c] == c)) for c in range(k)}
        if apex is not None and labels is not None:
            pr = recognizer.predict(onset, apex)
            res["recognizer_real_accuracy"] = float(np.mean(pr == labels))
            res["recognizer_real_uf1"] = compute_metrics(labels, pr, k)["UF1"]

    res["controllability_cross_dataset"] = res["controllability_cross_dataset_per_class"] = None
    if cross_recognizer is not None:
        pred = cross_recognizer.predict(onset[src_np], syn_u8)
        res["controllability_cross_dataset"] = float(np.mean(pred == cls_np))
        res["controllability_cross_dataset_per_class"] = {CLASS_NAMES[c]: float(np.mean(pred[cls_np == c] == c))
                                                         for c in range(k)}
        res["cross_dataset_trained_on"] = cross_recognizer.datasets
        if apex is not None and labels is not None:
            pr = cross_recognizer.predict(onset, apex)
            res["cross_dataset_real_accuracy"] = float(np.mean(pr == labels))
            res["cross_dataset_real_uf1"] = compute_metrics(labels, pr, k)["UF1"]

    res.update(diversity_metrics(syn_u8, onset, src_np, k, n_per_class))

    res["expcaps_uf1"] = res["expcaps_uar"] = None
    if discriminator is not None and apex is not None and labels is not None:
        motion = getattr(discriminator, "motion_input", False)  # D of pairs: it needs the onset too
        with torch.no_grad():
            exp_len = torch.cat([discriminator(to_tensor(apex[i:i + 64]).to(dev), reconstruct=False,
                                               onset=to_tensor(onset[i:i + 64]).to(dev) if motion else None
                                               ).exp_len.cpu()
                                 for i in range(0, len(apex), 64)])
        pe = exp_len.argmax(1).numpy()
        m = compute_metrics(labels, pe, k)          # MEGC: over the classes present in the held-out labels
        res["expcaps_uf1"], res["expcaps_uar"] = m["UF1"], m["UAR"]
        res["expcaps_accuracy"] = float(np.mean(pe == labels))
    res["faces_per_s"] = generator_speed(generator)
    res["threads"] = torch.get_num_threads()
    if out_dir is not None:
        res["grids"] = _save_class_grids(on_t, syn, src_np, cls_np, Path(out_dir))
    return res


def run_eval(checkpoint: str | Path, data: str | Path = "casme2", subjects: Sequence[str] | None = None,
             n_per_class: int = 2, seed: int = 0, out_dir: str | Path | None = None, device="cpu",
             cross_dataset: bool = True) -> dict:
    """``icegan gan eval``: load a checkpoint, pick the evaluation faces, compute every metric.

    ``data``: ``casme2`` (the checkpoint's own data: the shared CASME II copy, or the datasets it was prepared from
    when trained with ``data.source=prepared``) or a CASME II folder with ``manifest.csv`` — evaluates the
    ``subjects`` (default: the checkpoint's ``holdout_subjects``), recognizer trained on the
    checkpoint's training subjects; or a folder of onset face images — refused when an image is a face the checkpoint
    trained on (:func:`training_face_matches`: an onset or apex of its training pairs or its mirror image, within
    :data:`TRAINING_FACE_TOLERANCE` grey levels; other frames of the training clips, shifted or re-cropped copies and
    other images of the training subjects are not caught; the JSON key ``training_faces_compared`` counts the training
    faces compared, each also mirrored, None when its training pairs are absent and nothing could be compared), then
    identity (subjects unknown: each image its own
    identity, JSON ``subjects_known`` false, ``n_images``), controllability (recognizer trained on the checkpoint's
    training subjects of its own data: the shared CASME II copy, or its prepared datasets with
    ``data.source=prepared``), speed and grids; no ExpCaps MER
    (no labels); the images are read and resized as the generator's training faces were
    (:func:`icegan.gan.generate.load_onsets`; the JSON key ``onset_resize`` says what was resized, None when nothing
    was). Writes the grids and ``eval.md``
    (:func:`metrics_markdown`) into ``out_dir`` (default: ``eval/`` beside the checkpoints folder); the JSON
    key ``report`` names the latter. ``cross_dataset``: also the
    independent controllability of :class:`CrossDatasetRecognizer`, trained on the datasets of ``megc2019_htnet``
    without a subject the GAN trained on or evaluated (:func:`_cross_dataset_datasets`); skipped with a log line
    and the reason in the key ``cross_dataset_skipped`` when ``megc2019_htnet`` is absent or no dataset remains
    (a fold GAN of the whole composite). The JSON keys ``checkpoint_epoch`` (the checkpoint's epoch) and
    ``train_epochs`` (its ``train.epochs``) tell an unfinished checkpoint (one ``train.max_minutes`` stopped early),
    which ``eval.md``'s first line also names, ``unfinished (epoch N of M)``. The JSON key ``untrained_classes``
    names the classes the generator had no training pair of (the checkpoint's per-class counts:
    :func:`icegan.gan.trainer.untrained_classes`; None for a checkpoint that did not record them), which ``eval.md``
    marks ``(no training pair)`` in its per-class controllability and names in its first line. The JSON keys
    ``seed``, ``n_per_class``, ``data`` (``--data`` as given), ``subjects_requested`` (``--subjects``, None for the
    default), ``cross_dataset`` (False with ``--no-cross-dataset``) and ``eval_clips`` (the evaluated clips, ``--data``
    casme2 or a CASME II folder; ``eval_images`` for a folder of onset images) record what was evaluated and how, and
    ``eval.md``'s second line repeats them.

    The synthetic faces are drawn by :func:`icegan.gan.synthesis.synthesize` in order over all (onset, class, draw)
    of the evaluation set (no ``noise_keys``), as when the recorded numbers of README.md and docs/benchmarks.md were
    made: they are not the faces ``icegan generate --seed`` makes for the same onsets (drawn per output name), and a
    face depends on the other onsets evaluated; the metrics are means over such draws.
    Raises:
        ValueError: a folder of onset images holding training faces (names the files, the training clips and frames),
            no subjects to evaluate, an evaluated subject without pairs or a ``data`` folder without face
            images (both before a recognizer is trained), or evaluated subjects overlap the training subjects; a
            ``data.source=prepared`` checkpoint's subjects absent from the CASME II folder ``data`` (named, with
            what to evaluate instead).
        FileNotFoundError: ``data`` is neither ``casme2`` nor an existing path (the message lists what
            ``--data`` accepts).
    """
    from .trainer import load_checkpoint, untrained_classes
    data_p = Path(str(data))
    if str(data) != "casme2" and not data_p.exists():      # before the checkpoint and the recognizer are loaded
        raise FileNotFoundError(f"--data {data}: not found; --data takes 'casme2' (the checkpoint's held-out subjects "
                                f"of its own data: the shared CASME II copy, or the datasets it was prepared from), a "
                                f"CASME II folder with manifest.csv, or a folder of onset face images (or one image)")
    g, d, cfg, payload = load_checkpoint(checkpoint, device)
    ckpt = Path(checkpoint)
    ckpt_epoch = payload.get("epoch")
    ckpt_epoch = int(ckpt_epoch) if ckpt_epoch is not None else None
    if ckpt_epoch is not None and ckpt_epoch < cfg.train.epochs:    # cut short by train.max_minutes, or a kill
        log.warning("%s is unfinished: epoch %d of train.epochs=%d (stopped by train.max_minutes or interrupted); "
                    "its metrics are those of an unfinished generator", ckpt, ckpt_epoch, cfg.train.epochs)
    if g.n_classes != len(CLASS_NAMES):       # its controllability recognizers and reports are MEGC2019's
        from icegan.labels import label_set_of_classes
        try:                                   # named in the checkpoint (model.classes), else an older one's by size
            ls = label_set_of_classes(cfg.model.class_names())
            which = f" ({', '.join(ls.classes)}: data.labels={ls.name})"
        except ValueError:
            which = f" ({', '.join(cfg.model.classes)})" if cfg.model.classes else ""
        raise ValueError(f"{ckpt}: its generator is conditioned on {g.n_classes} classes{which}, a main-job fold's of "
                         f"data.labels other than megc2019; icegan gan eval scores generators of MEGC2019's "
                         f"{len(CLASS_NAMES)} classes ({', '.join(CLASS_NAMES)}) only. `icegan generate --checkpoint "
                         f"{ckpt} --onset FACES --class NAME|all --out DIR` makes its faces")
    out = Path(out_dir) if out_dir is not None else ckpt.parent.parent / "eval"
    is_casme = str(data) == "casme2" or (data_p / "manifest.csv").is_file()
    root = cfg.data.root if str(data) == "casme2" else (str(data_p) if is_casme else cfg.data.root)
    holdout = list(subjects) if subjects else list(cfg.data.holdout_subjects)
    if is_casme and not holdout:        # before a recognizer is trained on every pair of the data
        raise ValueError(f"{ckpt} names no held-out subject (its data.holdout_subjects is empty: a GAN trained on "
                         f"every subject of its data, or a main-job fold on data.source=synthetic): pass --subjects "
                         f"with subjects it was not trained on, or --data a folder of onset face images")

    own_prepared = cfg.data.source == "prepared" and (str(data) == "casme2" or not is_casme)

    def labelled_pairs(k: int) -> PairSet:
        """The checkpoint's own labelled pairs (its prepared datasets when it was trained on data.source=prepared,
        unless --data names a manifest folder), else the manifest copy at ``root``; apex±1..k."""
        if own_prepared:
            from .pairs import load_prepared_pairs
            return load_prepared_pairs(cfg.data.prepare, cfg.data.img_size, k, progress=False)
        return load_casme2_pairs(root, cfg.data.img_size, k)

    def by_subjects(ps: PairSet, include, exclude=()) -> PairSet:
        try:
            return ps.by_subjects(include, exclude=exclude)
        except ValueError as exc:
            if cfg.data.source != "prepared" or own_prepared:
                raise
            named = sorted(set(list(include or []) + list(exclude)))
            raise ValueError(f"{ckpt} was trained on data.source=prepared, its subjects named "
                             f"{', '.join(named)}; the CASME II folder --data {data} has no pairs of them ({exc}): "
                             f"evaluate it on its own prepared data (--data casme2), or on a folder of onset face "
                             f"images") from None
    pairs = data_files = None   # refused before a recognizer is trained: an evaluated subject without pairs ...
    if is_casme and not (cfg.data.source == "prepared" and not own_prepared):
        pairs = by_subjects(labelled_pairs(0), holdout)
    elif not is_casme:          # ... or a folder without face images (listed once: read below)
        from .pairs import list_face_files
        data_files = list_face_files(data_p)
    recognizer = train_pairs = None
    try:
        train_pairs = labelled_pairs(cfg.data.apex_neighbors)
        train_pairs = by_subjects(train_pairs, cfg.data.train_subjects, exclude=cfg.data.holdout_subjects)
    except FileNotFoundError as exc:
        if is_casme:
            raise
        train_pairs = None
        log.warning("no CASME II training pairs for the recognizer (%s): controllability not computed", exc)
    n_compared = None
    if not is_casme:            # a folder of onset images: faces the generator trained on are refused, before any work
        from .generate import load_onsets          # resized as the generator's training faces were
        faces, names, note = load_onsets(data_files, cfg)
        if train_pairs is not None:
            n_compared = _refuse_training_faces(data_p, ckpt, faces, names, train_pairs, data_files)
        else:
            log.warning("the images of --data %s could not be compared with the checkpoint's training faces (its "
                        "training pairs are not there): make sure they are not faces it trained on", data_p)
    if train_pairs is not None:
        recognizer = FlowRecognizer(seed=seed).fit(train_pairs.onset, train_pairs.apex, train_pairs.labels)
    cross, cross_skipped = None, ""
    if cross_dataset:          # never on a dataset holding a subject the GAN trained on or one evaluated
        cross_sets, cross_skipped = _cross_dataset_datasets(
            cfg, None if train_pairs is None else train_pairs.subjects, holdout if is_casme else [])
        if cross_skipped:
            log.warning("cross-dataset controllability not computed: %s", cross_skipped)
        else:
            try:
                cross = CrossDatasetRecognizer(cross_sets, seed=seed)
            except FileNotFoundError as exc:
                log.warning("no megc2019_htnet features (%s): cross-dataset controllability not computed", exc)
                cross_skipped = f"no megc2019_htnet features here ({exc})"
    if is_casme:
        if pairs is None:       # a prepared checkpoint on a CASME II folder: its training subjects' refusal first
            pairs = by_subjects(labelled_pairs(0), holdout)
        trained_on = set() if recognizer is None else set(train_pairs.subjects)
        overlap = trained_on & set(pairs.subjects)
        if overlap:
            raise ValueError(f"evaluation subjects {sorted(overlap)} were used to train {ckpt}")
        res = evaluate_generator(g, d, pairs.onset, pairs.subjects, pairs.apex, pairs.labels, recognizer,
                                 n_per_class, seed, out, cross_recognizer=cross)
        res["eval_subjects"] = sorted(set(pairs.subjects))
        res["eval_clips"] = list(pairs.clips)
        res["class_counts"] = {CLASS_NAMES[c]: int(np.sum(pairs.labels == c)) for c in range(len(CLASS_NAMES))}
    else:
        if note:
            log.info("note: %s", note)
        # the images' subjects are unknown: each image is its own identity (two files of one stem are two identities)
        res = evaluate_generator(g, d, faces, [str(i) for i in range(len(names))], None, None, recognizer,
                                 n_per_class, seed, out, cross_recognizer=cross)
        res["eval_images"] = names
        res["onset_resize"] = note
        res["subjects_known"] = False
        res["n_images"] = len(names)
        res["training_faces_compared"] = n_compared
    if cross_skipped:
        res["cross_dataset_skipped"] = cross_skipped
    res["seed"], res["n_per_class"], res["data"] = seed, n_per_class, str(data)
    res["subjects_requested"] = list(subjects) if subjects else None
    res["cross_dataset"] = bool(cross_dataset)
    res["checkpoint"] = str(ckpt)
    res["checkpoint_epoch"] = ckpt_epoch
    untrained = untrained_classes(payload)      # None: a checkpoint written before it recorded its per-class pairs
    res["untrained_classes"] = None if untrained is None else [CLASS_NAMES[c] for c in untrained[0]]
    res["train_epochs"] = int(cfg.train.epochs)
    out.mkdir(parents=True, exist_ok=True)
    res["report"] = str(out / "eval.md")
    (out / "eval.md").write_text(metrics_markdown(res), encoding="utf-8")
    return res


def metrics_markdown(res: dict) -> str:
    """A paste-ready Markdown table of :func:`run_eval`'s result (the issue's targets beside each value).

    Missing or None entries print as "—", with the reason where it is known: a skipped cross-dataset recognizer as
    "— (skipped: reason)" (the key ``cross_dataset_skipped``), one switched off as "— (off: --no-cross-dataset)"
    (``cross_dataset`` false); for a folder of onset images, ExpCaps as "— (no labels: ...)" and the real-apex
    references as "— (no real apexes: ...)"; controllability without training pairs for its recognizer
    (``training_faces_compared`` None) as "— (no recognizer: ...)". The first line counts images, not subjects, for a folder of onset images
    (``subjects_known`` false), names an unfinished checkpoint (``checkpoint_epoch`` ≠ ``train_epochs``) and the
    classes the generator had no training pair of (``untrained_classes``), whose per-class controllability is marked
    ``(no training pair)``. The second line, for a result that records them (``seed`` present), gives the seed,
    draws per onset and class, ``--data``, the evaluated subjects and clips (or image count) and whether the
    cross-dataset check ran.
    Fractions are shown in %, distances with 3 decimals.
    """
    def pct(v):
        return "—" if v is None else f"{100 * v:.1f} %"

    def num(v, fmt="{:.3f}"):
        return "—" if v is None else fmt.format(v)

    untrained = res.get("untrained_classes") or []

    def per_class(d):
        return "" if not d else " (" + " / ".join(f"{k} {pct(v)}" + (" (no training pair)" if k in untrained else "")
                                                  for k, v in d.items()) + ")"

    n_subj = int(res.get("n_subjects") or 0)
    images = res.get("subjects_known") is False       # a folder of onset images: each image its own identity
    chance = f"chance {100 / n_subj:.0f} %" if n_subj >= 2 else "needs 2 or more"
    among = (f"among {n_subj} images (each its own identity; {chance})" if images else
             f"among {n_subj} subjects ({chance})")

    folder = "a folder of onset images"
    no_real = f"— (no real apexes: {folder})" if images else None
    if res.get("cross_dataset_skipped"):
        cross = f"— (skipped: {res['cross_dataset_skipped']})"
    elif res.get("cross_dataset") is False:
        cross = "— (off: --no-cross-dataset)"
    else:
        cross = pct(res.get("controllability_cross_dataset")) + per_class(
            res.get("controllability_cross_dataset_per_class"))
    control = pct(res.get("controllability")) + per_class(res.get("controllability_per_class"))
    if res.get("controllability") is None and images and res.get("training_faces_compared", 0) is None:
        control = "— (no recognizer: the checkpoint's training pairs are not on this machine)"
    rows = [
        ("identity distance, synthetic apex vs its onset (mean) ↓", num(res.get("identity_mean_distance")), "≤ 0.20"),
        (f"identity rank-1 identification {among}", pct(res.get("identity_rank1")), "≥ 95 %"),
        ("controllability, recognizer on the generator's training subjects", control, "> 70 %"),
        ("controllability, recognizer trained on other datasets only", cross, "> 70 %"),
        ("ExpCaps UF1 on held-out real apexes",
         f"— (no labels: {folder})" if images else num(res.get("expcaps_uf1"), "{:.4f}"), "—"),
        (f"synthesis speed at {res.get('img_size')}×{res.get('img_size')} (faces/s)", num(res.get("faces_per_s"), "{:.1f}"),
         "≥ 50 at 128×128"),
        ("reference: identity distance, real apex vs onset",
         no_real or num(res.get("real_apex_identity_mean_distance")), "—"),
        ("reference: recognizers on the real held-out pairs (accuracy)",
         no_real or f"{pct(res.get('recognizer_real_accuracy'))} / {pct(res.get('cross_dataset_real_accuracy'))}",
         "—"),
    ]
    if images:
        what = f"{res.get('n_onsets')} images (subjects unknown; each image treated as its own identity)"
    else:
        what = f"{res.get('n_onsets')} onsets of {res.get('n_subjects')} subjects"
    done, total = res.get("checkpoint_epoch"), res.get("train_epochs")
    unfinished = (f"; checkpoint unfinished (epoch {done} of {total}), stopped by train.max_minutes or interrupted"
                  if done is not None and total is not None and done != total else "")
    if untrained:
        unfinished += (f"; the generator had no training pair of class {', '.join(untrained)} (its faces of that class "
                       f"come from a condition it never learned)")
    head = (f"ICE-GAN evaluation: {what}, {res.get('n_synthetic')} synthetic apexes at "
            f"{res.get('img_size')}×{res.get('img_size')}{unfinished}\n\n")
    if "seed" in res:                   # a result that records how it was made (older JSON files do not)
        k = res.get("n_per_class")
        if images:
            which = f"{len(res.get('eval_images') or [])} images (JSON key eval_images)"
        else:
            clips = res.get("eval_clips") or []
            which = (f"subjects {', '.join(res.get('eval_subjects') or [])} ({len(clips)} clips: "
                     f"{', '.join(clips)})")
        switch = "cross-dataset check " + ("on" if res.get("cross_dataset") else "off (--no-cross-dataset)")
        head += (f"seed {res['seed']}, {k} synthetic face{'' if k == 1 else 's'} per onset and class, --data "
                 f"{res.get('data')}, {which}, {switch}\n\n")
    lines = ["| metric | value | target |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return head + "\n".join(lines) + "\n"
