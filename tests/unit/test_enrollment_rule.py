"""Enrollment through the real models: the subject's face is chosen among bystanders (issue 12,
item 2), `lfr eval`'s gallery takes the same face, and oversized reference images are refused
before they are decoded (issue 11, A-7). Scenes are composed from the public-domain portraits
in demo/people."""

from __future__ import annotations

import struct
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from chalicelib.evaluation.openset import (
    FaceCache,
    Split,
    build_gallery,
    embed_images,
    pipeline_key,
)
from chalicelib.matching.subject_face import AMBIGUOUS, FaceHint
from chalicelib.matching.template import EnrollmentError, build_template
from chalicelib.settings import Settings
from chalicelib.vision import decode as bounded_decode
from chalicelib.vision import reference_image
from chalicelib.vision.factory import build_pipeline
from chalicelib.vision.reference_image import ReferenceImageError, decode_reference, image_size

PEOPLE = Path(__file__).resolve().parents[2] / "demo" / "people"
SUBJECT, OTHER = "Cory_Gardner", "Nancy_Pelosi"


def _portrait(name: str, size: tuple[int, int] | None = None) -> np.ndarray:
    image = cv2.imread(str(PEOPLE / name / "1.jpg"), cv2.IMREAD_COLOR)
    return image if size is None else cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _jpeg(image: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes()


def bystander_scene() -> np.ndarray:
    """The subject in the middle, a smaller face (someone behind) in the top corner."""
    canvas = np.full((400, 400, 3), 128, np.uint8)
    canvas[60:360, 80:320] = _portrait(SUBJECT, (240, 300))
    canvas[0:120, 304:400] = _portrait(OTHER, (96, 120))
    return canvas


def pair_scene() -> np.ndarray:
    """Two people side by side, the same size, equally far from the middle: truly ambiguous."""
    return np.hstack([_portrait(SUBJECT), _portrait(OTHER)])


@pytest.fixture(scope="module")
def pipeline():  # type: ignore[no-untyped-def]
    return build_pipeline(Settings())


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_a_bystander_in_the_background_does_not_refuse_the_reference(pipeline) -> None:
    alone = build_template(pipeline, [("alone", _jpeg(_portrait(SUBJECT)))])
    scene = build_template(pipeline, [("scene", _jpeg(bystander_scene()))])
    assert scene.results[0].faces == 2
    x1, y1, x2, y2 = scene.results[0].box  # the subject's face, in the middle
    assert 80 < x1 < x2 < 320 and 60 < y1 < y2 < 360
    # The template is the subject's, not the bystander's.
    other = build_template(pipeline, [("other", _jpeg(_portrait(OTHER)))])
    assert _cos(scene.embedding, alone.embedding) > 0.8
    assert _cos(scene.embedding, other.embedding) < 0.4


def test_an_ambiguous_reference_lists_its_faces_and_the_operator_chooses(pipeline) -> None:
    data = _jpeg(pair_scene())
    with pytest.raises(EnrollmentError, match="choose one by index or box") as refused:
        build_template(pipeline, [("pair.jpg", data)])
    result = refused.value.results[0]
    assert result.code == AMBIGUOUS and result.faces == 2
    other = build_template(pipeline, [("other", _jpeg(_portrait(OTHER)))])
    subject = build_template(pipeline, [("alone", _jpeg(_portrait(SUBJECT)))])
    # Nancy Pelosi stands on the right: a rough box around her face, or her index.
    by_box = build_template(pipeline, [("pair.jpg", data)], [FaceHint(box=(240, 50, 350, 210))])
    assert _cos(by_box.embedding, other.embedding) > 0.8
    assert _cos(by_box.embedding, subject.embedding) < 0.4
    index = next(k for k, f in enumerate(_listing(refused.value)) if f[0] > 200)
    by_index = build_template(pipeline, [("pair.jpg", data)], [FaceHint(index=index)])
    assert np.allclose(by_index.embedding, by_box.embedding)


def _listing(exc: EnrollmentError) -> list[tuple[int, ...]]:
    """The boxes of the refusal's listing, in its order (parsed from the message)."""
    import re

    return [tuple(int(v) for v in m.split(",")) for m in
            re.findall(r"box (\d+,\d+,\d+,\d+)", str(exc))]


def test_eval_builds_its_gallery_with_the_enrollment_rule(pipeline, tmp_path: Path) -> None:
    settings = Settings()
    scene, pair = tmp_path / "scene.jpg", tmp_path / "pair.jpg"
    scene.write_bytes(_jpeg(bystander_scene()))
    pair.write_bytes(_jpeg(pair_scene()))
    faces = embed_images([scene, pair], settings,
                         FaceCache(pipeline.model_id, key=pipeline_key(settings)),
                         progress=False)
    split = Split({"subject": [scene], "ambiguous": [pair]}, [], [])
    index, _, refused = build_gallery(split, faces, pipeline.model_id)
    # The same face as enrollment takes from the same file, and the same refusal.
    assert index.subject_ids == ["subject"] and refused == 1
    enrolled = build_template(pipeline, [("scene", scene.read_bytes())])
    assert np.allclose(index.templates[0], enrolled.embedding, atol=1e-5)


# --- oversized reference images ---------------------------------------------------------


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(
        ">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def make_huge_png(side: int = 16_000) -> bytes:
    """A valid side x side grey PNG, tiny on disk (0.25 MB for 16,000: 768 MB once decoded
    to BGR)."""
    z = zlib.compressobj(9)
    row = b"\0" * (side + 1)  # filter byte + pixels
    idat = b"".join(z.compress(row) for _ in range(side)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (reference_image.PNG_SIGNATURE + _png_chunk(b"IHDR", ihdr)
            + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def huge_png() -> bytes:
    return make_huge_png()


def test_a_huge_png_small_on_disk_is_refused_before_decoding(huge_png, pipeline,
                                                             monkeypatch) -> None:
    assert len(huge_png) < 1_500_000
    assert image_size(huge_png) == ("png", 16_000, 16_000)
    decoded = []
    monkeypatch.setattr(bounded_decode.cv2, "imdecode",
                        lambda *a: decoded.append(1) or cv2.imdecode(*a))
    t0 = time.process_time()
    with pytest.raises(EnrollmentError, match="256.0 megapixels") as refused:
        build_template(pipeline, [("huge.png", huge_png)])
    assert time.process_time() - t0 < 0.5 and not decoded
    assert refused.value.results[0].code == "too_many_pixels"


def test_reference_headers_are_read_and_other_formats_refused() -> None:
    small = _jpeg(np.zeros((48, 64, 3), np.uint8))
    assert image_size(small) == ("jpeg", 64, 48)
    assert decode_reference(small, 64 * 48).shape == (48, 64, 3)
    with pytest.raises(ReferenceImageError, match="over the limit"):
        decode_reference(small, 64 * 48 - 1)
    # A JPEG whose frame header claims 50,000 x 50,000.
    sof = small.index(b"\xff\xc0")
    forged = small[: sof + 5] + struct.pack(">HH", 50_000, 50_000) + small[sof + 9:]
    with pytest.raises(ReferenceImageError, match="2500.0 megapixels"):
        decode_reference(forged, Settings().max_reference_pixels)
    bmp = cv2.imencode(".bmp", np.zeros((8, 8, 3), np.uint8))[1].tobytes()
    for data, code in ((bmp, "not_an_image"), (b"", "empty"),
                       (reference_image.PNG_SIGNATURE + b"\0" * 8, "corrupt")):
        with pytest.raises(ReferenceImageError) as exc:
            decode_reference(data, 10**9)
        assert exc.value.code == code
