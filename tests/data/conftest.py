"""Fixtures of the data tests (the fake datasets themselves are in fakes.py)."""

import pytest
import tensorflow_datasets as tfds

from fcnjax.data import builders  # noqa: F401  (registers the builders)


@pytest.fixture
def prepare(tmp_path):
    """prepare(name, manual_dir, **builder kwargs) -> the prepared builder (data in tmp_path)."""
    def run(name, manual_dir, **kwargs):
        kwargs.setdefault("data_dir", str(tmp_path / "tfds"))
        builder = (tfds.builder(name, **kwargs) if isinstance(name, str)
                   else name(**kwargs))
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
        return builder
    tfds.disable_progress_bar()
    return run
