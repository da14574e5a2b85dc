import pytest

from dbkeeper.cli import COMMANDS, build_parser, main


def command_names() -> list[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return sorted(sub.choices)  # type: ignore[arg-type]


def test_every_command_module_is_registered() -> None:
    assert len(command_names()) == len(COMMANDS)


@pytest.mark.parametrize("command", command_names())
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert f"dbkeeper {command}" in out and len(out.splitlines()) > 3


def test_usage_error_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["restore"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "dbkeeper: error:" in err and "Traceback" not in err
