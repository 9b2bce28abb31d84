"""engine.filestore: hardlink clone, copy fallback, size, removal."""

import errno
import os

import pytest

from engine import filestore


def make_tree(root):
    files = {"ab/abcdef": b"x" * 100, "cd/cdef01": b"y" * 50, "checklist/x": b""}
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


def test_clone_tree_hardlinks(tmp_path):
    src, dst = tmp_path / "tpl", tmp_path / "clone"
    make_tree(src)
    counts = filestore.clone_tree(str(src), str(dst))
    assert counts == {"link": 3, "copy": 0}
    assert os.path.samefile(src / "ab/abcdef", dst / "ab/abcdef")
    assert (dst / "cd/cdef01").read_bytes() == b"y" * 50
    assert filestore.tree_size(str(dst)) == 150


def test_clone_tree_falls_back_to_copy(tmp_path, monkeypatch):
    src, dst = tmp_path / "tpl", tmp_path / "clone"
    make_tree(src)

    def no_link(a, b):
        raise OSError(errno.EXDEV, "cross-device link")

    monkeypatch.setattr(filestore.os, "link", no_link)
    counts = filestore.clone_tree(str(src), str(dst))
    assert counts == {"link": 0, "copy": 3}
    assert not os.path.samefile(src / "ab/abcdef", dst / "ab/abcdef")
    assert (dst / "ab/abcdef").read_bytes() == b"x" * 100


def test_other_errors_are_not_swallowed(tmp_path, monkeypatch):
    src, dst = tmp_path / "tpl", tmp_path / "clone"
    make_tree(src)

    def broken(a, b):
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(filestore.os, "link", broken)
    with pytest.raises(OSError, match="I/O"):
        filestore.clone_tree(str(src), str(dst))


def test_missing_template_filestore_gives_empty_clone(tmp_path):
    counts = filestore.clone_tree(str(tmp_path / "absent"), str(tmp_path / "clone"))
    assert counts == {"link": 0, "copy": 0}
    assert (tmp_path / "clone").is_dir()


def test_existing_destination_is_refused(tmp_path):
    (tmp_path / "clone").mkdir()
    with pytest.raises(FileExistsError):
        filestore.clone_tree(str(tmp_path), str(tmp_path / "clone"))


def test_clone_changes_do_not_touch_template(tmp_path):
    src, dst = tmp_path / "tpl", tmp_path / "clone"
    make_tree(src)
    filestore.clone_tree(str(src), str(dst))
    filestore.remove_tree(str(dst))
    assert not dst.exists()
    assert (src / "ab/abcdef").read_bytes() == b"x" * 100
    filestore.remove_tree(str(dst))  # absent: no error


@pytest.mark.parametrize("name", ["", "..", "a/b", "."])
def test_filestore_path_refuses_escaping_names(tmp_path, name):
    with pytest.raises(ValueError):
        filestore.filestore_path(str(tmp_path), name)
