"""Drivers for external meters on a serial port (pyserial), each over an incremental framer."""
