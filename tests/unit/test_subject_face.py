"""The enrollment rule for which face of a reference photo is the subject's (issue 12, item 2)."""

from __future__ import annotations

import numpy as np
import pytest

from chalicelib.matching.subject_face import (
    AMBIGUOUS,
    HINT_NO_FACE,
    NO_FACE,
    UNUSABLE,
    FaceHint,
    choose_subject_face,
    straddling,
)

SHAPE = (150, 150)  # (h, w), as the faces/dev photos


def _box(cx: float, cy: float, side: float) -> list[float]:
    return [cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2]


def _choose(*boxes: list[float], usable: list[bool] | None = None, hint: FaceHint | None = None):
    usable = [True] * len(boxes) if usable is None else usable
    return choose_subject_face(np.array(boxes), np.array(usable), SHAPE, hint)


def test_one_face_is_the_subject_and_no_face_is_refused() -> None:
    assert _choose(_box(75, 75, 60)).index == 0
    assert _choose().code == NO_FACE


def test_a_bystander_in_the_background_is_not_a_reason_to_refuse() -> None:
    subject, bystander = _box(80, 75, 60), _box(130, 30, 35)  # 2.9x smaller, off-centre
    assert _choose(bystander, subject).index == 1
    # Even a bystander nearer the middle, when much smaller and the subject not far off it.
    assert _choose(_box(60, 80, 64), _box(75, 70, 40)).index == 0


def test_of_two_similar_faces_the_one_in_the_middle_is_the_subject() -> None:
    centred, neighbour = _box(75, 75, 60), _box(140, 70, 62)  # the neighbour cut by the edge
    assert _choose(neighbour, centred).index == 1


def test_two_similar_faces_equally_near_the_middle_are_ambiguous() -> None:
    left, right = _box(50, 75, 60), _box(105, 75, 58)
    out = _choose(left, right)
    assert out.index is None and out.code == AMBIGUOUS
    # The operator is told which faces there are, largest first, to choose from.
    assert "[0] box 20,45,80,105" in out.reason and "[1] box" in out.reason
    assert [i for i, _ in out.listing] == [0, 1]


def test_clearly_larger_but_clearly_less_central_is_ambiguous() -> None:
    big_at_edge, small_centred = _box(125, 75, 50), _box(75, 75, 34)
    assert _choose(big_at_edge, small_centred).code == AMBIGUOUS


def test_centrality_never_picks_one_of_a_group() -> None:
    # Three people of similar size: the middle one is not taken for the subject.
    row = [_box(25, 75, 40), _box(75, 75, 40), _box(125, 75, 40)]
    assert _choose(*row).code == AMBIGUOUS
    # But a face clearly larger than the group behind it is.
    assert _choose(*row[:1], _box(75, 80, 70), *row[2:]).index == 1


def test_a_box_straddling_two_faces_is_an_artefact_not_a_rival() -> None:
    subject, neighbour = [51, 41, 103, 112], [107, 46, 150, 119]
    artefact = [77, 42, 125, 119]  # half of each, a hair larger than either (faces/dev)
    boxes = np.array([subject, neighbour, artefact], float)
    assert straddling(boxes).tolist() == [False, False, True]
    assert _choose(subject, neighbour, artefact, usable=[True, True, False]).index == 0
    # Two people equally near the middle with an artefact between them stay ambiguous.
    assert _choose(_box(45, 75, 56), _box(105, 75, 56), _box(75, 75, 56)).code == AMBIGUOUS


def test_the_subjects_face_must_pass_the_gate_even_when_a_bystander_does() -> None:
    blurred_subject, sharp_bystander = _box(75, 75, 60), _box(130, 30, 30)
    out = choose_subject_face(np.array([sharp_bystander, blurred_subject]),
                              np.array([True, False]), SHAPE, gate_reasons="too_blurry")
    assert out.index is None and out.code == UNUSABLE
    assert "too_blurry" in out.reason and "someone else" in out.reason


def test_the_operator_chooses_by_box_or_index() -> None:
    left, right = _box(50, 75, 60), _box(105, 75, 58)
    assert _choose(left, right, hint=FaceHint(box=(80, 50, 130, 100))).index == 1
    assert _choose(left, right, hint=FaceHint(index=1)).index == 1  # 2nd largest
    assert _choose(left, right, hint=FaceHint(index=2)).code == HINT_NO_FACE
    assert _choose(left, right, hint=FaceHint(box=(0, 0, 10, 10))).code == HINT_NO_FACE
    # A chosen face must still have passed the gate.
    assert _choose(left, right, usable=[True, False], hint=FaceHint(index=1)).code == UNUSABLE


def test_face_hints_parse_and_refuse_nonsense() -> None:
    assert FaceHint.parse("1") == FaceHint(index=1)
    assert FaceHint.parse("10, 20, 60, 90") == FaceHint(box=(10, 20, 60, 90))
    for bad in ("", "a", "1,2,3", "10,20,5,90", "-1"):
        with pytest.raises(ValueError):
            FaceHint.parse(bad)
    with pytest.raises(ValueError):
        FaceHint(box=(0, 0, 1, 1), index=0)
