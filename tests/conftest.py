"""Settings for the whole suite.

Hypothesis's default ``deadline`` (200 ms per example) is a wall-clock
threshold: on a loaded two-core machine an example of a correct parser can take
longer, and the test fails for the machine's sake. The properties assert
behaviour, never speed, so no example has a deadline.

``no_collector`` is for the tests that check an object is freed by reference
counting alone, the moment its last reference goes.
"""

import gc
from collections.abc import Iterator

import pytest
from hypothesis import settings

settings.register_profile("wsdaemon", deadline=None)
settings.load_profile("wsdaemon")


@pytest.fixture
def no_collector() -> Iterator[None]:
    """Only reference counting frees objects while the test runs."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
