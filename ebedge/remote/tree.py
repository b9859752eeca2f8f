"""A collected run's directory tree, walked without recursion and within limits.

What a board sends may be a tree deeper than any run (Python's recursive os.walk and
shutil.rmtree then die of RecursionError and leave the stage behind) or with millions of
entries; every walk here is iterative and refuses past MAX_DEPTH levels or MAX_ENTRIES entries.
"""
import os
import shutil
import stat

from ebedge.errors import EbedgeError

MAX_DEPTH = 32  # a run directory is 3 deep (checkpoints/, laptop/, nodes/<rank>/)
MAX_ENTRIES = 200000


class TreeRefused(EbedgeError):
    """The tree is deeper or larger than any run, or holds something that is no file."""


def walk(root, max_depth=MAX_DEPTH, max_entries=MAX_ENTRIES):
    """Yield (relative path, lstat result) for every entry under `root`, parents first, without
    recursion; TreeRefused past the limits."""
    stack = [("", 0)]
    seen = 0
    while stack:
        rel, depth = stack.pop()
        with os.scandir(os.path.join(root, rel)) as entries:
            names = [e.name for e in entries]
        for name in sorted(names):
            seen += 1
            if seen > max_entries:
                raise TreeRefused("more than %d entries" % max_entries)
            path = os.path.join(rel, name)
            info = os.lstat(os.path.join(root, path))
            yield path, info
            if stat.S_ISDIR(info.st_mode):
                if depth + 1 >= max_depth:
                    raise TreeRefused("deeper than %d levels" % max_depth)
                stack.append((path, depth + 1))


def remove(root):
    """Remove `root` and everything under it, however deep, without recursion; errors ignored."""
    if not os.path.lexists(root):
        return
    if not os.path.isdir(root) or os.path.islink(root):
        _unlink(root)
        return
    stack = [root]
    while stack:
        top = stack[-1]
        try:
            with os.scandir(top) as entries:
                subdirs = []
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        subdirs.append(entry.path)
                    else:
                        _unlink(entry.path)
        except OSError:
            subdirs = []
        if subdirs:
            stack.extend(subdirs)
            continue
        stack.pop()
        try:
            os.rmdir(top)
        except OSError:
            pass


def _unlink(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def copy(src, dst, skip=(), link=True):
    """Directories and regular files of `src` into `dst` (top-level names in `skip`
    left out): hard links where `link` and the filesystem allow, else copies."""
    os.makedirs(dst, exist_ok=True)
    for rel, info in walk(src):
        if rel.split(os.sep)[0] in skip:
            continue
        target = os.path.join(dst, rel)
        if stat.S_ISDIR(info.st_mode):
            os.makedirs(target, exist_ok=True)
        elif stat.S_ISREG(info.st_mode):
            if link:
                try:
                    os.link(os.path.join(src, rel), target)
                    continue
                except OSError:
                    pass
            shutil.copy2(os.path.join(src, rel), target, follow_symlinks=False)
