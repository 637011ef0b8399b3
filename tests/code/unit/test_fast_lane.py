"""The fast lane (`pytest -m "not slow"`) leaves out every test that starts a process or a browser."""

import subprocess
import sys

from tests.conftest import REPO


def collected(*args: str) -> set[str]:
    """The test ids pytest collects with these arguments (no test runs)."""
    command = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "-n", "0", *args]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    return {line for line in result.stdout.splitlines() if "::" in line}


def test_the_fast_lane_holds_no_integration_or_browser_test():
    files = [
        "tests/code/registry/test_rollback.py",
        "tests/code/dashboard/test_browser.py",
        "tests/code/unit/test_mlproject.py",
    ]
    everything = collected(*files)
    process_starting = collected(*files, "-m", "integration or browser")
    fast = collected(*files, "-m", "not slow")

    assert process_starting and fast  # both kinds are present in these files
    assert fast == everything - process_starting
