"""Build the optional C accelerator; without a compiler the package installs pure Python.

Everything else about the package lives in pyproject.toml.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "wsdaemon.core._speedups",
            sources=["wsdaemon/core/_speedups.c"],
            optional=True,  # a failed build is a warning, and the pure-Python paths are used
        )
    ]
)
