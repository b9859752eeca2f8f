"""Simulators of every supported meter, all driven by one `PowerProfile` with an exact integral."""
