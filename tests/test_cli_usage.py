"""A positional argument given as an option (``arrowdaq run --config lab.toml``) is answered with how to
call the command, not only "unrecognized arguments"; real options, abbreviated or not, still work."""

from __future__ import annotations

import pytest

from arrowdaq.cli.main import build_parser, main

TRAPS = {
    "run --config": (
        ["run", "--config", "lab.toml"],
        "arrowdaq run: error: --config is not an option: CONFIG is given by position, without --config, "
        "as in `arrowdaq run lab.toml`",
    ),
    "run --config=": (
        ["run", "--duration", "5", "--config=lab.toml"],
        "arrowdaq run: error: --config is not an option: CONFIG is given by position, without --config, "
        "as in `arrowdaq run lab.toml`",
    ),
    "runs --data-dir (an option of run, not of runs)": (
        ["runs", "--data-dir", "/srv/data"],
        "arrowdaq runs: error: --data-dir is not an option: DATA_DIR is given by position, without --data-dir, "
        "as in `arrowdaq runs /srv/data`",
    ),
    "inspect --file": (
        ["inspect", "--file", "run.h5"],
        "arrowdaq inspect: error: --file is not an option: FILE is given by position, without --file, "
        "as in `arrowdaq inspect run.h5`",
    ),
    "export --file": (
        ["export", "--file", "run.h5", "--format", "csv"],
        "arrowdaq export: error: --file is not an option: FILE is given by position, without --file, "
        "as in `arrowdaq export run.h5`",
    ),
    "scan --config": (
        ["scan", "--config", "lab.toml", "line", "hwp", "0", "90", "10"],
        "arrowdaq scan: error: --config is not an option: CONFIG is given by position, without --config, "
        "as in `arrowdaq scan lab.toml`",
    ),
    "scan --plan (not the first argument: no example)": (
        ["scan", "lab.toml", "--plan", "line"],
        "arrowdaq scan: error: --plan is not an option: PLAN is given by position, without --plan",
    ),
    "watch --stream (by its metavar)": (
        ["watch", "--stream", "pm1/power"],
        "arrowdaq watch: error: --stream is not an option: STREAM is given by position, without --stream, "
        "as in `arrowdaq watch pm1/power`",
    ),
    "sim --driver (the metavar's first word)": (
        ["sim", "--driver", "esp300"],
        "arrowdaq sim: error: --driver is not an option: DRIVER[=PORT|=pty] is given by position, without --driver, "
        "as in `arrowdaq sim esp300`",
    ),
    "sim --device (the singular of devices)": (
        ["sim", "--device=maitai", "--pty"],
        "arrowdaq sim: error: --device is not an option: DRIVER[=PORT|=pty] is given by position, without --device, "
        "as in `arrowdaq sim maitai`",
    ),
    "bench --only": (
        ["bench", "--only", "hub"],
        "arrowdaq bench: error: --only is not an option: NAME is given by position, without --only, "
        "as in `arrowdaq bench hub`",
    ),
    "set --setting": (
        ["set", "laser", "--setting", "wavelength", "780"],
        "arrowdaq set: error: --setting is not an option: SETTING is given by position, without --setting",
    ),
}


@pytest.mark.parametrize("case", TRAPS)
def test_a_positional_argument_given_as_an_option_gets_how_to_call_the_command(case, capsys):
    argv, message = TRAPS[case]
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == message, err
    assert err.startswith(f"usage: arrowdaq {argv[0]}")  # the usage line comes first, as for any usage error


def test_real_options_and_their_abbreviations_are_not_mistaken_for_positionals(tmp_path, capsys):
    missing = tmp_path / "missing.toml"
    # --data (an abbreviation of --data-dir) and --dur are run's own options: the run gets as far as the file
    assert main(["run", str(missing), "--data", str(tmp_path / "d"), "--dur", "1"]) != 0  # returned: parsed
    assert "missing.toml" in capsys.readouterr().err
    # after "--" everything is an argument, even what looks like an option
    assert build_parser().parse_args(["inspect", "--", "--file"]).file == "--file"
