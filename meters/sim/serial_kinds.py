"""Registry entries for the serial-meter simulators (each a pty behind a stable symlink)."""
import importlib

from meters.sim.registry import starter

# kind -> (module, class, how to read it with a driver: a format taking the port path)
_SERIAL = {
    "wattsup": ("meters.sim.wattsup_sim", "WattsupSimulator", "meters.create('wattsup', port=%r)"),
    "yokogawa": ("meters.sim.scpi_sim", "YokogawaSimulator",
                 "meters.create('scpi', port=%r, profile='yokogawa')"),
    "keysight": ("meters.sim.scpi_sim", "KeysightSimulator",
                 "meters.create('scpi', port=%r, profile='keysight')"),
    "um": ("meters.sim.um_sim", "UMSimulator", "meters.create('um', port=%r)"),
    "lines": ("meters.sim.lines_sim", "LinesSimulator", "meters.create('lines', port=%r)"),
}


def _register(kind, module, cls_name, usage):
    @starter(kind)
    def start(profile, **options):
        sim = getattr(importlib.import_module(module), cls_name)(profile, **options).start()
        sim.info = [("port", sim.path), ("read it with", usage % sim.path)]
        return sim
    return start


for _kind, _spec in sorted(_SERIAL.items()):
    _register(_kind, *_spec)
