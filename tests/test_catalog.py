"""The catalog of a checkpoints folder: teachers, the students distilled from each (by provenance), other folders left out."""
import json

from softdimo.paths import project_root
from softdimo.paths import RENAMED_CHECKPOINTS
from softdimo.teachers.catalog import catalog, families, provenance, provenance_teacher
from tiny_models import write_generators


def test_families_follow_the_students_provenance(tmp_path):
    teacher, student = write_generators(tmp_path / "a")
    root = tmp_path / "ckpt"
    root.mkdir()
    teacher.rename(root / "teacher-x")
    student.rename(root / "student-x")
    manifest = json.loads((root / "student-x" / "student.json").read_text())
    manifest["distillation"] = {"teacher": "somewhere/teacher-x", "teacher_cfg": 1.5}
    (root / "student-x" / "student.json").write_text(json.dumps(manifest))
    (root / "tokenizer-x").mkdir()  # not a generator folder: left out
    (root / "tokenizer-x" / "config.json").write_text("{}")
    entries = catalog(root)
    assert [(e.name, e.role) for e in entries] == [("student-x", "student"), ("teacher-x", "teacher")]
    fams = families(root)
    assert len(fams) == 1 and fams[0].teacher.name == "teacher-x"
    assert [s.name for s in fams[0].students] == ["student-x"] and fams[0].teacher_cfg == 1.5
    assert catalog(tmp_path / "absent") == []


def test_a_renamed_teacher_keeps_its_students(tmp_path):
    teacher, student = write_generators(tmp_path / "a")
    root = tmp_path / "ckpt"
    root.mkdir()
    old, new = "teacher-world-slots", RENAMED_CHECKPOINTS["teacher-world-slots"]  # shipped as teacher-world
    teacher.rename(root / new)
    student.rename(root / "dimo-x")
    manifest = json.loads((root / "dimo-x" / "student.json").read_text())
    manifest["distillation"] = {"teacher": f"checkpoints/{old}"}
    (root / "dimo-x" / "student.json").write_text(json.dumps(manifest))
    (fam,) = families(root)
    assert fam.teacher.name == new and [(s.name, s.teacher) for s in fam.students] == [("dimo-x", new)]


def test_provenance_reads_dicts_and_their_text_form():
    assert provenance_teacher({"teacher": "checkpoints/teacher-mnist"}) == "checkpoints/teacher-mnist"
    assert provenance("{'teacher': 'checkpoints/t', 'beta': 0.0}") == {"teacher": "checkpoints/t", "beta": 0.0}
    assert provenance_teacher("{'teacher': 'checkpoints/t', 'x': <object at 0x1>}") == "checkpoints/t"
    assert provenance(None) == {} and provenance_teacher("garbage") == ""


def test_the_shipped_checkpoints_form_families():
    fams = {f.teacher.name: f for f in families(project_root() / "checkpoints")}
    assert fams, "no teacher under checkpoints/"
    for fam in fams.values():
        assert fam.teacher.role == "teacher" and fam.cond in ("class", "text")
        for s in fam.students:
            assert s.path.is_dir() and s.teacher == fam.teacher.name and s.cond == fam.cond
