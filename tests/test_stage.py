import pytest

from danet_music2vec import stage
from danet_music2vec.errors import CheckpointError
from danet_music2vec.params import ParamError


@pytest.mark.parametrize("error", [ParamError("params.yaml: noises=3 is not supported"), CheckpointError("models/x.pt: not a checkpoint")])
def test_our_errors_are_one_line_and_exit_2(error, capsys):
    def main():
        raise error

    with pytest.raises(SystemExit) as exited:
        stage.run(main, "mix")
    assert exited.value.code == 2
    assert capsys.readouterr().err == f"mix: error: {error}\n"


def test_a_bare_value_error_is_a_bug_and_keeps_its_traceback():
    def main():
        raise ValueError("shapes do not match")

    with pytest.raises(ValueError, match="shapes do not match"):
        stage.run(main, "mix")
