"""Every kind of teacher conforms to the typed Teacher protocol, and its students to the Student protocol.

Parametrised over every kind of the registry (:data:`softdimo.teachers.KINDS`), each as a tiny
model built here: native (random), MaskGIT (the published file layout, converted), aMUSEd (a
random diffusers folder) and Meissonic (the tiny aMUSEd folder with a stand-in transformer
behind Meissonic's call signature: Meissonic's own class lives in its code checkout, which is not
installable). For each: the surface the stages use (shapes, conditions, decode vs decode_soft,
sampling), the distillation hooks (trainable_copy, make_student, load_student, load_network)
and the registry's view of the folders.
"""
from __future__ import annotations

import copy

import pytest
import torch

from softdimo.mdm import OneStepSampler
from softdimo.teachers import KINDS, Student, Teacher, load_model, load_teacher, read_kind
from softdimo.teachers.maskgit_convert import convert_maskgit
from softdimo.teachers.maskgit_tiny import write_tiny_published
from softdimo.teachers.meissonic import MeissonicTeacher
from tiny_models import make_teacher, meissonic_like

pytestmark = pytest.mark.usefixtures("one_thread")
B = 2


@pytest.fixture(scope="module")
def amused_dir(tmp_path_factory):
    pytest.importorskip("diffusers")
    from softdimo.teachers.amused_tiny import TinyAmusedConfig, write_tiny_amused

    return write_tiny_amused(tmp_path_factory.mktemp("amused") / "t", TinyAmusedConfig(layers=1))


def build(kind: str, root, amused_dir_factory) -> Teacher:
    """The tiny teacher of ``kind`` (module docstring), loaded through the registry."""
    if kind == "native":
        make_teacher().save_pretrained(root / "native")
        return load_teacher("auto", root / "native")
    if kind == "maskgit":
        published = write_tiny_published(root / "published")
        convert_maskgit(published, root / "maskgit", allow_pickle=True)
        return load_teacher("auto", root / "maskgit")
    folder = amused_dir_factory()
    if kind == "amused":
        return load_teacher("auto", folder)
    assert kind == "meissonic"
    return MeissonicTeacher.from_pretrained(folder, transformer_class=meissonic_like())


@pytest.fixture(scope="module", params=list(KINDS))
def teacher(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(request.param)
    return request.param, build(request.param, root, lambda: request.getfixturevalue("amused_dir"))


def inputs(t: Teacher) -> dict:
    return {"labels": list(range(B))} if t.cond_kind == "class" else {"prompts": ["a red 3", "two digits"]}


def test_the_registry_knows_every_kind_and_its_classes():
    for k in KINDS.values():
        assert k.teacher.ROLE == "teacher" and k.student.ROLE == "student" and k.teacher.STUDENT is not None
        assert issubclass(k.teacher.STUDENT, k.student) or k.student is k.teacher.STUDENT


def test_teacher_surface(teacher):
    kind, t = teacher
    assert isinstance(t, Teacher), kind
    h, w = t.grid
    length, k = h * w, t.num_tokens
    assert t.cond_kind in ("class", "text") and (t.num_classes > 0) == (t.cond_kind == "class")
    assert t.mask_id >= k and t.embedding_table().shape[0] == k
    ids = torch.randint(0, k, (B, length), generator=torch.Generator().manual_seed(0))
    cond, null = t.encode_condition(**inputs(t)), t.null_condition(B)
    e = t.embed(ids)
    assert e.shape[:2] == (B, length) and t.mask_embedding().shape == e.shape[-1:]
    with torch.no_grad():
        z, hidden = t.forward(e, cond, return_hidden=True)
        z_null = t.forward(e, null)
        images = t.decode(ids)
        soft = t.decode_soft(torch.nn.functional.one_hot(ids, k).float())
    assert z.shape[:2] == (B, length) and z.shape[-1] >= k and z_null.shape == z.shape and len(hidden) >= 1
    assert images.shape == (B, *t.image_shape) and 0 <= float(images.min()) and float(images.max()) <= 1
    assert torch.allclose(soft, images, atol=1e-4)  # one-hot p: the soft path is the hard path
    drawn = t.sample(**inputs(t), sampler=t.sampler_with(steps=2), generator=torch.Generator().manual_seed(0))
    assert drawn.shape == (B, *t.image_shape)


def test_distillation_hooks_and_student_folders(teacher, tmp_path):
    kind, t = teacher
    theta = t.trainable_copy()
    assert theta is not t.mdm
    ref = t.mdm.state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in theta.state_dict().items())
    student = t.make_student(theta, OneStepSampler(temperature=0.5), {"teacher": "tiny", "steps": 0})
    assert isinstance(student, Student) and not isinstance(student, Teacher), kind
    assert isinstance(student, t.STUDENT) and student.training_info["teacher"] == "tiny"
    images = student.sample(**inputs(t), generator=torch.Generator().manual_seed(0))
    assert images.shape == (B, *t.image_shape)
    if kind == "meissonic":
        return  # its student folder's transformer class comes from Meissonic's code checkout
    student.save_pretrained(tmp_path / "student")
    theta.save_pretrained(tmp_path / "student" / "aux")
    back = t.load_student(tmp_path / "student")
    assert type(back) is type(student) and back.training_info == student.training_info
    assert back.sampler.temperature == 0.5
    assert read_kind(tmp_path / "student") == student.KIND
    assert type(load_model(tmp_path / "student")) is type(student)
    again = back.sample(**inputs(t), generator=torch.Generator().manual_seed(0))
    assert torch.allclose(again, images, atol=1e-5)
    aux = t.load_network(tmp_path / "student" / "aux")
    assert aux is not None and all(torch.equal(v, ref[k]) for k, v in aux.state_dict().items())
    assert t.load_network(tmp_path / "nothing") is None
    assert copy.deepcopy(student.training_info) == back.training_info
