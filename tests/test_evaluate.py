"""The evaluate command's choices (its runs are in test_train, test_cli_datasets)."""

import pytest

from configs import default, sample
from fcnjax import evaluate
from fcnjax.run.errors import ConfigError


def test_isbi_challenge_scoring_is_its_own_field(capsys):
    """config.eval.isbi_challenge turns the challenge's scores on; for one release the class
    names still do too, with a line naming the field."""
    config = sample.get_config()
    assert evaluate.is_isbi2012(config) and capsys.readouterr().err == ""
    config.eval.isbi_challenge = False
    assert evaluate.is_isbi2012(config)
    assert "set config.eval.isbi_challenge=True" in capsys.readouterr().err
    config.eval.classes = "voc"
    assert not evaluate.is_isbi2012(config) and capsys.readouterr().err == ""
    config = default.get_config()
    config.eval.isbi_challenge = True
    with pytest.raises(ConfigError, match="2 classes"):
        evaluate.is_isbi2012(config)
