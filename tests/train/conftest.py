import pytest

from tests.conftest import make_tiny_llama


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A 2-layer random Llama with the embedded model's tokenizer (tests.conftest)."""
    return make_tiny_llama(tmp_path_factory.mktemp("tiny_model"))
