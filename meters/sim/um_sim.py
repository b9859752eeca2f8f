"""An RDTech UM24C/UM25C/UM34C on a pty: every 0xF0 gets a 130-byte frame of P(now).

The ten data groups count mAh and mWh from start (or from their last clear, 0xF4 clears the
selected one; 0xA0+g selects group g; 0xB0+x sets the recording threshold). Other command
bytes (screens, backlight, timeout) are accepted and ignored.
"""
import struct

from meters.sim.pty_sim import PtySimulator

# model -> (id, volts multiplier, amps multiplier), the inverse of the meters' scaling
MODELS = {"UM24C": (0x0963, 100, 1000), "UM25C": (0x09C9, 1000, 10000),
          "UM34C": (0x0D4C, 100, 1000)}


class UMSimulator(PtySimulator):
    """Simulated RDTech UM USB meter."""

    kind = "um"

    def __init__(self, profile=None, model="UM25C", volts=5.1, **faults):
        PtySimulator.__init__(self, profile, **faults)
        self.model = model
        self.volts = float(volts)
        self._group = 0
        self._cleared_at = [0.0] * 10
        self._threshold = 0
        self._frames = 0

    def on_input(self, data):
        for byte in bytearray(data):
            if byte == 0xF0:
                if not self.drop():
                    self.send(self.frame(self.now()))
            elif byte == 0xF4:
                self._cleared_at[self._group] = self.now()
            elif 0xA0 <= byte <= 0xA9:
                self._group = byte - 0xA0
            elif 0xB0 <= byte <= 0xCE:
                self._threshold = byte - 0xB0

    def frame(self, t):
        """One status frame; its current carries one digit of noise, alternating in sign from
        frame to frame, so a steady load never reads as a frozen meter (watts stay exact)."""
        model_id, v_mul, i_mul = MODELS[self.model]
        t = self.measured_at(t)
        watts = self.profile.power(t)
        if self.frozen_at is None:  # a frozen meter repeats its last frame, noise and all
            self._frames += 1
        amps = watts / self.volts + (-1) ** self._frames / float(i_mul)
        groups = []
        for since in self._cleared_at:
            joules = self.profile.energy(since, t)
            groups += [int(joules / self.volts / 3.6), int(joules / 3.6)]  # mAh, mWh
        head = struct.pack(">HHHIHHH", model_id, int(round(self.volts * v_mul)),
                           int(round(amps * i_mul)), int(round(watts * 1000)), 30, 86, self._group)
        tail = struct.pack(">HHHIIHIHHHIHH", 0, 0, 0, 0, 0, self._threshold, int(t), 0, 0, 5,
                           int(self.volts / max(amps, 1e-3) * 10) & 0xFFFFFFFF, 0, 0xFFF1)
        return head + struct.pack(">20I", *groups) + tail
