"""Frames cut short (flownet.frame_io): refused by name instead of decoded with grey rows, in the reader and in
`icegan prepare` / `icegan data check`."""
import cv2
import numpy as np
import pytest

from flownet.frame_io import read_frame, truncation_problem


def _encoded(ext: str) -> bytes:
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(rng.integers(0, 256, (64, 48), dtype=np.uint8), (5, 5), 0)
    ok, buf = cv2.imencode(ext, img)
    assert ok
    return buf.tobytes()


@pytest.mark.parametrize("ext", [".jpg", ".png", ".bmp"])
def test_a_complete_file_passes_and_every_cut_is_caught(ext):
    data = _encoded(ext)
    assert truncation_problem(data) is None
    for keep in (len(data) // 3, len(data) // 2, len(data) - 20, len(data) - 1):
        why = truncation_problem(data[:keep])
        assert why is not None and why.startswith("truncated"), (ext, keep)


def test_jpeg_bytes_after_the_end_marker_are_accepted_and_unknown_formats_are_not_judged(tmp_path):
    data = _encoded(".jpg")
    assert truncation_problem(data + b"\x00" * 300) is None
    trailer = data + np.random.default_rng(1).integers(0, 256, 50_000, dtype=np.uint8).tobytes()   # e.g. a video
    assert truncation_problem(trailer) is None
    (tmp_path / "trailer.jpg").write_bytes(trailer)
    np.testing.assert_array_equal(read_frame(tmp_path / "trailer.jpg"), cv2.imdecode(np.frombuffer(data, np.uint8), 0))
    assert truncation_problem(b"GIF89a" + b"\x00" * 10) is None         # not checked: left to the decoder


def test_jpeg_cuts_are_caught_past_an_exif_thumbnail_and_in_progressive_files():
    """The end marker of an EXIF thumbnail (in an APP1 segment before the scan) does not make a cut file complete;
    a progressive JPEG (several scans) is complete only with its last scan; a cut inside the header is named."""
    data = _encoded(".jpg")
    thumb = _encoded(".jpg")[:200] + b"\xff\xd9"                      # a thumbnail ending in its own FF D9
    app1 = b"Exif\x00\x00" + thumb
    exif = data[:2] + b"\xff\xe1" + (len(app1) + 2).to_bytes(2, "big") + app1 + data[2:]
    assert truncation_problem(exif) is None
    assert cv2.imdecode(np.frombuffer(exif, np.uint8), 0).shape == (64, 48)
    for keep in (len(exif) - 2, len(exif) - 100, len(data) // 2 + len(app1)):
        assert truncation_problem(exif[:keep]) == "truncated: no JPEG end marker (FF D9) after its image data"
    assert truncation_problem(exif[:40]) == "truncated: the JPEG ends inside its header"
    rng = np.random.default_rng(2)
    img = cv2.GaussianBlur(rng.integers(0, 256, (64, 48, 3), dtype=np.uint8), (5, 5), 0)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
    prog = buf.tobytes()
    assert ok and prog.count(b"\xff\xda") > 1 and truncation_problem(prog) is None
    for keep in (len(prog) // 3, len(prog) // 2, len(prog) - 2):
        assert truncation_problem(prog[:keep]) is not None, keep


def test_read_frame_decodes_as_imread_and_names_the_cut_file(shared_data, tmp_path):
    src = shared_data / "casme2" / "sub01" / "EP02_01f" / "img59.jpg"
    for flag in (cv2.IMREAD_GRAYSCALE, cv2.IMREAD_COLOR, cv2.IMREAD_REDUCED_GRAYSCALE_2):
        np.testing.assert_array_equal(read_frame(src, flag), cv2.imread(str(src), flag))
    cut = tmp_path / "img59.jpg"
    cut.write_bytes(src.read_bytes()[:1100])
    # OpenCV alone decodes the cut file (the missing rows grey): the reason this reader exists
    assert cv2.imread(str(cut), cv2.IMREAD_GRAYSCALE) is not None
    with pytest.raises(ValueError, match=rf"cannot read image {cut}: truncated: no JPEG end marker .*copy the file"):
        read_frame(cut)
    with pytest.raises(ValueError, match="cannot read image .*missing.jpg"):
        read_frame(tmp_path / "missing.jpg")
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(ValueError, match=rf"cannot read image {tmp_path / 'empty.jpg'}: the file is empty \(0 bytes; "
                                         r".*copy the file again"):
        read_frame(tmp_path / "empty.jpg")
    (tmp_path / "text.jpg").write_bytes(b"not a picture")                 # complete but no image: the decoder's say
    with pytest.raises(ValueError, match="not an image OpenCV can decode"):
        read_frame(tmp_path / "text.jpg")


def test_a_16_bit_png_of_12_bit_data_is_refused_when_read_as_8_bits(shared_data, tmp_path):
    """A 16-bit PNG whose values stay below 4096 would be read as 8 bits nearly black (at most 16 grey levels): refused
    by name unless the flag keeps the depth; a full-range 16-bit PNG reads as cv2.imread reads it."""
    src = cv2.imread(str(shared_data / "casme2" / "sub01" / "EP02_01f" / "img59.jpg"), cv2.IMREAD_GRAYSCALE)
    low, full = tmp_path / "low.png", tmp_path / "full.png"
    cv2.imwrite(str(low), src.astype(np.uint16) * 16)                     # 12-bit data in a 16-bit file
    cv2.imwrite(str(full), src.astype(np.uint16) * 257)                   # the full 16-bit range
    for flag in (None, cv2.IMREAD_COLOR, cv2.IMREAD_REDUCED_GRAYSCALE_2):
        with pytest.raises(ValueError, match=rf"cannot read image {low}: a 16-bit image whose values reach only "
                                             rf"{int(src.max()) * 16} of 65535 .* at most {int(src.max()) // 16 + 1} "
                                             r"grey levels\. Scale the frames"):
            read_frame(low, flag)
        np.testing.assert_array_equal(read_frame(full, flag), cv2.imread(str(full), 0 if flag is None else flag))
    for flag in (cv2.IMREAD_UNCHANGED, cv2.IMREAD_ANYDEPTH):               # the caller keeps the 16 bits
        assert read_frame(low, flag).dtype == np.uint16 and int(read_frame(low, flag).max()) == int(src.max()) * 16
    cv2.imwrite(str(tmp_path / "eight.png"), src)                          # an 8-bit PNG: not concerned
    np.testing.assert_array_equal(read_frame(tmp_path / "eight.png"), src)


def test_prepare_and_data_check_refuse_cut_frames(shared_data, tmp_path):
    """A clip whose onset was cut short is skipped with the reason; a cut neighbour counts as unreadable and the
    nearest complete frame stands in; `icegan data check --read-images` lists both files."""
    from icegan.data import prepare as prep
    src = shared_data / "casme2" / "sub01" / "EP02_01f"                  # onset 46, apex 59
    for clip in ("cut_neighbour", "cut_onset"):
        (tmp_path / clip).mkdir()
        for n in (46, 57, 58, 59, 60, 61):
            (tmp_path / clip / f"img{n}.jpg").write_bytes((src / f"img{n}.jpg").read_bytes())
    for rel in ("cut_neighbour/img60.jpg", "cut_onset/img46.jpg"):
        f = tmp_path / rel
        f.write_bytes(f.read_bytes()[:1100])
    clips = tmp_path / "clips.csv"
    clips.write_text("subject,clip,frames,onset,apex,offset\n"
                     + "".join(f"me,{c},{c},46,59,61\n" for c in ("cut_neighbour", "cut_onset")))
    cfg = prep.PrepareConfig(datasets=[prep.DatasetSpec(name="clips", root=str(clips))],
                             cache_root=str(tmp_path / "cache"), size=32, workers=1, progress=False)
    p = prep.prepare_dataset(cfg)
    assert p.manifest["clip"].tolist() == ["cut_neighbour"]
    assert "apex+1 frame 60 unreadable (img60.jpg), used 59" in p.manifest["notes"].iloc[0]
    reason = dict(zip(p.skipped["key"], p.skipped["reason"]))["clips/me/cut_onset"]
    assert "img46.jpg: truncated: no JPEG end marker" in reason

    from icegan.cli import main
    out = tmp_path / "check.json"
    assert main(["data", "check", "--dataset", "clips", "--root", str(clips),
                 "--json", str(out)]) in (0, 1)
    import json
    report = json.loads(out.read_text())
    assert sorted(report["unreadable_images"]) == sorted(str(tmp_path / r) for r in
                                                           ("cut_neighbour/img60.jpg", "cut_onset/img46.jpg"))


def test_jpeg_header_fill_bytes_and_restart_markers_are_stepped_over():
    """A fill byte FF before a marker and a length-less marker (RST7, FF D7) in the header are stepped over: the
    file is still judged by its end marker, complete or cut."""
    data = _encoded(".jpg")
    for extra in (b"\xff", b"\xff\xd7"):
        odd = data[:2] + extra + data[2:]
        assert truncation_problem(odd) is None, extra
        assert truncation_problem(odd[:len(odd) // 2]) == "truncated: no JPEG end marker (FF D9) after its image data"


def test_jpeg_cut_inside_its_first_marker_and_malformed_headers_left_to_the_decoder():
    """Three bytes (FF D8 FF) end inside the header; an end-of-image marker before any scan, or a byte that is not a
    marker where one belongs, are malformed rather than cut: left to the decoder (None)."""
    assert truncation_problem(b"\xff\xd8\xff") == "truncated: the JPEG ends inside its header"
    assert truncation_problem(b"\xff\xd8\xff\xd9") is None
    assert truncation_problem(b"\xff\xd8\x00\x00\x00\x00") is None


def test_png_with_bytes_after_its_iend_chunk_is_complete():
    """The chunk walk ends at the IEND chunk and its 4-byte checksum: bytes after them (8, 20, padding) pass, as
    OpenCV and Pillow decode such a file (before, more than 8 were called truncated); one byte of the checksum
    missing is cut short."""
    data = _encoded(".png")
    assert truncation_problem(data + b"\x00" * 8) is None
    assert truncation_problem(data + b"\x00" * 20) is None
    assert truncation_problem(data[:-1]).startswith("truncated: no complete PNG IEND chunk")


def test_flownet_readers_refuse_a_cut_frame(shared_data, tmp_path):
    """flownet read images with ``cv2.imread``: a JPEG cut short came back with grey rows, and a flow, EPE or
    self-supervised training pair of it was silently wrong (only the reader of `icegan prepare`/`data check` refused
    it). The image readers of flow evaluation (``read_image``), of self-supervised training on real frames
    (``RealFramePairs``), of the synthetic facial set (``SyntheticFaceFlow``, its landmark cache) and of KITTI flow
    PNGs now refuse a cut file by name."""
    from flownet.data.real_pairs import RealFramePairs
    from flownet.data.synthetic_face import SyntheticFaceFlow, build_landmark_cache
    from flownet.io import read_image, read_kitti_png, write_kitti_png
    data = (shared_data / "casme2" / "sub01" / "EP02_01f" / "img59.jpg").read_bytes()
    clip = tmp_path / "casme2" / "sub01" / "EP01_01"
    clip.mkdir(parents=True)
    for n in range(10, 15):
        (clip / f"img{n}.jpg").write_bytes(data)
    cut = clip / "img11.jpg"
    cut.write_bytes(data[:len(data) * 3 // 5])
    assert cv2.imread(str(cut)) is not None             # what the readers did: decoded, the lost rows grey
    why = rf"cannot read image {cut}: truncated: no JPEG end marker .*copy the file again"

    with pytest.raises(ValueError, match=why):
        read_image(cut)
    assert read_image(clip / "img10.jpg").shape == (3, *cv2.imread(str(clip / "img10.jpg"), 0).shape)

    (tmp_path / "casme2" / "manifest.csv").write_text("subject,filename,onset,apex,verified,note\n"
                                                      "sub01,EP01_01,10,13,True,\n")
    pairs = RealFramePairs(root=tmp_path, subjects=["sub01"], kinds=("consecutive",), flip=False)
    assert pairs.frame(clip / "img10.jpg").dtype == np.uint8
    with pytest.raises(OSError, match=why):
        pairs.frame(cut)

    faces = SyntheticFaceFlow(root=shared_data, split="test", size=64, n_pairs=1)
    with pytest.raises(OSError, match=why):
        faces.load_frame(cut)
    with pytest.raises(OSError, match=why):
        build_landmark_cache([cut], tmp_path / "lm.npz", root=tmp_path)

    png = write_kitti_png(tmp_path / "flow.png", np.full((20, 30, 2), 1.5, np.float32))
    assert np.allclose(read_kitti_png(png)[0], 1.5)
    raw = png.read_bytes()
    png.write_bytes(raw[:len(raw) // 2])
    with pytest.raises(ValueError, match=rf"{png}: not a complete KITTI flow PNG: truncated: no complete PNG IEND"):
        read_kitti_png(png)
