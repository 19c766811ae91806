"""The `where:` language of the `filter` transform: a tiny parser, never `eval`.

    expr       := or
    or         := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | "(" expr ")" | predicate
    predicate  := operand ("=" | "!=" | "<" | "<=" | ">" | ">=") operand
                | operand ["not"] "in" "[" [literal ("," literal)*] "]"
                | operand "is" ["not"] "null"
                | column | "true" | "false"                 (a boolean on its own)
    operand    := column | literal
    literal    := 'text' ('' escapes a quote) | number | true | false | null
    column     := name ([A-Za-z_][A-Za-z0-9_]*) | "quoted name" ("" escapes a quote)

Keywords are case-insensitive. Anything else (arithmetic, function calls,
`==`, attribute access) is a parse error with its position.

Evaluation follows SQL's three-valued logic: a comparison with NULL is
unknown, `not unknown` is unknown, `false and unknown` is false, `true or
unknown` is true, and a row passes only when the whole expression is true.
Values are compared in their wire form: a number against a numeric column's
string ("1.50") compares as numbers, text against text by code point (ISO
dates and timestamps sort correctly that way), booleans with booleans (and
with MySQL's 0/1). Any other mix raises `TransformError` for that row.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from transforms.base import TransformError

Row = Mapping[str, Any]
Test = Callable[[Row], bool | None]
Value = Callable[[Row], Any]
MAX_DEPTH = 50

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<string>'(?:[^']|'')*')
    | (?P<quoted>"(?:[^"]|"")*")
    | (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
    | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<bad>==|<>|&&|\|\|)
    | (?P<op><=|>=|!=|=|<|>|\(|\)|\[|\]|,)
    )""",
    re.VERBOSE,
)
_KEYWORDS = {"and", "or", "not", "in", "is", "null", "true", "false"}
_MISTAKES = {"==": "use =", "<>": "use !=", "&&": "use and", "||": "use or"}
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: bool(a == b),
    "!=": lambda a, b: bool(a != b),
    "<": lambda a, b: bool(a < b),
    "<=": lambda a, b: bool(a <= b),
    ">": lambda a, b: bool(a > b),
    ">=": lambda a, b: bool(a >= b),
}


class ExpressionError(ValueError):
    """The text is not an expression of this language; `hint` suggests the fix."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


@dataclass(frozen=True)
class _Token:
    kind: str  # string, quoted, number, word, keyword, op, end
    text: str
    position: int  # 1-based column in the expression, for messages


@dataclass(frozen=True)
class Expression:
    text: str
    columns: frozenset[str]
    test: Test  # True, False, or None (unknown: the row does not pass)

    @classmethod
    def parse(cls, text: str) -> Expression:
        parser = _Parser(text)
        test = parser.expression()
        parser.expect_end()
        return cls(text, frozenset(parser.columns), test)


def _tokens(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            rest = text[position:].lstrip()
            if not rest:
                break
            at = len(text) - len(rest) + 1
            hint = "close the quote" if rest[0] in "'\"" else _HELP
            raise ExpressionError(f"unexpected {rest[:10]!r} at column {at}", hint)
        kind = match.lastgroup or "op"
        start = match.start(kind) + 1
        word = match.group(kind)
        if kind == "bad":
            raise ExpressionError(f"unexpected {word!r} at column {start}", _MISTAKES[word])
        if kind == "word" and word.lower() in _KEYWORDS:
            kind, word = "keyword", word.lower()
        tokens.append(_Token(kind, word, start))
        position = match.end()
    tokens.append(_Token("end", "", len(text) + 1))
    return tokens


_HELP = "comparisons (= != < <= > >=), in [...], is null, and, or, not, parentheses"


class _Parser:
    def __init__(self, text: str) -> None:
        if not text.strip():
            raise ExpressionError("the expression is empty", "for example status = 'active'")
        self.tokens = _tokens(text)
        self.index = 0
        self.depth = 0
        self.columns: set[str] = set()

    # -- tokens -------------------------------------------------------------
    @property
    def token(self) -> _Token:
        return self.tokens[self.index]

    def accept(self, kind: str, text: str | None = None) -> _Token | None:
        token = self.token
        if token.kind == kind and (text is None or token.text == text):
            self.index += 1
            return token
        return None

    def fail(self, expected: str) -> ExpressionError:
        token = self.token
        found = "the end" if token.kind == "end" else repr(token.text)
        hint = _HELP
        if token.kind == "op" and token.text == "(" and self.tokens[self.index - 1].kind == "word":
            hint = "function calls are not supported"
        message = f"expected {expected} at column {token.position}, found {found}"
        return ExpressionError(message, hint)

    def expect_end(self) -> None:
        if self.token.kind != "end":
            raise self.fail("and, or, or the end")

    # -- grammar ------------------------------------------------------------
    def expression(self) -> Test:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExpressionError(f"nested more than {MAX_DEPTH} levels deep", "simplify it")
        left = self.conjunction()
        while self.accept("keyword", "or"):
            left = _or(left, self.conjunction())
        self.depth -= 1
        return left

    def conjunction(self) -> Test:
        left = self.negation()
        while self.accept("keyword", "and"):
            left = _and(left, self.negation())
        return left

    def negation(self) -> Test:
        if self.accept("keyword", "not"):
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise ExpressionError(f"nested more than {MAX_DEPTH} levels deep", "simplify it")
            inner = self.negation()
            self.depth -= 1
            return _not(inner)
        if self.accept("op", "("):
            inner = self.expression()
            if not self.accept("op", ")"):
                raise self.fail("')'")
            return inner
        return self.predicate()

    def predicate(self) -> Test:
        start = self.token
        left, is_literal, literal = self.operand()
        if self.token.kind == "op" and self.token.text in _COMPARE:
            op = self.tokens[self.index].text
            self.index += 1
            right, right_literal, right_value = self.operand()
            if (is_literal and literal is None) or (right_literal and right_value is None):
                raise ExpressionError(
                    f"comparing with null at column {start.position} is never true",
                    "use is null or is not null",
                )
            return _comparison(op, left, right)
        if self.accept("keyword", "is"):
            negated = self.accept("keyword", "not") is not None
            if not self.accept("keyword", "null"):
                raise self.fail("null")
            return _is_null(left, negated)
        negated = self.accept("keyword", "not") is not None
        if self.accept("keyword", "in"):
            return _in(left, self.literal_list(), negated)
        if negated:
            raise self.fail("in")
        if is_literal and not isinstance(literal, bool):
            raise ExpressionError(
                f"a condition at column {start.position} is just a value",
                "compare it: column = value",
            )
        return _truth(left)

    def operand(self) -> tuple[Value, bool, Any]:
        """The operand, whether it is a literal, and its value if so."""
        token = self.token
        if token.kind in {"word", "quoted"}:
            self.index += 1
            name = token.text if token.kind == "word" else token.text[1:-1].replace('""', '"')
            self.columns.add(name)
            return (lambda row: row[name]), False, None
        value = self.literal_value()
        return (lambda row: value), True, value

    def literal_value(self) -> Any:
        token = self.token
        if token.kind == "string":
            self.index += 1
            return token.text[1:-1].replace("''", "'")
        if token.kind == "number":
            self.index += 1
            return Decimal(token.text)
        if token.kind == "keyword" and token.text in {"true", "false", "null"}:
            self.index += 1
            return {"true": True, "false": False, "null": None}[token.text]
        raise self.fail("a column name or a value")

    def literal_list(self) -> list[Any]:
        if not self.accept("op", "["):
            raise self.fail("'[' (a list like ['a', 'b'])")
        items: list[Any] = []
        if self.accept("op", "]"):
            return items
        while True:
            items.append(self.literal_value())
            if self.accept("op", "]"):
                return items
            if not self.accept("op", ","):
                raise self.fail("',' or ']'")


# -- evaluation ------------------------------------------------------------------------


def _number(value: Any) -> Decimal | None:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool):
        return Decimal(int(value))
    if isinstance(value, int | float):
        return Decimal(str(value))
    return None


def _kind(value: Any) -> str:
    names = {str: "text", bool: "a boolean", dict: "JSON", list: "an array"}
    return names.get(type(value), "a number")


def _pair(a: Any, b: Any) -> tuple[Any, Any]:
    """`a` and `b` made comparable, or TransformError."""
    if isinstance(a, str) and isinstance(b, str):
        return a, b
    if isinstance(a, bool) and isinstance(b, bool):
        return a, b
    number_a, number_b = _number(a), _number(b)
    if number_a is not None and number_b is not None:
        return number_a, number_b
    try:
        # numeric / decimal columns travel as strings: "1.50" against 1.5
        if number_a is not None and isinstance(b, str) and not isinstance(a, bool):
            return number_a, Decimal(b)
        if number_b is not None and isinstance(a, str) and not isinstance(b, bool):
            return Decimal(a), number_b
    except InvalidOperation:
        pass
    raise TransformError(f"cannot compare {_kind(a)} with {_kind(b)}")


def _compare(op: str, a: Any, b: Any) -> bool | None:
    if a is None or b is None:
        return None
    if isinstance(a, dict | list) or isinstance(b, dict | list):
        if op in {"=", "!="} and type(a) is type(b):
            return _COMPARE[op](a, b)
        raise TransformError(f"cannot compare {_kind(a)} with {_kind(b)} using {op}")
    left, right = _pair(a, b)
    try:
        return _COMPARE[op](left, right)
    except (InvalidOperation, TypeError) as exc:  # NaN orders with nothing
        raise TransformError(f"cannot order {_kind(a)} and {_kind(b)}") from exc


def _comparison(op: str, left: Value, right: Value) -> Test:
    return lambda row: _compare(op, left(row), right(row))


def _in(operand: Value, items: list[Any], negated: bool) -> Test:
    def test(row: Row) -> bool | None:
        value = operand(row)
        if value is None:
            return None
        found: bool | None = False
        for item in items:
            equal = _compare("=", value, item)
            if equal:
                found = True
                break
            if equal is None:
                found = None  # x in [.., null]: unknown unless x matches another item
        return (not found) if negated and found is not None else found

    return test


def _is_null(operand: Value, negated: bool) -> Test:
    if negated:
        return lambda row: operand(row) is not None
    return lambda row: operand(row) is None


def _truth(operand: Value) -> Test:
    def test(row: Row) -> bool | None:
        value = operand(row)
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, int):  # MySQL BOOLEAN is TINYINT(1): 0/1 on the wire
            return value != 0
        raise TransformError(f"a condition needs a boolean column, got {_kind(value)}")

    return test


def _not(inner: Test) -> Test:
    def test(row: Row) -> bool | None:
        value = inner(row)
        return None if value is None else not value

    return test


def _and(left: Test, right: Test) -> Test:
    def test(row: Row) -> bool | None:
        a = left(row)
        if a is False:
            return False
        b = right(row)
        if b is False:
            return False
        return None if a is None or b is None else True

    return test


def _or(left: Test, right: Test) -> Test:
    def test(row: Row) -> bool | None:
        a = left(row)
        if a is True:
            return True
        b = right(row)
        if b is True:
            return True
        return None if a is None or b is None else False

    return test
