"""Per-frame face detection throughput on raw 640x480 CASME II frames (face detection + 68 landmarks + crop).

Every frame of ../shared/data/casme2_raw (sub01/EP02_01f and sub01/EP19_05f, 92 frames) is read (grayscale), gets a
HOG face detection and the 68-point landmarks of its largest face, and is cropped to 128x128 (warpAffine + resize)
with an alignment computed on the first frame of its job (one job = ``--chunk`` frames). This is per-frame
detection work, an upper bound of what `icegan prepare` detects: prepare in raw mode detects (and refines) the face
on a clip's onset frame only (the nearest frame with a face when the onset has none) and applies that one alignment
to every frame of the clip; with ``landmarks: true`` it also detects the faces of the six key frames (onset, apex and
its four neighbours), never every frame. Workers are processes; each is warmed up (face_recognition models loaded)
before the clock starts. Prints a Markdown table row per worker count.

    .venv/bin/python bench/preprocess_throughput.py --workers 1 2 --repeats 3
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from concurrent.futures import ProcessPoolExecutor

from flownet.user_numbers import integer

os.environ.setdefault("OMP_NUM_THREADS", "1")


def _init() -> None:
    import cv2
    cv2.setNumThreads(1)
    from icegan.data.landmarks import face_recognition_modules
    face_recognition_modules()  # load the dlib models before timing


def _clip_job(args: tuple[list[str], str, int]) -> int:
    """Align a clip on its first frame, then detect + landmark + crop every frame. Returns frames done."""
    import cv2
    from icegan.data.align import apply_alignment, compute_alignment
    from icegan.data.landmarks import detect_faces, landmarks_in_box
    paths, detector, size = args
    first = cv2.imread(paths[0], cv2.IMREAD_GRAYSCALE)
    al = compute_alignment(first, detector)
    if al is None:
        raise RuntimeError(f"no face on {paths[0]}")
    done = 0
    for p in paths:
        img = cv2.imread(p, cv2.IMREAD_GRAYSCALE)
        boxes = detect_faces(img, detector)
        if boxes:
            landmarks_in_box(img, boxes[0])
        apply_alignment(img, al, size)
        done += 1
    return done


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=integer(1, meaning="worker processes"), nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=integer(1, meaning="timed runs"), default=3)
    ap.add_argument("--detector", default="hog", choices=["hog", "cnn"])
    ap.add_argument("--chunk", type=integer(1, meaning="frames per job"), default=8,
                    help="frames per job (each job aligns once)")
    args = ap.parse_args()
    from icegan.data.prepare import worker_context
    from icegan.data.records import list_frames
    from icegan.paths import shared_data_root
    root = shared_data_root() / "casme2_raw" / "sub01"
    jobs = []
    for clip in sorted(p for p in root.iterdir() if p.is_dir()):
        _, paths, _ = list_frames(clip)
        paths = [str(p) for p in paths]
        jobs += [(paths[i:i + args.chunk], args.detector, 128) for i in range(0, len(paths), args.chunk)]
    n_frames = sum(len(j[0]) for j in jobs)
    load = os.getloadavg()
    print(f"# {n_frames} raw 640x480 frames, {len(jobs)} jobs of <= {args.chunk} frames, detector {args.detector}")
    print(f"# machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"load before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print("| workers | frames | runs (s) | median s | frames/s | load (1 min) after |")
    print("|---|---|---|---|---|---|")
    for w in args.workers:
        with ProcessPoolExecutor(max_workers=w, mp_context=worker_context(), initializer=_init) as ex:
            list(ex.map(_clip_job, jobs[:w]))  # warm-up: models loaded, code paths imported
            times = []
            for _ in range(args.repeats):
                t = time.perf_counter()
                done = sum(ex.map(_clip_job, jobs))
                times.append(time.perf_counter() - t)
                assert done == n_frames
        med = statistics.median(times)
        print(f"| {w} | {n_frames} | {' '.join(f'{t:.2f}' for t in times)} | {med:.2f} | "
              f"{n_frames / med:.1f} | {os.getloadavg()[0]:.2f} |", flush=True)


if __name__ == "__main__":
    main()
