"""A positional argument given as an option (``arrowdaq run --config lab.toml``) is answered with how to
call the command, not only "unrecognized arguments"; real options, abbreviated or not, still work."""

from __future__ import annotations

import pytest

from arrowdaq.cli.main import build_parser, main


def usage_error(argv: list[str], capsys) -> str:
    """The last line ``arrowdaq ARGV`` printed as it exited with status 2 (argparse's usage error)."""
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: arrowdaq {argv[0]}")  # the usage line comes first, as for any usage error
    return err.splitlines()[-1]


def test_run_with_config_as_an_option_says_the_config_is_given_by_position(capsys):
    assert usage_error(["run", "--config", "lab.toml"], capsys) == (
        "arrowdaq run: error: --config is not an option: CONFIG is given by position, without --config, "
        "as in `arrowdaq run lab.toml`"
    )


#: What a user typed -> the option, the positional it names, and the call to show (None: not the first positional).
TRAPS = {
    "run --config=": (["run", "--duration", "5", "--config=lab.toml"], "--config", "CONFIG", "run lab.toml"),
    "runs --data-dir (an option of run)": (["runs", "--data-dir", "/srv"], "--data-dir", "DATA_DIR", "runs /srv"),
    "inspect --file": (["inspect", "--file", "run.h5"], "--file", "FILE", "inspect run.h5"),
    "export --file": (["export", "--file", "run.h5", "--format", "csv"], "--file", "FILE", "export run.h5"),
    "scan --config": (
        ["scan", "--config", "lab.toml", "line", "hwp", "0", "90"],
        "--config",
        "CONFIG",
        "scan lab.toml",
    ),
    "scan --plan": (["scan", "lab.toml", "--plan", "line"], "--plan", "PLAN", None),
    "watch --stream (the metavar)": (["watch", "--stream", "pm1/power"], "--stream", "STREAM", "watch pm1/power"),
    "sim --driver (its first word)": (["sim", "--driver", "esp300"], "--driver", "DRIVER[=PORT|=pty]", "sim esp300"),
    "sim --device (a singular)": (["sim", "--device=maitai", "--pty"], "--device", "DRIVER[=PORT|=pty]", "sim maitai"),
    "bench --only": (["bench", "--only", "hub"], "--only", "NAME", "bench hub"),
    "set --setting": (["set", "laser", "--setting", "wavelength", "780"], "--setting", "SETTING", None),
}


@pytest.mark.parametrize("case", TRAPS)
def test_every_positional_given_as_an_option_gets_how_to_call_the_command(case, capsys):
    argv, option, positional, call = TRAPS[case]
    message = usage_error(argv, capsys)
    assert message.startswith(
        f"arrowdaq {argv[0]}: error: {option} is not an option: {positional} is given by position"
    )
    assert message.endswith(f", as in `arrowdaq {call}`" if call else f"without {option}"), message


def test_real_options_and_their_abbreviations_are_not_mistaken_for_positionals(tmp_path, capsys):
    missing = tmp_path / "missing.toml"
    # --data (an abbreviation of --data-dir) and --dur are run's own options: the run gets as far as the file
    assert main(["run", str(missing), "--data", str(tmp_path / "d"), "--dur", "1"]) != 0  # returned: parsed
    assert "missing.toml" in capsys.readouterr().err
    # after "--" everything is an argument, even what looks like an option
    assert build_parser().parse_args(["inspect", "--", "--file"]).file == "--file"
