"""Odoo filestore operations: hardlink copy, size, removal.

Odoo stores attachments content-addressed (``<sha1[:2]>/<sha1>``) and never
rewrites a file in place: a changed attachment is a new file.  So a clone can
share the template's files through hardlinks: the copy is nearly free in time
and disk, and a customer's later changes never touch the template's files.
Across filesystems (or where hardlinks are refused) it falls back to a copy.
"""

import errno
import os
import shutil

#: Errors that mean "no hardlink here", not "something is wrong".
_NO_LINK_ERRNOS = {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES}


def filestore_path(data_dir, database):
    """Where Odoo keeps the filestore of ``database`` (``<data_dir>/filestore/<db>``)."""
    if not database or "/" in database or database in (".", ".."):
        raise ValueError("invalid database name for a filestore: %r" % database)
    return os.path.join(data_dir, "filestore", database)


def link_or_copy(src, dst):
    """Hardlink ``src`` to ``dst``; copy it when linking is not possible. Returns 'link'/'copy'."""
    try:
        os.link(src, dst)
        return "link"
    except OSError as exc:
        if exc.errno not in _NO_LINK_ERRNOS:
            raise
    shutil.copy2(src, dst)
    return "copy"


def clone_tree(src, dst):
    """Recreate ``src`` at ``dst`` with hardlinked files; ``dst`` must not exist.

    Returns a dict counting linked and copied files.  A missing ``src`` (a
    template without attachments) gives an empty ``dst``.
    """
    counts = {"link": 0, "copy": 0}
    os.makedirs(dst)
    if not os.path.isdir(src):
        return counts
    for root, dirs, files in os.walk(src):
        target_root = os.path.join(dst, os.path.relpath(root, src))
        for name in dirs:
            os.makedirs(os.path.join(target_root, name), exist_ok=True)
        for name in files:
            counts[link_or_copy(os.path.join(root, name), os.path.join(target_root, name))] += 1
    return counts


def tree_size(path):
    """Bytes used by the files under ``path`` (0 when absent)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except FileNotFoundError:
                continue  # removed by Odoo's garbage collector meanwhile
    return total


def move_tree(src, dst):
    """Rename directory ``src`` to ``dst`` unless that was done already (``dst`` there,
    or ``src`` gone); True when it moved now."""
    if os.path.lexists(src) and not os.path.lexists(dst):
        os.rename(src, dst)
        return True
    return False


def remove_tree(path):
    """Remove ``path`` and everything below it; no error when absent."""
    if os.path.isdir(path):
        shutil.rmtree(path)
