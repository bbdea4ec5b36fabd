"""A class graded by several machines (#28 item 8): `grade --shard K/N` and `grade --merge OUT PARTS…`."""

from __future__ import annotations

import pytest

from netlab.__main__ import main
from netlab.classroom.grading import Row, merge, parse_shard, read_csv, shard, write_csv


def test_n_shards_grade_every_student_exactly_once(tmp_path):
    folders = [tmp_path / name for name in ("eve", "ann", "dan", "bob", "cat", "fay", "gus")]
    parts = [shard(folders, (k, 3)) for k in (1, 2, 3)]
    assert sorted(f for part in parts for f in part) == sorted(folders)
    assert [len(p) for p in parts] == [3, 2, 2]
    assert shard(reversed(folders), (2, 3)) == parts[1]  # the order given does not matter


@pytest.mark.parametrize("text", ["0/3", "4/3", "1", "a/b", "1/0", "-1/2"])
def test_a_bad_shard_is_refused_in_one_line(text, capsys):
    with pytest.raises(ValueError, match="shard"):
        parse_shard(text)
    with pytest.raises(SystemExit) as done:
        main(["grade", "--shard", text, "somewhere"])
    assert done.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_merge_joins_the_parts_and_refuses_a_notebook_graded_twice(tmp_path, capsys):
    one = write_csv([Row("bob", "00-start-here", "00-ex1", True, "ok", "")], tmp_path / "1.csv")
    two = write_csv([Row("ann", "00-start-here", "*", False, "not a notebook", ""),
                     Row("ann", "01-layers-and-packets", "01-ex1", False, "no, 'quoted', \"too\"", "copied:bob")],
                    tmp_path / "2.csv")
    assert [r.student for r in merge([one, two])] == ["ann", "ann", "bob"]
    assert main(["grade", "--merge", str(tmp_path / "all.csv"), str(one), str(two)]) == 0
    assert read_csv(tmp_path / "all.csv") == merge([one, two])
    with pytest.raises(ValueError, match="in both"):
        merge([one, one])
    (tmp_path / "other.csv").write_text("name,grade\nann,3\n")
    assert main(["grade", "--merge", str(tmp_path / "x.csv"), str(tmp_path / "other.csv")]) == 2
    assert "not a grades CSV" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()
