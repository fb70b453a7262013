"""Test support: a bleak backend on a bumble central (``bleak_bumble``) and an emulated hipcheck sensor as a bumble
peripheral whose packets come from the firmware in the MicroPython unix port (``emulated_sensor``)."""
