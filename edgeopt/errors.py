"""The one error type users see: a problem and its fix, printed on one line by the CLI (exit 2)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import ValidationError


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


@dataclass(frozen=True)
class Invalid:
    """The first value pydantic refused, in the parts a UsageError line is built from."""

    loc: tuple[str | int, ...]  # where the value sits: ("targets", "x86-cpu", "max_p90_ms")
    kind: str  # pydantic's error type: missing, extra_forbidden, int_type, literal_error, ...
    message: str  # pydantic's own words ("Value error, ..." for a validator's ValueError)
    value: Any  # what was received
    ctx: dict[str, Any]

    @property
    def reason(self) -> str:
        """The message without pydantic's "Value error, " prefix: a validator's own sentence."""
        return self.message.removeprefix("Value error, ")

    def path(self, loc: tuple[str | int, ...] | None = None) -> str:
        return ".".join(str(x) for x in (self.loc if loc is None else loc))


Explain = Callable[[Invalid], "tuple[str, str, str] | None"]


def validation_error(e: ValidationError, source: str, fix: str, explain: Explain | None = None) -> UsageError:
    """The first problem of a pydantic ValidationError as one UsageError line: ``<source>: <where>: <what>``.

    <where> is the dotted path of the refused value (left out when it is empty), <what> pydantic's reason.
    ``explain(invalid)`` words the problems a caller knows better (an unknown key's did-you-mean, "expected a
    number") as (where, what, fix), or returns None for the default wording.
    """
    err = e.errors()[0]
    bad = Invalid(tuple(err["loc"]), err["type"], str(err["msg"]), err.get("input"), dict(err.get("ctx") or {}))
    worded = explain(bad) if explain is not None else None
    where, what, fix = worded if worded is not None else (bad.path(), bad.reason, fix)
    return UsageError(f"{source}: {where}: {what}" if where else f"{source}: {what}", fix)
