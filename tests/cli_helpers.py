"""What the tests expect of a refused command line, shared by the CLI tests."""

from __future__ import annotations


def refused(result, *fragments: str) -> str:
    """The CLI said one line starting with ``error:`` holding ``fragments``, exit status 2."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for f in fragments:
        assert f in lines[0], (f, lines[0])
    return lines[0]
