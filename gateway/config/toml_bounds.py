"""Bounds on TOML text, checked before tomllib reads it.

tomllib is not written for hostile input: it recurses once per nested array or inline table
(RecursionError at a few hundred levels), keeps every prefix of a dotted key (memory grows with
the square of its parts: 10,000 parts take 400 MB) and reads integers under Python's 4,300-digit
limit (a bare ValueError). A hub's configuration needs none of that, so this scanner refuses such
text first, at the line and column where it starts. It knows just enough TOML to tell keys from
values and to skip strings and comments; on text tomllib would reject anyway it may complain
about nesting instead of syntax, which is as true.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_CONFIG_BYTES = 1 << 20
"""A hub's configuration is a few KB; a megabyte is a mistake (the wrong file) or an attack."""

MAX_BARE_VALUE = 100
"""Longest value without quotes: numbers, dates and booleans are far shorter (a date-time with
offset is 32 characters); the limit keeps integers well inside Python's 4,300 digits."""

_TOKEN = re.compile(
    r"""
    (?P<space>[ \t\r]+)
    | (?P<newline>\n)
    | (?P<comment>\#[^\n]*)
    | (?P<multiline>\"\"\"|''')
    | (?P<basic>"(?:\\.|[^"\\\n])*"?)
    | (?P<literal>'[^'\n]*'?)
    | (?P<punct>[\[\]{}=,])
    | (?P<bare>[^\s"'\#\[\]{}=,]+)
    | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)


@dataclass(frozen=True, slots=True)
class TextProblem:
    """Where the text goes beyond what any configuration needs (1-based line and column)."""

    line: int
    column: int
    what: str
    todo: str


def size_problem(size: int) -> str | None:
    """(what is wrong; what to do) for a file or text of ``size`` bytes, or None if it is small enough."""
    if size <= MAX_CONFIG_BYTES:
        return None
    return (f"the file is larger than {MAX_CONFIG_BYTES // 2**20} MiB, and a hub's configuration is a few KB; "
            "check that this is the configuration file")


def text_problem(text: str, max_nesting: int) -> TextProblem | None:
    """The first place ``text`` nests or runs on further than a configuration of ``max_nesting``
    levels (the top-level table is level 1) ever needs, or None."""
    return _Scanner(text, max_nesting).scan()


class _Scanner:
    def __init__(self, text: str, max_nesting: int) -> None:
        self._text = text
        # A bracket opens a value inside the top-level table (level 1), so n brackets make level n + 1.
        self._max_brackets = max_nesting - 1
        # A dotted key of n parts makes n - 1 tables below the top level, plus the value itself.
        self._max_key_parts = max_nesting
        self._brackets: list[str] = []
        self._in_key = True  # at a statement's start, after "{" and after "," in an inline table
        self._in_header = False
        self._dots = 0

    def scan(self) -> TextProblem | None:
        pos = 0
        while pos < len(self._text):
            match = _TOKEN.match(self._text, pos)
            if match is None:  # unreachable: "other" matches any character
                return None
            kind = match.lastgroup or "other"
            if kind == "multiline":
                pos = self._multiline_end(match.group(), match.end())
                continue
            problem = self._token(kind, match.group(), pos)
            if problem is not None:
                return problem
            pos = match.end()
        return None

    def _multiline_end(self, delimiter: str, pos: int) -> int:
        """Where a multi-line string that opened before ``pos`` ends (the text's end if it does not).

        Searched with str.find rather than a regular expression, so crafted text cannot make it
        backtrack: the scan stays linear in the length of the text.
        """
        while True:
            close = self._text.find(delimiter, pos)
            if close < 0:
                return len(self._text)
            if delimiter == "'''" or self._backslashes_before(close, pos) % 2 == 0:
                end = close + 3
                # TOML lets up to two quotes sit right before the closing delimiter.
                while end < close + 5 and self._text.startswith(delimiter[0], end):
                    end += 1
                return end
            pos = close + 1  # that quote was escaped; the delimiter may start at the next one

    def _backslashes_before(self, end: int, start: int) -> int:
        count = 0
        while end - count > start and self._text[end - count - 1] == "\\":
            count += 1
        return count

    def _token(self, kind: str, token: str, pos: int) -> TextProblem | None:
        if kind == "newline":
            if not self._brackets:  # a statement ends; inside an array a value goes on
                self._start_key()
        elif kind == "punct":
            return self._punctuation(token, pos)
        elif kind == "bare":
            if self._in_key or self._in_header:
                self._dots += token.count(".")
                if self._dots + 1 > self._max_key_parts:
                    return self._problem(
                        pos, f"a dotted key of more than {self._max_key_parts} parts, deeper than any setting",
                        "write the key as config/gateway.toml does",
                    )
            elif len(token) > MAX_BARE_VALUE:
                return self._problem(
                    pos, f"a value of more than {MAX_BARE_VALUE} characters without quotes",
                    "no setting takes a number that long: shorten it, or quote it if it is text",
                )
        return None

    def _punctuation(self, char: str, pos: int) -> TextProblem | None:
        if char == "[" and self._in_header:
            return None  # the second "[" of "[[array of tables]]"
        if char == "[" and self._in_key and not self._brackets:
            self._in_header = True  # a [table] header: its brackets name a table, they nest no value
            return None
        if char == "]" and self._in_header:
            if not self._text.startswith("]]", pos):  # the first "]" of "]]" keeps the header open
                self._in_header = False
                self._in_key = False
            return None
        if char in "[{":
            self._brackets.append(char)
            self._in_key = char == "{"
            self._dots = 0
            if len(self._brackets) > self._max_brackets:
                return self._problem(
                    pos, f"more than {self._max_brackets} arrays or inline tables inside one another, "
                    "deeper than any setting", "remove the extra [ ] or { }",
                )
        elif char in "]}":
            if self._brackets:
                self._brackets.pop()
            self._in_key = False
        elif char == "=":
            self._in_key = False
            self._dots = 0
        elif char == "," and self._brackets and self._brackets[-1] == "{":
            self._start_key()
        return None

    def _start_key(self) -> None:
        self._in_key = True
        self._in_header = False
        self._dots = 0

    def _problem(self, pos: int, what: str, todo: str) -> TextProblem:
        line = self._text.count("\n", 0, pos) + 1
        column = pos - (self._text.rfind("\n", 0, pos) + 1) + 1
        return TextProblem(line, column, what, todo)
