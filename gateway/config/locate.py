"""Find the line where a key path is written in TOML source text.

tomllib returns values without positions, so problems found after parsing are put back on the
technician's own lines by this small scanner. It understands what people write by hand: [tables],
[[arrays of tables]], dotted and quoted keys, inline tables, multi-line arrays and strings. It is
only ever run on text tomllib has already accepted; a key it cannot place falls back to the nearest
enclosing table it can.
"""

from __future__ import annotations

import bisect

KeyPath = tuple[str | int, ...]
"""A key path: table and key names, with the index of an array element as an int."""

_BARE_KEY_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_SCALAR_END = frozenset(",]}\n#")


class Locator:
    """Line numbers (1-based) of every key path written in one TOML document."""

    def __init__(self, text: str) -> None:
        self._lines = _Scanner(text).scan()

    def line_of(self, path: KeyPath) -> int | None:
        """The line of ``path``, else of its nearest written ancestor, else None."""
        for length in range(len(path), 0, -1):
            line = self._lines.get(path[:length])
            if line is not None:
                return line
        return None


class _Scanner:
    """A forgiving cursor over TOML text that records where each key path starts."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._pos = 0
        self._newlines = [i for i, ch in enumerate(text) if ch == "\n"]
        self._lines: dict[KeyPath, int] = {}
        self._array_tables: dict[KeyPath, int] = {}

    def scan(self) -> dict[KeyPath, int]:
        table: KeyPath = ()
        while True:
            self._skip_blank_lines_and_comments()
            if self._pos >= len(self._text):
                return self._lines
            start = self._pos
            line = self._line()
            if self._text.startswith("[[", self._pos):
                self._pos += 2
                table = self._open_array_table(self._read_key(), line)
            elif self._peek() == "[":
                self._pos += 1
                table = self._open_table(self._read_key(), line)
            else:
                path = table + self._read_key()
                self._skip_spaces()
                if self._peek() == "=":
                    self._pos += 1
                self._read_value(path, line)
            self._skip_to_line_end()
            if self._pos == start:  # never loop forever on text we do not understand
                self._pos += 1

    # --- tables -------------------------------------------------------------------------------

    def _resolve(self, names: tuple[str, ...]) -> KeyPath:
        """Turn header names into a key path, entering the latest element of each array of tables."""
        path: KeyPath = ()
        for name in names:
            path = (*path, name)
            count = self._array_tables.get(path)
            if count is not None:
                path = (*path, count - 1)
        return path

    def _open_table(self, names: tuple[str, ...], line: int) -> KeyPath:
        path = self._resolve(names)
        self._record(path, line)
        return path

    def _open_array_table(self, names: tuple[str, ...], line: int) -> KeyPath:
        array = (*self._resolve(names[:-1]), *names[-1:])
        index = self._array_tables.get(array, 0)
        self._array_tables[array] = index + 1
        path = (*array, index)
        self._record(path, line)
        return path

    def _record(self, path: KeyPath, line: int) -> None:
        for length in range(1, len(path) + 1):
            self._lines.setdefault(path[:length], line)

    # --- keys and values ------------------------------------------------------------------------

    def _read_key(self) -> tuple[str, ...]:
        names: list[str] = []
        while True:
            self._skip_spaces()
            quote = self._peek()
            if quote in ('"', "'"):
                names.append(self._read_quoted(quote))
            else:
                start = self._pos
                while self._pos < len(self._text) and self._text[self._pos] in _BARE_KEY_CHARS:
                    self._pos += 1
                names.append(self._text[start : self._pos])
            self._skip_spaces()
            if self._peek() != ".":
                return tuple(names)
            self._pos += 1

    def _read_value(self, path: KeyPath, line: int) -> None:
        self._record(path, line)
        self._skip_spaces()
        start = self._pos
        char = self._peek()
        if self._text.startswith('"""', self._pos) or self._text.startswith("'''", self._pos):
            self._skip_multiline_string(self._text[self._pos : self._pos + 3])
        elif char in ('"', "'"):
            self._read_quoted(char)
        elif char == "[":
            self._read_array(path)
        elif char == "{":
            self._read_inline_table(path)
        else:
            while self._pos < len(self._text) and self._text[self._pos] not in _SCALAR_END:
                self._pos += 1
        if self._pos == start and self._pos < len(self._text) and self._peek() not in _SCALAR_END:
            self._pos += 1

    def _read_array(self, path: KeyPath) -> None:
        self._pos += 1
        index = 0
        while self._pos < len(self._text):
            self._skip_blank_lines_and_comments()
            char = self._peek()
            if char in ("]", ""):
                self._pos += 1
                return
            if char == ",":
                self._pos += 1
                continue
            before = self._pos
            self._read_value((*path, index), self._line())
            index += 1
            if self._pos == before:
                self._pos += 1

    def _read_inline_table(self, path: KeyPath) -> None:
        self._pos += 1
        while self._pos < len(self._text):
            self._skip_blank_lines_and_comments()
            char = self._peek()
            if char in ("}", ""):
                self._pos += 1
                return
            if char == ",":
                self._pos += 1
                continue
            before = self._pos
            line = self._line()
            key = self._read_key()
            self._skip_spaces()
            if self._peek() == "=":
                self._pos += 1
                self._read_value(path + key, line)
            if self._pos == before:
                self._pos += 1

    def _read_quoted(self, quote: str) -> str:
        self._pos += 1
        chars: list[str] = []
        while self._pos < len(self._text) and self._text[self._pos] not in (quote, "\n"):
            if quote == '"' and self._text[self._pos] == "\\":
                self._pos += 1  # the escaped character cannot end the string
            chars.append(self._text[self._pos : self._pos + 1])
            self._pos += 1
        self._pos += 1
        return "".join(chars)

    def _skip_multiline_string(self, delimiter: str) -> None:
        self._pos += 3
        while self._pos < len(self._text):
            if delimiter == '"""' and self._text[self._pos] == "\\":
                self._pos += 2
                continue
            if self._text.startswith(delimiter, self._pos):
                self._pos += 3
                # TOML lets up to two quotes sit right before the closing delimiter.
                while self._peek() == delimiter[0]:
                    self._pos += 1
                return
            self._pos += 1

    # --- whitespace -----------------------------------------------------------------------------

    def _peek(self) -> str:
        return self._text[self._pos : self._pos + 1]

    def _line(self) -> int:
        return bisect.bisect_left(self._newlines, self._pos) + 1

    def _skip_spaces(self) -> None:
        while self._peek() in (" ", "\t") and self._pos < len(self._text):
            self._pos += 1

    def _skip_blank_lines_and_comments(self) -> None:
        while self._pos < len(self._text):
            char = self._text[self._pos]
            if char in " \t\r\n":
                self._pos += 1
            elif char == "#":
                self._skip_to_line_end()
            else:
                return

    def _skip_to_line_end(self) -> None:
        end = self._text.find("\n", self._pos)
        self._pos = len(self._text) if end < 0 else end + 1
