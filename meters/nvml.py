"""NVIDIA discrete-GPU power through NVML (`pynvml`, from the nvidia-ml-py package).

Power is `nvmlDeviceGetPowerUsage` (mW); where the GPU keeps an energy counter (Volta and later,
`nvmlDeviceGetTotalEnergyConsumption`, mJ since the driver loaded) it goes into `meter_energy_j`,
relative to when the meter opened. Rails are `gpu0`, `gpu1`...; `total` is their sum: separate
boards, so adding them double counts nothing. NVML states +/-5% of the reading for its power.

Readings that stay unchanged for longer than base.STALE_PERIODS updates (at least
base.STALE_MIN_S) come from a driver that stopped updating: flagged `stale`, a gap. The update
period is UPDATE_WITH_COUNTER_S where every GPU keeps an energy counter (it advances while the
GPU draws any power), else UPDATE_POWER_ONLY_S: some GPUs refresh their power figure about once
a second, and an idle one may repeat it.
"""
from meters.base import TOTAL, Freshness, Meter, MeterError, Sample, now, register


def _import_pynvml():
    try:
        import pynvml
    except ImportError:
        raise MeterError("nvml: pynvml not installed (pip install nvidia-ml-py)")
    return pynvml


UPDATE_WITH_COUNTER_S = 0.1
UPDATE_POWER_ONLY_S = 1.0


@register
class NvmlMeter(Meter):
    """Polls every visible GPU (or the `devices` indices given)."""

    name = "nvml"
    trust = 60
    accuracy_pct = 5.0
    default_interval_s = 0.1

    def __init__(self, interval_s=None, devices=None):
        Meter.__init__(self, interval_s)
        if isinstance(devices, int):
            devices = [devices]
        elif isinstance(devices, str):
            devices = [int(d) for d in devices.split(",") if d.strip()]
        self.device_indices = devices
        self._nvml = None
        self._gpus = []  # (rail, handle, energy counter at open in mJ or None)

    @classmethod
    def probe(cls):
        try:
            nvml = _import_pynvml()
            nvml.nvmlInit()
        except MeterError as exc:
            return False, str(exc)
        except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
            return False, "nvml: cannot initialise: %s" % exc
        try:
            n = nvml.nvmlDeviceGetCount()
        finally:
            nvml.nvmlShutdown()
        return (n > 0), "%d NVIDIA GPU(s)" % n

    def open(self):
        nvml = _import_pynvml()
        try:
            nvml.nvmlInit()
            indices = self.device_indices
            if indices is None:
                indices = list(range(nvml.nvmlDeviceGetCount()))
            if not indices:
                raise MeterError("nvml: no NVIDIA GPU visible")
            gpus = []
            for i in indices:
                handle = nvml.nvmlDeviceGetHandleByIndex(i)
                nvml.nvmlDeviceGetPowerUsage(handle)  # fails now rather than in the thread
                gpus.append(("gpu%d" % i, handle, self._energy_mj(nvml, handle)))
        except MeterError:
            raise
        except Exception as exc:
            raise MeterError("nvml: %s" % exc)
        self._nvml = nvml
        self._gpus = gpus
        self.total_rails = [rail for rail, _, _ in gpus]
        counters = all(e0 is not None for _, _, e0 in gpus)
        self._fresh = Freshness(UPDATE_WITH_COUNTER_S if counters else UPDATE_POWER_ONLY_S)

    @staticmethod
    def _energy_mj(nvml, handle):
        try:
            return nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
        except Exception:  # NVMLError_NotSupported before Volta, or an old binding
            return None

    def close(self):
        if self._nvml is not None:
            self._nvml.nvmlShutdown()
            self._nvml = None

    def read(self):
        t_mono, t_wall = now()
        out = []
        total_w = 0.0
        total_j = 0.0
        have_energy = True
        readings = []
        for rail, handle, e0 in self._gpus:
            watts = self._nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0
            e = self._energy_mj(self._nvml, handle) if e0 is not None else None
            readings.append((watts, e))
            joules = (e - e0) / 1000.0 if e is not None else None
            out.append(Sample(t_mono, t_wall, self.name, rail, watts, meter_energy_j=joules))
            total_w += watts
            if joules is None:
                have_energy = False
            else:
                total_j += joules
        out.append(Sample(t_mono, t_wall, self.name, TOTAL, total_w,
                          meter_energy_j=total_j if have_energy else None))
        if self._fresh.stale(tuple(readings), t_mono):
            self._stale(out)
        return out
