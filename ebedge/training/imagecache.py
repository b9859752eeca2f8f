"""Decode a list of small image files once into a uint8 array, cached on disk for the next run.

The cache sits next to the data (`<data dir>/.ebedge-cache/`), keyed by the file list (relative
path, size and modification time of every file, and how images are brought to the model's input),
so a changed tree is decoded again and an unchanged one loads in seconds. Where the data directory
is read-only (a shared mount, or mode r-x even for root) the cache goes to the user's cache directory
(`$XDG_CACHE_HOME/ebedge` or `~/.cache/ebedge`). Files are plain `.npz` arrays read without pickle,
so a cache file planted in a data directory is data, never code.
"""
import hashlib
import json
import os
import tempfile

import numpy as np

from ebedge.errors import EbedgeError

CACHE_VERSION = 1
CACHE_DIRNAME = ".ebedge-cache"


def user_cache_dir():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "ebedge")


def cache_key(root, paths, prep_name):
    """Hash of what the decoded array depends on: every file's path, size and mtime, and the prep."""
    entries = []
    for path in paths:
        info = os.stat(path)
        entries.append([os.path.relpath(path, root), info.st_size, int(info.st_mtime * 1e6)])
    blob = json.dumps({"version": CACHE_VERSION, "prep": prep_name, "files": entries})
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:24]


def _writable_dir(path):
    """True if the cache can go in `path` (created if needed). A directory whose mode grants
    no write permission counts as read-only even where root could write it anyway."""
    parent = path if os.path.isdir(path) else os.path.dirname(path)
    try:
        if os.path.isdir(parent) and not os.stat(parent).st_mode & 0o222:
            return False
        if not os.path.isdir(path):
            os.makedirs(path)
        probe = tempfile.NamedTemporaryFile(dir=path, prefix=".probe-")
        probe.close()
        return True
    except (IOError, OSError):
        return False


def _load(path, count):
    try:
        with np.load(path, allow_pickle=False) as data:
            images = data["images"]
        if images.dtype == np.uint8 and images.ndim == 4 and images.shape[0] == count:
            return images
    except (IOError, OSError, KeyError, ValueError):
        pass
    return None  # unreadable or not ours: decode again and replace it


def _save(path, images):
    handle, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-", suffix=".npz")
    try:
        with os.fdopen(handle, "wb") as out:
            np.savez(out, images=images)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def decode_images(paths, prep):
    """(N, H, W, C) uint8 from image files through `prep` (PIL image -> PIL image of the input size)."""
    from PIL import Image
    arrays = []
    for path in paths:
        try:
            with Image.open(path) as image:
                arrays.append(np.asarray(prep(image), dtype=np.uint8))
        except (IOError, OSError, ValueError, SyntaxError) as exc:  # PIL's errors for bad files
            raise EbedgeError("cannot decode image %s: %s" % (path, exc))
    stacked = np.stack(arrays)
    return stacked if stacked.ndim == 4 else stacked[..., None]


def cached_decode(root, name, paths, prep, prep_name):
    """Decoded images of `paths` and where they came from: {path, hit, fallback}.

    `root` is the data directory the cache lives under, `name` names the split (train, test).
    """
    key = cache_key(root, paths, prep_name)
    filename = "%s-%s.npz" % (name, key)
    candidates = [os.path.join(root, CACHE_DIRNAME), user_cache_dir()]
    for directory in candidates:
        path = os.path.join(directory, filename)
        if os.path.isfile(path):
            images = _load(path, len(paths))
            if images is not None:
                return images, {"path": path, "hit": True, "fallback": directory != candidates[0]}
    images = decode_images(paths, prep)
    for directory in candidates:
        if _writable_dir(directory):
            path = os.path.join(directory, filename)
            _save(path, images)
            return images, {"path": path, "hit": False, "fallback": directory != candidates[0]}
    return images, {"path": None, "hit": False, "fallback": True}
