"""Settings for the whole suite.

Hypothesis's default ``deadline`` (200 ms per example) is a wall-clock
threshold: on a loaded two-core machine an example of a correct parser can take
longer, and the test fails for the machine's sake. The properties assert
behaviour, never speed, so no example has a deadline.
"""

from hypothesis import settings

settings.register_profile("wsdaemon", deadline=None)
settings.load_profile("wsdaemon")
