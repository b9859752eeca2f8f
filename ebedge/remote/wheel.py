"""This ebedge as a wheel, written directly (a wheel is a zip with a few metadata files).

`remote install` must work from any laptop venv, also one without `wheel`, `setuptools` or
`build` and without network, so the pure-Python wheel is assembled here from the imported
packages (`ebedge`, `meters`, with the simulators' executables) and setup.cfg's metadata, per
the wheel format (PEP 427): `<name>-<version>.dist-info/` with METADATA, WHEEL, entry_points.txt
and RECORD (sha256 of every file).
"""
import base64
import configparser
import glob
import hashlib
import os
import zipfile

import ebedge
import meters

NAME = "ebedge"
TAG = "py3-none-any"
PACKAGE_DATA = {"meters.sim": ["bin/*"]}  # when there is no setup.cfg to read it from
ENTRY_POINTS = "[console_scripts]\nebedge = ebedge.cli:main\n"


def _setup_cfg():
    """setup.cfg beside the packages (a checkout or an editable install), or None."""
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(ebedge.__file__))),
                        "setup.cfg")
    if not os.path.exists(path):
        return None
    cfg = configparser.ConfigParser()
    cfg.read(path)
    return cfg


def _package_data(cfg):
    """{dotted package: [glob pattern]}, as setup.cfg's [options.package_data] says."""
    if cfg is None or not cfg.has_section("options.package_data"):
        return PACKAGE_DATA
    return {pkg: [p for p in value.replace(",", " ").split() if p]
            for pkg, value in cfg.items("options.package_data")}


def _metadata(version, cfg):
    """METADATA text from setup.cfg (or the installed distribution's metadata)."""
    lines = ["Metadata-Version: 2.1", "Name: %s" % NAME, "Version: %s" % version]
    if cfg is not None:
        lines.append("Summary: %s" % cfg.get("metadata", "description", fallback=""))
        lines.append("Requires-Python: %s" % cfg.get("options", "python_requires",
                                                     fallback=">=3.6"))
        requires = cfg.get("options", "install_requires", fallback="").strip().splitlines()
    else:
        from importlib import metadata
        requires = [r for r in metadata.requires(NAME) or [] if "extra ==" not in r]
    lines += ["Requires-Dist: %s" % r.strip() for r in requires if r.strip()]
    return "\n".join(lines) + "\n"


def _package_files(package, package_data):
    """(path on disk, path in the wheel): the modules of `package` and its subpackages, and the
    data files `package_data` names."""
    top = os.path.dirname(os.path.abspath(package.__file__))
    name = package.__name__
    found = set()
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        if os.path.exists(os.path.join(dirpath, "__init__.py")):
            found.update(os.path.join(dirpath, f) for f in filenames if f.endswith(".py"))
            rel = os.path.relpath(dirpath, top)
            dotted = ".".join([name] + ([] if rel == "." else rel.split(os.sep)))
            for pattern in package_data.get(dotted, ()):
                found.update(p for p in glob.glob(os.path.join(dirpath, pattern))
                             if os.path.isfile(p))
    for path in sorted(found):
        yield path, "/".join([name] + os.path.relpath(path, top).split(os.sep))


def _digest(data):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(
        b"=").decode("ascii")


def build_wheel(outdir):
    """Write `ebedge-<version>-py3-none-any.whl` into `outdir`; returns its path."""
    version = ebedge.__version__
    dist_info = "%s-%s.dist-info" % (NAME, version)
    path = os.path.join(outdir, "%s-%s-%s.whl" % (NAME, version, TAG))
    cfg = _setup_cfg()
    package_data = _package_data(cfg)
    record = []
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as whl:
        def add(arcname, data, mode=0o644):
            info = zipfile.ZipInfo(arcname, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            whl.writestr(info, data)
            record.append("%s,%s,%d" % (arcname, _digest(data), len(data)))

        for package in (ebedge, meters):
            for source, arcname in _package_files(package, package_data):
                with open(source, "rb") as f:
                    data = f.read()
                add(arcname, data, 0o755 if os.access(source, os.X_OK) and not
                    arcname.endswith(".py") else 0o644)
        add(dist_info + "/METADATA", _metadata(version, cfg).encode("utf-8"))
        add(dist_info + "/WHEEL", ("Wheel-Version: 1.0\nGenerator: ebedge.remote.wheel\n"
                                   "Root-Is-Purelib: true\nTag: %s\n" % TAG).encode("ascii"))
        add(dist_info + "/entry_points.txt", ENTRY_POINTS.encode("ascii"))
        record.append("%s/RECORD,," % dist_info)
        whl.writestr(zipfile.ZipInfo(dist_info + "/RECORD", date_time=(1980, 1, 1, 0, 0, 0)),
                     "\n".join(record) + "\n")
    return path
