"""The one error type users see: a problem and its fix, printed on one line by the CLI (exit 2)."""

from __future__ import annotations


class UsageError(ValueError):
    """Bad input from the user: a missing file, an unknown name, a malformed config.

    ``problem`` says what was received, ``fix`` says what to do. The CLI prints
    ``error: <problem> — <fix>`` and exits 2.
    """

    def __init__(self, problem: str, fix: str = "") -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem} — {fix}" if fix else problem)


def nearest(name: str, candidates: list[str] | tuple[str, ...]) -> str:
    """Suggestion suffix for an unknown name: ``" (did you mean 'x'?)"`` or ``""``."""
    import difflib

    match = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.5)
    return f" (did you mean '{match[0]}'?)" if match else ""
