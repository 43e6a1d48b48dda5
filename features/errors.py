"""Errors raised at input boundaries. Each names what is wrong and where."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Issue:
    """One problem found in an input: which file, row (1-based data row, None for whole-file issues), column."""

    table: str
    problem: str
    file: str | None = None
    row: int | None = None
    column: str | None = None

    def __str__(self) -> str:
        where = self.file or self.table
        if self.row is not None:
            where += f", row {self.row}"
        if self.column is not None:
            where += f", column {self.column!r}"
        return f"{where}: {self.problem}"


class AudiencefitError(Exception):
    """Base of audiencefit's own errors; the CLI prints the message and exits with ``exit_code``."""

    exit_code = 1


class InputError(AudiencefitError):
    """Bad input (file, flag, artifact). Carries every issue found, not just the first."""

    exit_code = 2

    def __init__(self, issues: list[Issue] | str) -> None:
        if isinstance(issues, str):
            self.issues: list[Issue] = []
            message = issues
        else:
            self.issues = list(issues)
            shown = [str(i) for i in self.issues[:50]]
            more = len(self.issues) - len(shown)
            message = f"{len(self.issues)} problem(s) in the input:\n  " + "\n  ".join(shown)
            if more > 0:
                message += f"\n  … and {more} more"
        super().__init__(message)
