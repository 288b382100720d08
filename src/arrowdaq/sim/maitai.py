"""Simulated Spectra-Physics MaiTai: commands end in CR (LF accepted), replies in LF.

Wavelength, shutter and emission are the optical table's, so the power meter
downstream sees them. ``sim.local_mode = True`` mimics the front-panel LOCAL
mode: sets are accepted and silently not executed. Unknown commands get no
reply, as on the real laser.
"""

from __future__ import annotations

from .device import SimDevice
from .table import OpticalTable

#: Seconds the real laser takes to answer a query (2–3 s have been seen; 1 s is typical).
QUERY_LATENCY = 1.0

IDN = "Spectra Physics,MaiTai,3227/51054/40856,0245-2.00.34"


class MaiTaiSim(SimDevice):
    command_terminator = (b"\r", b"\n")
    reply_terminator = b"\n"
    latency = QUERY_LATENCY

    def __init__(self, table: OpticalTable) -> None:
        super().__init__(table)
        self.local_mode = False
        self.setpoint_nm = table.wavelength_nm

    def handle(self, command: str) -> str | None:
        cmd = command.strip().upper()
        table = self.table
        with table.lock:
            if cmd == "*IDN?":
                return IDN
            if cmd in ("WAVELENGTH?", "WAV?"):
                return f"{self.setpoint_nm:.0f}nm"
            if cmd in ("READ:WAVELENGTH?", "READ:WAV?"):
                return f"{table.wavelength_nm:.0f}nm"
            if cmd in ("POWER?", "READ:POWER?", "READ:POW?"):
                watts = table.internal_power_w()
                return f"{watts:.3f}W" if watts > 0 else "0.00000W"
            if cmd == "SHUTTER?":
                return "1" if table.shutter_open else "0"
            if cmd == "*STB?":
                return str(1 if table.emission else 0)
            if self.local_mode:
                return None
            if cmd.startswith("WAVELENGTH:"):
                try:
                    nm = float(cmd.split(":", 1)[1])
                except ValueError:
                    return None
                if 690 <= nm <= 1040:
                    self.setpoint_nm = table.wavelength_nm = nm
            elif cmd in ("SHUTTER:0", "SHUTTER:1"):
                table.shutter_open = cmd.endswith("1")
            elif cmd == "ON":
                table.emission = True
            elif cmd == "OFF":
                table.emission = False
        return None
