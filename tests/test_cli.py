import subprocess
import sys

import pytest

from aigc_course.cli import main


def test_data_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "--list"]) == 0
    out = capsys.readouterr().out.split()
    assert "digits" in out and "cifar10" in out


def test_data_card_of_digits(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "digits"]) == 0
    out = capsys.readouterr().out
    assert "digits" in out and "1797" in out.replace(",", "") and "CC BY 4.0" in out


def test_unknown_dataset_exits_2_with_valid_names(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "cats"]) == 2
    err = capsys.readouterr().err
    assert "unknown dataset 'cats'" in err and "digits" in err and "mnist5k" in err


def test_unknown_command_is_an_argparse_error() -> None:
    with pytest.raises(SystemExit) as err:
        main(["paint"])
    assert err.value.code == 2


def test_module_entry_point_runs() -> None:
    result = subprocess.run([sys.executable, "-m", "aigc_course", "data", "--list"],
                            capture_output=True, text=True, check=True)
    assert "mnist5k" in result.stdout
