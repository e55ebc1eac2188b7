"""Subject names: the one place that spells them, and parsing them back."""

from __future__ import annotations

import pytest

from mlbuffet.protocol import subjects


def test_inference_subjects_name_the_model_and_maybe_a_version():
    assert subjects.infer("iris") == "mlbuffet.infer.iris"
    assert subjects.infer("iris", 3) == "mlbuffet.infer.iris.3"
    assert subjects.infer_pinned_versions("iris") == "mlbuffet.infer.iris.*"


@pytest.mark.parametrize(("model", "version"), [("iris", None), ("iris", 3), ("a-b_C9", 2**31 - 1)])
def test_parse_infer_reads_back_what_infer_writes(model, version):
    assert subjects.parse_infer(subjects.infer(model, version)) == (model, version)


@pytest.mark.parametrize(
    "subject",
    [
        "mlbuffet.infer",
        "mlbuffet.infer.",
        "mlbuffet.infer..3",
        "mlbuffet.infer.iris.3.4",
        "mlbuffet.infer.iris.",
        "mlbuffet.infer.iris.0",
        "mlbuffet.infer.iris.-1",
        "mlbuffet.infer.iris.v2",
        "mlbuffet.infer.iris.٣",
        "mlbuffet.infer.iris.2147483648",
        "mlbuffet.infer.ir*s",
        "other.infer.iris",
        "mlbuffet.test.echo",
        "mlbuffet.events.model.iris",
    ],
)
def test_parse_infer_refuses_what_is_not_an_inference_subject(subject):
    with pytest.raises(ValueError):
        subjects.parse_infer(subject)


def test_the_other_subjects_and_buckets_have_their_documented_names():
    assert subjects.echo() == "mlbuffet.test.echo"
    assert subjects.model_events("iris") == "mlbuffet.events.model.iris"
    assert subjects.all_events() == "mlbuffet.events.>"
    assert subjects.heartbeat("modelhost", "n1") == "mlbuffet.heartbeat.modelhost.n1"
    assert subjects.cluster_status() == "mlbuffet.cluster.status"
    assert subjects.train_submit() == "mlbuffet.train.submit"
    assert subjects.file_object("iris", 2) == "iris/2"
    assert subjects.MODELHOST_QUEUE == "modelhost"
    assert subjects.MODELS_BUCKET == "mlbuffet_models"
    assert subjects.FILES_BUCKET == "mlbuffet_model_files"


def test_place_subjects_name_the_model_and_read_back():
    assert subjects.place("iris") == "mlbuffet.place.iris"
    assert subjects.place_any() == "mlbuffet.place.*"
    assert subjects.parse_place(subjects.place("a-b_C9")) == "a-b_C9"
    for subject in (
        "mlbuffet.place",
        "mlbuffet.place.iris.2",
        "mlbuffet.place.ir*s",
        "x.place.iris",
    ):
        with pytest.raises(ValueError):
            subjects.parse_place(subject)
