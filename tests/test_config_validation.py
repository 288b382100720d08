"""Configuration mistakes of issue 9 (observed item 5): one clear line naming the file, the key and
the value, a non-zero exit, nothing started, no traceback."""

from __future__ import annotations

import pytest

from arrowdaq.cli.main import main

PM1 = '[[instruments]]\nid = "pm1"\ndriver = "newport_1830c"\nport = "sim"\n'
CAMERA = '[[instruments]]\nid = "cam1"\ndriver = "sim_camera"\n'

CASES = {
    "not UTF-8": (b'[run]\nname = "caf\xe9"\n', "lab.toml: line 2: not UTF-8 text (byte 0xe9); save the file as UTF-8"),
    "poll_hz nan": (PM1 + "poll_hz = nan\n", "lab.toml: instruments[0].poll_hz: expected a finite number, got nan"),
    "poll_hz inf": (PM1 + "poll_hz = inf\n", "lab.toml: instruments[0].poll_hz: expected a finite number, got inf"),
    "poll_hz -inf per stream": (
        PM1 + "poll_hz = { power = -inf }\n",
        "lab.toml: instruments[0].poll_hz.power: expected a finite number, got -inf",
    ),
    "negative poll_hz": (
        PM1 + "poll_hz = -2\n",
        "lab.toml: instruments[0].poll_hz: polling rates must be >= 0 Hz (0 = not polled), got -2.0 (got -2)",
    ),
    "absurd poll_hz": (
        PM1 + "poll_hz = 1e12\n",
        "lab.toml: instruments[0].poll_hz: polling rates above 1,000,000 Hz are beyond any device, got 1e+12 "
        "(got 1000000000000.0)",
    ),
    "nan inside settings": (
        PM1 + "settings = { timeout = nan }\n",
        "lab.toml: instruments[0].settings.timeout: expected a finite number, got nan",
    ),
    "nan processor sample_rate": (
        PM1 + '[[processors]]\nid = "lp"\nkind = "filter"\ninputs = "pm1/power"\n'
        'params = { response = "lowpass", cutoff = 1.0, sample_rate = nan }\n',
        "lab.toml: processors[0].params.sample_rate: expected a finite number, got nan",
    ),
    "huge camera shape": (
        CAMERA + "settings = { shape = [100000, 100000] }\n",
        "lab.toml: instruments[0].settings: cam1.shape: 100000×100000 is 10,000,000,000 pixels; a frame has at "
        "most 67,108,864 (8192×8192: larger than any sensor, and each buffered frame is held in memory)",
    ),
    "unknown compression": (
        '[storage]\ncompression = "zzz"\n' + PM1,
        "lab.toml: storage.compression: unknown filter 'zzz' (known by name: gzip, lzf, szip, or None; "
        "other filters by their HDF5 filter id, once registered e.g. by `import hdf5plugin`)",
    ),
    "two instruments on one serial port": (
        PM1.replace('"sim"', '"/dev/ttyUSB0"') + PM1.replace('"pm1"', '"pm2"').replace('"sim"', '"/dev/ttyUSB0"'),
        "lab.toml: instruments[1].port: '/dev/ttyUSB0' is already used by instruments[0] ('pm1'); only devices "
        "on a multidrop bus (Elliptec) share a port",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_config_mistake_is_one_line_naming_file_key_and_value(case, tmp_path, capsys):
    text, expected = CASES[case]
    path = tmp_path / "lab.toml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    status = main(["run", str(path), "--duration", "5", "--data-dir", str(tmp_path / "data")])
    out, err = capsys.readouterr()
    assert status == 1
    assert err == f"arrowdaq run: error: {expected.replace('lab.toml', str(path), 1)}\n"
    assert "Traceback" not in out
    assert not (tmp_path / "data").exists()  # nothing was started
