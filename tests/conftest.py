"""Test-wide settings."""

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def _calibration_profiles_of_the_tests(tmp_path_factory):
    """The device calibration profiles live in a folder of the test run, not in the user's configuration: a profile
    made by hand for the simulated sensor ('sim') would otherwise change what `analyze` finds in every log of it."""
    os.environ["HIPCHECK_CONFIG_DIR"] = str(tmp_path_factory.mktemp("hipcheck-config"))
    # No compile-ahead process beside a CLI command run in a test (it starts by itself on an idle machine): the
    # workers compile into the same cache already, and the tests that look at it ask for it.
    os.environ.setdefault("HIPCHECK_COMPILE_AHEAD", "0")
    yield
