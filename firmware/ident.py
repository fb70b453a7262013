"""The sensor's identity on every link: ``name_id()``, the 16 bits that name it ``hipcheck-XXXX``.

BLE advertises that name (link_ble) and INFO carries the same bits as ``name_id`` when the host asks (with_id 1),
so a host gives one sensor one name, hence one calibration profile, over BLE and over USB serial alike
(docs/protocol.md, INFO). They are the last two bytes of ``machine.unique_id()`` (the ESP32's factory MAC, the
RP2040's flash chip id): fixed for the board, readable whatever the link, no radio needed.
"""


def name_id():
    """The last two bytes of machine.unique_id() as a u16 (XXXX of hipcheck-XXXX)."""
    import machine
    u = machine.unique_id()
    return (u[-2] << 8) | u[-1]
