"""Stand-ins for desktop meters' sources: a clock for exact power = delta / dt, a powercap
tree laid out as the kernel's, and a pynvml module with settable readings."""
import types


class Clock(object):
    """Stands in for meters.base.now() so that power = delta / dt is exact."""

    def __init__(self, t=100.0):
        self.t = t

    def __call__(self):
        return self.t, 1e9 + self.t


def rapl_zone(root, name, dir_name, uj, max_uj=2 ** 32):
    d = root / "sys" / "class" / "powercap" / dir_name
    d.mkdir(parents=True, exist_ok=True)
    (d / "name").write_text(name + "\n")
    (d / "energy_uj").write_text("%d\n" % uj)
    (d / "max_energy_range_uj").write_text("%d\n" % max_uj)
    return d


def set_uj(d, uj):
    (d / "energy_uj").write_text("%d\n" % uj)


class NotSupported(Exception):
    pass


def fake_pynvml(powers_mw, energies_mj):
    mod = types.ModuleType("pynvml")
    state = {"init": 0}

    def energy(h):
        if energies_mj[h] is None:
            raise NotSupported("Not Supported")
        return energies_mj[h]

    mod.nvmlInit = lambda: state.__setitem__("init", state["init"] + 1)
    mod.nvmlShutdown = lambda: state.__setitem__("init", state["init"] - 1)
    mod.nvmlDeviceGetCount = lambda: len(powers_mw)
    mod.nvmlDeviceGetHandleByIndex = lambda i: i
    mod.nvmlDeviceGetPowerUsage = lambda h: powers_mw[h]
    mod.nvmlDeviceGetTotalEnergyConsumption = energy
    mod.state = state
    return mod
