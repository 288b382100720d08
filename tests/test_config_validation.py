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
        "lab.toml: storage.compression: unknown filter 'zzz' (known by name: gzip, lzf, szip, or none; "
        "other filters by their HDF5 filter id, once registered e.g. by `import hdf5plugin`)",
    ),
    "compression true": (
        "[storage]\ncompression = true\n" + PM1,
        'lab.toml: storage.compression: true is not a filter: name one (e.g. "gzip"), or "none" for no filter '
        "(got True)",
    ),
    "image compression of a wrong type": (
        "[storage]\nimage_compression = 1.5\n" + PM1,
        'lab.toml: storage.image_compression: expected a filter name (e.g. "gzip"), an HDF5 filter id or "none", '
        "not a float (got 1.5)",
    ),
    "a value neither branch of a union takes: one line": (
        PM1 + 'poll_hz = "fast"\n',
        "lab.toml: instruments[0].poll_hz: Input should be a valid number, unable to parse string as a number or "
        "Input should be a valid dictionary (got 'fast')",
    ),
    "a bad value inside a table names its key": (
        PM1 + 'poll_hz = { power = "fast" }\n',
        "lab.toml: instruments[0].poll_hz.power: Input should be a valid number, unable to parse string as a number "
        "(got 'fast')",
    ),
    "storage flush interval (the storage options' own type)": (
        "[storage]\nflush_interval_s = 0\n" + PM1,
        "lab.toml: storage.flush_interval_s: Input should be greater than 0 (got 0)",
    ),
    "a port setting of a driver": (
        PM1 + 'settings = { timeout = "slow" }\n',
        "lab.toml: instruments[0].settings.timeout: Input should be a valid number, unable to parse string as a number "
        "(got 'slow')",
    ),
    "an ESP300 axis that does not exist": (
        '[[instruments]]\nid = "stage"\ndriver = "esp300"\nport = "sim"\nsettings = { axes = [1, 4] }\n',
        "lab.toml: instruments[0].settings: stage: axes[1]: Input should be 1, 2 or 3 (got 4)",
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


def test_an_environment_override_is_named_in_its_error():
    from arrowdaq.app.config import parse_config
    from arrowdaq.errors import ConfigError

    with pytest.raises(ConfigError) as raised:
        parse_config({}, "lab.toml", environ={"ARROWDAQ_STORAGE_FLUSH_INTERVAL_S": "never"})
    assert str(raised.value) == (
        "environment ARROWDAQ_STORAGE_FLUSH_INTERVAL_S: storage.flush_interval_s: Input should be a valid number, "
        "unable to parse string as a number (got 'never')"
    )


def test_storage_options_and_the_storage_table_give_the_same_error(tmp_path):
    """One definition of a storage option's type: built in Python or read from a file, the same words."""
    from arrowdaq.app.config import parse_config
    from arrowdaq.errors import ConfigError
    from arrowdaq.storage import StorageOptions

    with pytest.raises(ConfigError) as from_python:
        StorageOptions(data_dir=tmp_path, compression="zstd")
    with pytest.raises(ConfigError) as from_file:
        parse_config({"storage": {"compression": "zstd"}}, "lab.toml")
    assert str(from_file.value) == f"lab.toml: {from_python.value}"
    assert str(from_python.value).startswith("storage.compression: unknown filter 'zstd' (known by name: gzip, lzf")
