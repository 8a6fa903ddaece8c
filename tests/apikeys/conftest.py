import pytest


@pytest.fixture
def htmx() -> dict[str, str]:
    """Headers of a request made by htmx."""
    return {"HX-Request": "true"}
