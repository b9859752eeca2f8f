"""A fake `jtop` module per jetson-stats version, returning `jetson.power` exactly as that version
does for a given board. Shapes and rules read from jetson-stats' source (rbonghi/jetson_stats):

- 3.1.4 (jtop/service.py `tegra_stats`, `_total_power`; jtop/jtop.py `power`): values from
  tegrastats `{'cur': int, 'avg': int}` (mW); keys renamed `replace("VDD_", "")`,
  `replace("POM_", "")`, `replace("_", " ")`; then the FIRST key containing "IN" is popped into
  `total` (no name), else `total = {'cur': sum, 'avg': sum}`; `power` returns `(total, rails)`.
  It cannot parse JetPack 5's `mW` lines: there it has no rails and a total of 0.
- 4.0.0: as 3.1.4, `NC` dropped, and `VDDQ_` is stripped before `VDD_`.
- 4.1.5: `NC` dropped; the total is taken from the ORIGINAL names: a key containing "POM_5V_IN"
  is popped, else the sum of all; only then are the keys shortened as in 4.0.0.
- 4.2.12 / 4.3.1 (jtop/core/power.py `get_status`, `total_power`): rails read from sysfs, in
  name order, `{'volt': mV, 'curr': mA, 'warn': mA, 'crit': mA, 'power': mW, 'online': True,
  'avg': mW}` (no `type` key); `power` is the IIO `in_power` file on JetPack 4 and
  int(volt * curr / 1000) on hwmon (JetPack 5+); a key equal to "POM_5V_IN" or "VDD_IN" is popped
  into `tot` with `tot['name']` set, else `tot = {'power': sum, 'avg': sum}`; `power` returns
  `{'rail': rails, 'tot': tot}`.
The client as the real one behaves: the service sends a reading every `interval` seconds and the
client calls its `attach`ed observers on each; `ok()` returns False once closed and re-raises what
killed the connection; with the service stopped (SIGSTOP, or its tegrastats child killed on
3.x-4.1) no update comes, `power` keeps the last reading, `ok(spin=True)` stays True and `close()`
blocks until the service resumes.
"""
import threading
import types

VERSIONS = ("3.1.4", "4.0.0", "4.1.5", "4.2.12", "4.3.1")


class FakeJtopException(Exception):
    pass


def _short(name, version):
    if version != "3.1.4":
        name = name.replace("VDDQ_", "")
    return name.replace("VDD_", "").replace("POM_", "").replace("_", " ")


def power_of(version, rails_mw, jetpack=4):
    """`jetson.power` as jetson-stats `version` builds it from tegrastats/sysfs rails (in order)
    on a board running JetPack `jetpack`."""
    rails = [(n, mw) for n, mw in rails_mw if n != "NC" or version == "3.1.4"]
    if version in ("3.1.4", "4.0.0", "4.1.5"):
        if version == "3.1.4" and jetpack >= 5:
            rails = []  # no `NAME cur/avg` token it can parse
        vals = [(n, {"cur": int(mw), "avg": int(mw)}) for n, mw in rails]
        if version == "4.1.5":
            moved = [n for n, _ in vals if "POM_5V_IN" in n][:1]
            vals = [(_short(n, version) if n not in moved else n, v) for n, v in vals]
        else:
            vals = [(_short(n, version), v) for n, v in vals]
            moved = [n for n, _ in vals if "IN" in n][:1]
        table = dict(vals)
        if moved:
            total = table.pop(moved[0])
        else:
            total = {"cur": sum(v["cur"] for v in table.values()),
                     "avg": sum(v["avg"] for v in table.values())}
        return total, table
    table = {}
    for n, mw in sorted(rails):
        volt = 5000
        curr = int(mw * 1000 // volt)
        power = int(mw) if jetpack < 5 else int(volt * (float(curr) / 1000))
        table[n] = {"volt": volt, "curr": curr, "warn": 4000, "crit": 5000, "power": power,
                    "online": True, "avg": power}
    moved = [n for n in table if n in ("POM_5V_IN", "VDD_IN")][:1]
    if moved:
        tot = table.pop(moved[0])
        tot["name"] = moved[0]
    else:
        tot = {"power": sum(v["power"] for v in table.values()),
               "avg": sum(v["avg"] for v in table.values())}
    return {"rail": table, "tot": tot}


def module(version, readings, service_interval=None, fail=None):
    """A `jtop` module whose service sends `readings()` (a callable giving the next
    jetson.power) every `service_interval` seconds (default: the interval the client asked).
    `mod.service_dead` set to an exception makes ok() raise it; `mod.freeze()` stops the service
    as SIGSTOP does, `mod.thaw()` resumes it. One function: the client class it defines closes
    over this version's rules, as the real module's one class does."""
    mod = types.ModuleType("jtop")
    mod.__version__ = version
    mod.JtopException = FakeJtopException
    mod.opened = []
    mod.service_dead = None
    running = threading.Event()
    running.set()
    mod.freeze = running.clear
    mod.thaw = running.set

    class jtop(object):
        def __init__(self, interval=0.5):
            self._interval = interval
            self.closed = False
            self.updates = 0
            self._observers = []
            self._power = None
            self._stop = threading.Event()
            mod.opened.append(self)

        @property
        def interval(self):
            return service_interval if service_interval is not None else self._interval

        def attach(self, observer):
            self._observers.append(observer)

        def start(self):
            if fail:
                raise FakeJtopException(fail)
            self._power = readings()  # the real start() waits for the first message
            thread = threading.Thread(target=self._service)
            thread.daemon = True
            thread.start()

        def _service(self):
            while not self._stop.wait(self.interval):
                running.wait()
                if self._stop.is_set():
                    return
                self._power = readings()
                self.updates += 1
                for observer in list(self._observers):
                    observer(self)

        def ok(self, spin=False):
            if isinstance(mod.service_dead, Exception):
                raise mod.service_dead
            return not self.closed

        def close(self):
            running.wait()  # the real client waits on the stopped service here
            self._stop.set()
            self.closed = True

        @property
        def power(self):
            return self._power

    mod.jtop = jtop
    return mod
