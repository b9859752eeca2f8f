"""Benchmark suites: one TOML file names every run of an experiment, so a table is re-run by one command.

A suite file looks like this::

    name = "quick"                      # results land in results/<name>/ by default
    description = "EB Train vs dense on synthetic data"

    [defaults]                          # settings shared by every cell (keys of ebedge.config.settings.DEFAULTS)
    model = "vgg16"
    width = 0.125
    epochs = 20

    [grid]                              # every value a list; the cells are their cross product
    models = ["vgg16"]                  # default: [defaults.model]
    datasets = ["synthetic"]            # default: [defaults.dataset]
    methods = ["dense", "eb"]           # default: [defaults.method]
    prune_ratios = [0.3, 0.5]           # each cell gets prune_ratio = [p]; default: defaults.prune_ratio as is
    draw_ats = [10, 20, 40]             # optional: EB variants draw their ticket at each (others once)
    lr_schedules = ["0:0.01,100:0.001"] # optional, each an --lr-schedule
    lrs = [0.1, 0.5]                    # optional initial learning rates
    power_modes = ["MAXN", 1]           # optional nvpmodel modes, names or ids (docs/power-modes.md)
    gpu_max_freqs_hz = [1300500000]     # optional GPU clock caps; cpu_max_freqs_khz = [...] likewise
    repeats = 3                         # an int, default 1
    seeds = [1, 2, 3]                   # optional, one per repeat; default: defaults.seed + repeat

    [[cells]]                           # optional extra cells: settings over [defaults], `id` optional
    method = "eb"
    prune_ratio = 0.7
    retrain = "reinit"

`[[grid]]` (an array of grid tables) is accepted too, for panels whose ratios, draw epochs or settings
differ (a figure's panels, a table's models); a grid's `settings` table (keys of DEFAULTS) overrides
[defaults] for that grid's cells only, e.g. `settings = {retrain_batch_size = 128}`.
The method "dense" prunes nothing, so it runs once per model/dataset/repeat, not once per ratio.

Cells are ordered repeat-major: every cell of repeat 0 runs before any cell of repeat 1, so a suite
stopped early still holds one complete set, and slow drift (temperature, a battery) spreads over all
methods instead of landing on the last one. Cell ids are readable and stable
("vgg16-synthetic-eb-p0.5-r0"); each cell writes the run directory `<out>/<cell id>/`.

The whole file is validated (through ebedge.config.settings.resolve) before anything runs, and every error
names the file, the line and the key. Relative paths (data_dir) are taken as they are: relative to the
directory the suite is run from.
"""
import collections
import json
import os
import re
import signal
import sys
import threading
import time

from ebedge.errors import EbedgeError
from ebedge.measure import powermode
from ebedge.report.summary_table import no_ticket_note
from ebedge.util.eta import Eta
from ebedge.config.schedules import method_epochs
from ebedge.config import catalog, spec
from ebedge.config.settings import DEFAULTS, resolve

if sys.version_info >= (3, 11):
    import tomllib as _toml  # novermin (guarded by the version check)
else:  # tomli (1.x on Python 3.6) has the same loads() and TOMLDecodeError
    import tomli as _toml

TOP_KEYS = ("name", "description", "defaults", "grid", "cells")
GRID_KEYS = ("models", "datasets", "methods", "prune_ratios", "draw_ats", "lr_schedules", "lrs",
             "power_modes", "gpu_max_freqs_hz", "cpu_max_freqs_khz", "repeats", "seeds", "settings")
GRID_LISTS = {"models": "model", "datasets": "dataset", "methods": "method", "prune_ratios": "prune_ratio",
              "draw_ats": "draw_at", "lr_schedules": "lr_schedule", "lrs": "lr", "power_modes": "power_mode",
              "gpu_max_freqs_hz": "gpu_max_freq_hz", "cpu_max_freqs_khz": "cpu_max_freq_khz"}
BOARD_AXES = ("power_modes", "gpu_max_freqs_hz", "cpu_max_freqs_khz")  # outermost in a repeat: fewer switches
CELL_ONLY_KEYS = ("id",)

Cell = collections.namedtuple("Cell", "cell_id settings")


class Suite(object):
    """A loaded, validated suite: `cells()` lists what runs."""

    def __init__(self, name, description, path, cells):
        self.name = name
        self.description = description
        self.path = path
        self._cells = cells

    def cells(self):
        """The cells in run order, each Cell(cell_id, resolved settings dict)."""
        return list(self._cells)


def _line_of(text, table, key, index=0):
    """1-based line of `key = ...` inside the index-th `[table]`/`[[table]]` (None: top level), or None."""
    current, seen = None, {}
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        header = re.match(r"^\[\[?\s*([A-Za-z0-9_.\-]+)\s*\]\]?", stripped)
        if header:
            current = header.group(1)
            seen[current] = seen.get(current, -1) + 1
            if key is None and current == table and seen[current] == index:
                return number
            continue
        if current == table and (table is None or seen.get(table) == index) and key is not None:
            if re.match(r"^[\"']?%s[\"']?\s*=" % re.escape(key), stripped):
                return number
    return None


class _Where(object):
    """Builds errors that say where in the suite file the problem is."""

    def __init__(self, path, text):
        self.path = path
        self.text = text

    def error(self, message, table=None, key=None, index=0):
        line = _line_of(self.text, table, key, index) if key is not None or table is not None else None
        if line is None and key is not None:
            line = _line_of(self.text, table, None, index)
        name = key if table is None else ("%s.%s" % (table, key) if key else "%s #%d" % (table, index + 1))
        where = self.path if line is None else "%s:%d" % (self.path, line)
        return EbedgeError("%s: %s: %s" % (where, name, message))


def _parse(path):
    try:
        with open(path, "rb") as handle:
            text = handle.read().decode("utf-8")
    except (IOError, OSError) as exc:
        raise EbedgeError("cannot read suite %s: %s" % (path, exc.strerror or exc))
    except UnicodeDecodeError as exc:
        raise EbedgeError("%s: not UTF-8 text: %s" % (path, exc))
    try:
        return text, _toml.loads(text)
    except _toml.TOMLDecodeError as exc:
        message = str(exc)
        found = re.search(r"line (\d+)", message)
        line = int(found.group(1)) if found else len(text.splitlines())
        raise EbedgeError("%s:%d: invalid TOML: %s" % (path, line, message))


def _check_keys(where, table, index, mapping, allowed):
    for key in mapping:
        if key not in allowed:
            raise where.error("unknown key; known keys: %s" % ", ".join(sorted(allowed)), table, key, index)


def _check_value(where, table, index, key, setting, value):
    """Resolve one setting alone, so a bad value is reported against its own key and line."""
    try:
        spec.BY_NAME[setting].check(value)
    except EbedgeError as exc:
        raise where.error(str(exc), table, key, index)


def _check_settings(where, table, index, mapping):
    _check_keys(where, table, index, mapping, set(DEFAULTS) | (set(CELL_ONLY_KEYS) if table == "cells" else set()))
    for key, value in mapping.items():
        if key not in CELL_ONLY_KEYS:
            _check_value(where, table, index, key, key, value)


def _format_ratio(p):
    return "%g" % p


def _cell_id(settings, tagged=()):
    """Readable id; `tagged` names the settings a grid varies beyond the usual axes (draw_at,
    lr_schedule, lr), which then appear in the id too."""
    parts = [settings.model, settings.dataset, settings.method]
    if settings.method != "dense":
        parts.append("p" + "+".join(_format_ratio(p) for p in settings.prune_ratio))
    if "draw_at" in tagged and settings.draw_at is not None:
        parts.append("d%d" % settings.draw_at)
    if "lr" in tagged:
        parts.append("lr%g" % settings.lr)
    if "lr_schedule" in tagged and settings.lr_schedule:
        parts.append("lrs" + settings.lr_schedule.replace(":", "_").replace(",", "+"))
    if settings.power_mode is not None:
        parts.append("pm%s" % settings.power_mode)
    if settings.gpu_max_freq_hz is not None:
        parts.append("gpu%gMHz" % (settings.gpu_max_freq_hz / 1e6))
    if settings.cpu_max_freq_khz is not None:
        parts.append("cpu%gMHz" % (settings.cpu_max_freq_khz / 1e3))
    parts.append("r%d" % settings.repeat)
    return "-".join(parts)


def _grid_cells(where, index, grid, defaults):
    """Expand one grid table into a list of (repeat, overrides) in run order."""
    _check_keys(where, "grid", index, grid, GRID_KEYS)
    fixed = grid.get("settings", {})
    if not isinstance(fixed, dict):
        raise where.error("must be a table of settings", "grid", "settings", index)
    _check_settings(where, "grid", index, fixed)
    axes = {}
    for key, setting in GRID_LISTS.items():
        if key not in grid:
            axes[key] = [None]  # the defaults' value, unchanged
            continue
        values = grid[key]
        if not isinstance(values, list) or not values:
            raise where.error("must be a non-empty list", "grid", key, index)
        for value in values:
            _check_value(where, "grid", index, key, setting, [value] if key == "prune_ratios" else value)
        axes[key] = values
    repeats = grid.get("repeats", 1)
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise where.error("must be a whole number of at least 1, got %r" % (repeats,), "grid", "repeats", index)
    seeds = grid.get("seeds")
    if seeds is not None:
        if not isinstance(seeds, list) or len(seeds) != repeats or \
                not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
            raise where.error("must be a list of %d whole numbers (one per repeat)" % repeats, "grid", "seeds", index)
    base_seed = defaults.get("seed", DEFAULTS["seed"])
    out = []
    for repeat in range(repeats):
        seed = seeds[repeat] if seeds is not None else base_seed + repeat
        for board_state in _product(*(axes[k] for k in BOARD_AXES)):
            for overrides in _training_cells(axes, defaults, fixed, repeat, seed):
                for key, value in zip(BOARD_AXES, board_state):
                    if value is not None:
                        overrides[GRID_LISTS[key]] = value
                out.append((repeat, overrides))
    return out


def _training_cells(axes, defaults, fixed, repeat, seed):
    """The overrides of one repeat's cells at one board state, in run order (`fixed`: the grid's
    own settings, over the defaults)."""
    out = []
    for model in axes["models"]:
        for dataset in axes["datasets"]:
            for method in axes["methods"]:
                effective = method if method is not None else fixed.get(
                    "method", defaults.get("method", DEFAULTS["method"]))
                ratios = [None] if effective == "dense" else axes["prune_ratios"]
                draws = axes["draw_ats"] if _draws_ticket(effective) else [None]
                for ratio, draw, schedule, lr in _product(ratios, draws, axes["lr_schedules"],
                                                         axes["lrs"]):
                    overrides = dict(fixed, repeat=repeat, seed=seed)
                    for key, value in (("model", model), ("dataset", dataset), ("method", method),
                                       ("draw_at", draw), ("lr_schedule", schedule), ("lr", lr)):
                        if value is not None:
                            overrides[key] = value
                    if ratio is not None:
                        overrides["prune_ratio"] = [ratio]
                    out.append(overrides)
    return out


def _draws_ticket(method):
    """Whether `method` takes the draw_ats axis (an unknown name is refused later, by resolve)."""
    chosen = catalog.known(method)
    return chosen is not None and chosen.draws_ticket


def _product(*axes):
    out = [()]
    for axis in axes:
        out = [done + (value,) for done in out for value in axis]
    return out


def _tagged(grids):
    """The extra axes some grid varies (they go into the cell ids)."""
    return set(GRID_LISTS[k] for g in grids for k in ("draw_ats", "lr_schedules", "lrs") if k in g)


def load_suite(path):
    """Read and validate the suite file at `path`; any problem raises EbedgeError naming file, line and key."""
    text, data = _parse(path)
    where = _Where(path, text)
    _check_keys(where, None, 0, data, TOP_KEYS)
    name = data.get("name", os.path.splitext(os.path.basename(path))[0])
    if not isinstance(name, str) or not re.match(r"^[A-Za-z0-9_.\-]+$", name):
        raise where.error("must be a plain name (letters, digits, . _ -), got %r" % (name,), None, "name")
    description = data.get("description", "")
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        raise where.error("must be a table", None, "defaults")
    _check_settings(where, "defaults", 0, defaults)

    grids = data.get("grid", [])
    grids = [grids] if isinstance(grids, dict) else grids
    extra = data.get("cells", [])
    if not isinstance(grids, list) or not all(isinstance(g, dict) for g in grids):
        raise where.error("must be a table ([grid]) or tables ([[grid]])", None, "grid")
    if not isinstance(extra, list) or not all(isinstance(c, dict) for c in extra):
        raise where.error("must be an array of tables ([[cells]])", None, "cells")
    if not grids and not extra:
        raise where.error("a suite needs a [grid] table or [[cells]]", None, "grid")

    planned = []  # (repeat, order, overrides, explicit id, table, index)
    for index, grid in enumerate(grids):
        for repeat, overrides in _grid_cells(where, index, grid, defaults):
            planned.append((repeat, len(planned), overrides, None, "grid", index))
    for index, cell in enumerate(extra):
        _check_settings(where, "cells", index, cell)
        overrides = {k: v for k, v in cell.items() if k not in CELL_ONLY_KEYS}
        planned.append((overrides.get("repeat", defaults.get("repeat", 0)), len(planned), overrides,
                        cell.get("id"), "cells", index))
    planned.sort(key=lambda item: (item[0], item[1]))

    cells, seen = [], {}
    for _, _, overrides, explicit_id, table, index in planned:
        merged = dict(defaults)
        merged.update(overrides)
        try:
            settings = resolve(merged)
        except EbedgeError as exc:
            raise where.error(str(exc), table, None, index)
        cell_id = explicit_id or _cell_id(settings, _tagged(grids))
        if not isinstance(cell_id, str) or not re.match(r"^[A-Za-z0-9_.+\-]+$", cell_id):
            raise where.error("cell id must be a plain name, got %r" % (cell_id,), table, "id", index)
        if cell_id in seen:
            raise where.error("two cells would share the id %r (and its run directory)" % cell_id,
                              table, "id" if explicit_id else None, index)
        seen[cell_id] = True
        cells.append(Cell(cell_id, settings))
    return Suite(name, description, path, cells)


def _status_of(run_dir):
    try:
        with open(os.path.join(run_dir, "summary.json")) as handle:
            return json.load(handle).get("status")
    except (IOError, OSError, ValueError, AttributeError):
        return None


def cell_epochs(settings):
    """Epochs a cell will train, dense and pruned alike: its weight in the suite's time left.

    EB methods train N epochs whatever their EB epoch (E searched + N - E retrained); where E
    matters (re-init retrains N more, --keep-searching searches all N), the draw epoch is used if
    set and N/4 guessed otherwise."""
    epochs = int(settings.get("epochs") or 1)
    eb_epoch = settings.get("draw_at") or max(1, epochs // 4)
    try:
        dense, pruned, _ = method_epochs(settings.get("method"), epochs, min(eb_epoch, epochs))
    except ValueError:  # a method without a known structure: its schedule, once
        return epochs
    if settings.get("keep_searching"):
        dense = epochs
    return max(1, dense + pruned)


def run_suite(suite, out_dir, execute, progress=print):
    """Run every cell not yet complete; return [(cell_id, status)] in run order.

    `execute(settings, out=<dir>, resume=<bool>)` runs one cell and returns its summary dict
    (ebedge.run.runner.execute). A cell whose summary.json says "complete" is skipped, one that left a
    run directory behind is resumed, so re-running an interrupted suite finishes it. A cell that
    raises EbedgeError is reported as failed and the suite goes on with the next.
    """
    with powermode.Session() as session, powermode.holding(session), _sigterm_interrupts():
        return _run_cells(suite.cells(), out_dir, execute, progress)  # the board restored at the end


class _Terminated(KeyboardInterrupt):
    """SIGTERM between cells: unwinds like Ctrl-C, so the suite's board session restores the board."""


class _sigterm_interrupts(object):
    """While inside (main thread only), SIGTERM raises _Terminated; a run installs its own meanwhile."""

    def __enter__(self):
        self.old = None
        if threading.current_thread() is threading.main_thread():
            self.old = signal.signal(signal.SIGTERM, self._raise)
        return self

    @staticmethod
    def _raise(signum, frame):
        raise _Terminated("terminated by signal %d" % signum)

    def __exit__(self, *exc):
        if self.old is not None:
            signal.signal(signal.SIGTERM, self.old)
        return False


def _run_cells(cells, out_dir, execute, progress):
    results = []
    eta = Eta(weights=[cell_epochs(cell.settings) for cell in cells])
    for number, cell in enumerate(cells, 1):
        run_dir = os.path.join(out_dir, cell.cell_id)
        label = "[%d/%d] %s" % (number, len(cells), cell.cell_id)
        if _status_of(run_dir) == "complete":
            progress("%s: complete, skipped" % label)
            eta.done()
            results.append((cell.cell_id, "skipped"))
            continue
        resume = os.path.exists(os.path.join(run_dir, "config.json"))  # else nothing ran yet
        progress("%s: %s" % (label, "resuming" if resume else "running"))
        began = time.monotonic()
        said = ""
        try:
            summary = execute(dict(cell.settings), out=run_dir, resume=resume)
            status = (summary or {}).get("status") or _status_of(run_dir) or "unknown"
            said = no_ticket_note(summary or {})
        except EbedgeError as exc:
            status = "failed: %s" % exc
        eta.done(time.monotonic() - began)
        progress("%s: %s%s%s" % (label, status, said, "  (suite %s)" % eta.text() if eta.text() else ""))
        results.append((cell.cell_id, status))
    return results
