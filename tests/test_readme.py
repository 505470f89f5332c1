"""The README's examples are real: the example test file it shows is the one the suite runs."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_readme_quotes_the_example_test_file_verbatim():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    example = (ROOT / "tests" / "test_readme_example.py").read_text(encoding="utf-8")
    assert f"```python\n{example}```" in readme


@pytest.mark.skipif(not (ROOT / ".ci" / "run").is_file(), reason="the CI script is in a checkout, not in the sdist")
def test_readme_test_command_is_what_ci_runs():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    command = ci.strip().splitlines()[-1]
    assert f"```sh\n{command}\n```" in readme
