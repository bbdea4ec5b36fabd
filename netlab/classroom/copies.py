"""Copies flagged: answers identical or nearly so to the instructor's solution or to a classmate's.

Theory of operation, as plagiarism detectors do it (MOSS, JPlag): an answer cell is read as Python
tokens, with names and strings replaced by placeholders and comments and layout dropped, so renaming
variables or reflowing code changes nothing; two answers whose token sequences match for at least
SIMILAR of their length are near copies. Short answers (`answer = 6`, fewer than MIN_TOKENS tokens)
are never compared: every right one looks alike. A capture handed over by two students (the same
capture id) is a copy too, whatever the answer cells say. The grader only notes `copied:<whom>`;
the instructor decides.
"""

from __future__ import annotations

import difflib
import io
import keyword
import tokenize
from collections.abc import Iterable

__all__ = ["INSTRUCTOR", "MIN_TOKENS", "SIMILAR", "copied", "tokens"]

MIN_TOKENS = 30
SIMILAR = 0.9
INSTRUCTOR = "instructor"
_DROP = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENCODING,
         tokenize.ENDMARKER}


def tokens(source: str) -> list[str]:
    """`source` as normalised tokens: keywords, operators and numbers kept; names "N", strings "S"."""
    out = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type in _DROP:
                continue
            if tok.type == tokenize.NAME and not keyword.iskeyword(tok.string):
                out.append("N")
            elif tok.type == tokenize.STRING or tok.type in (getattr(tokenize, "FSTRING_START", -1),):
                out.append("S")
            else:
                out.append(tok.string)
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return source.split()
    return out


def _alike(a: list[str], b: list[str]) -> bool:
    if min(len(a), len(b)) < MIN_TOKENS:
        return False
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio() >= SIMILAR


def copied(answers: dict[str, str], solution: str | None = None,
           captures: dict[str, Iterable[str]] | None = None) -> dict[str, list[str]]:
    """For one exercise: whom each student's answer copies, `{student: [INSTRUCTOR or classmates]}`.

    `answers` maps each student to their answer cells' text; `solution` is the instructor's;
    `captures` maps each student to the capture ids their answer handed over.
    """
    seen = {student: tokens(text) for student, text in answers.items()}
    found: dict[str, list[str]] = {}
    model = tokens(solution) if solution else []
    names = sorted(seen)
    for student in names:
        if model and _alike(seen[student], model):
            found.setdefault(student, []).append(INSTRUCTOR)
    for i, one in enumerate(names):
        for other in names[i + 1:]:
            if _alike(seen[one], seen[other]):
                found.setdefault(one, []).append(other)
                found.setdefault(other, []).append(one)
    owners: dict[str, list[str]] = {}
    for student, ids in (captures or {}).items():
        for capture in set(ids):
            owners.setdefault(capture, []).append(student)
    for sharing in owners.values():
        for student in sharing:
            found.setdefault(student, []).extend(s for s in sharing if s != student)
    return {student: sorted(set(whom)) for student, whom in found.items() if whom}
