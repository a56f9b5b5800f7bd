"""Argo's small languages, implemented once for the linter and the local runner.

Three notations appear in our manifests and both ``cxr lint`` and ``cxr run`` must read them the way the Argo
controller does:

* **Templates** ``{{inputs.parameters.x}}``: :func:`substitute` replaces them (``{{=expr}}`` is refused: none of
  our manifests use it, and the runner must not guess).
* **``depends``** (``a && (b.Succeeded || c.Failed)``): :func:`parse_depends` returns the task names and evaluates
  the expression against finished tasks with Argo's rule that a bare ``task`` means
  ``task.Succeeded || task.Skipped || task.Daemoned``.
* **Expressions**: a task's ``when`` (govaluate after substitution) and a ``retryStrategy.expression``
  (expr-lang over ``lastRetry.exitCode``/``status``/``duration``/``message``). :func:`evaluate` implements the
  subset both need: literals, lists, ``== != < <= > >=``, ``and or not && || !``, ``in``, ``matches``/``=~``,
  ``contains``, ``startsWith``, ``endsWith``, ``+ - * / %``, member access and the functions
  ``asInt asFloat int float string len lower upper``. Types are strict as in expr: ``"75" == 75`` is false, which
  is why Argo's own examples wrap ``lastRetry.exitCode`` (a string) in ``asInt``.

Anything outside the subset raises :class:`ExpressionError` instead of being read loosely: a manifest the
runner cannot evaluate faithfully must fail here first, not on a cluster.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

__all__ = [
    "DEPENDS_RESULTS",
    "TAG",
    "DependsExpression",
    "ExpressionError",
    "evaluate",
    "evaluate_when",
    "parse_depends",
    "parse_duration",
    "substitute",
]

TAG = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
DEPENDS_RESULTS = frozenset(
    {"Succeeded", "Failed", "Errored", "Skipped", "Omitted", "Daemoned", "AnySucceeded", "AllFailed"}
)


class ExpressionError(ValueError):
    """An expression, ``depends`` or template tag that cannot be read or evaluated."""


# ---------------------------------------------------------------------------------------------- templates
def substitute(value: Any, context: Mapping[str, Any], *, strict: bool = True) -> Any:
    """Replaces ``{{name}}`` in strings (recursively in lists and dicts) with ``context`` values.

    Dicts and lists in the context are rendered as compact JSON, as Argo does.

    Args:
        value: A string, list or dict (other values are returned unchanged).
        context: ``{"inputs.parameters.x": "1", ...}``.
        strict: Raise on an unknown variable; otherwise leave the tag as it is.

    Raises:
        ExpressionError: An unknown variable (with ``strict``) or a ``{{=expression}}`` tag.
    """
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            name = match.group(1).strip()
            if name.startswith("="):
                raise ExpressionError(f"expression templates are not supported by the local runner: {{{{{name}}}}}")
            if name not in context:
                if strict:
                    raise ExpressionError(f"unresolved variable {{{{{name}}}}}")
                return match.group(0)
            found = context[name]
            return found if isinstance(found, str) else json.dumps(found, separators=(",", ":"))

        return TAG.sub(replace, value)
    if isinstance(value, list):
        return [substitute(item, context, strict=strict) for item in value]
    if isinstance(value, dict):
        return {key: substitute(item, context, strict=strict) for key, item in value.items()}
    return value


# ---------------------------------------------------------------------------------------------- durations
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: Any) -> float:
    """Seconds of an Argo/Go duration (``"30s"``, ``"1h30m"``) or a bare number of seconds (``"300"``, ``60``).

    Raises:
        ExpressionError: Anything else (``"5 minutes"``, ``"1d"``, negative values).
    """
    if isinstance(value, bool):
        raise ExpressionError(f"not a duration: {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ExpressionError(f"durations cannot be negative. Received: {value!r}")
        return float(value)
    text = str(value).strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    position, total = 0, 0.0
    while position < len(text):
        match = _DURATION_PART.match(text, position)
        if not match:
            raise ExpressionError(f"not a duration (use e.g. 30s, 10m, 1h30m): {value!r}")
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        position = match.end()
    if not text:
        raise ExpressionError("empty duration")
    return total


# ---------------------------------------------------------------------------------------------- depends
_DEPENDS_TOKEN = re.compile(r"\s*(\(|\)|&&|\|\||!|[A-Za-z0-9_][A-Za-z0-9_.-]*)")


@dataclasses.dataclass(frozen=True)
class DependsExpression:
    """A parsed ``depends`` expression.

    Attributes:
        text: The expression as written.
        tasks: Task names it references, in order of first appearance.
    """

    text: str
    tasks: tuple[str, ...]
    _tokens: tuple[tuple[str, str, str], ...]

    def evaluate(self, statuses: Mapping[str, Any]) -> bool | None:
        """Whether the task may run, given ``{task: node}`` of finished tasks.

        A node is anything with ``status`` and ``children`` attributes (the runner's results). Returns ``None``
        while a referenced task has not finished.
        """
        python: list[str] = []
        for kind, task, result in self._tokens:
            if kind == "op":
                python.append(task)
                continue
            if task not in statuses:
                return None
            python.append(str(_depends_result(statuses[task], result)))
        try:
            return bool(eval("".join(python), {"__builtins__": {}}, {}))  # noqa: S307 - only True/False/and/or/not
        except SyntaxError as exc:
            raise ExpressionError(f"cannot parse depends expression {self.text!r}") from exc


def parse_depends(expression: str) -> DependsExpression:
    """Parses ``depends`` (``a && (b.Succeeded || !c.Failed)``).

    Raises:
        ExpressionError: Unknown characters, an unknown ``.Result``, or unbalanced syntax.
    """
    text = str(expression).strip()
    tokens: list[tuple[str, str, str]] = []
    tasks: list[str] = []
    position = 0
    while position < len(text):
        match = _DEPENDS_TOKEN.match(text, position)
        if not match:
            raise ExpressionError(f"cannot parse depends expression {text!r} at {text[position:]!r}")
        token = match.group(1)
        position = match.end()
        operator = {"(": "(", ")": ")", "&&": " and ", "||": " or ", "!": " not "}.get(token)
        if operator is not None:
            tokens.append(("op", operator, ""))
            continue
        task, result = token, ""
        base, dot, suffix = token.rpartition(".")
        if dot and suffix[:1].isupper():
            if suffix not in DEPENDS_RESULTS:
                raise ExpressionError(
                    f"unknown task result .{suffix} in depends {text!r} (use one of {sorted(DEPENDS_RESULTS)})"
                )
            task, result = base, suffix
        tokens.append(("task", task, result))
        if task not in tasks:
            tasks.append(task)
    parsed = DependsExpression(text, tuple(tasks), tuple(tokens))
    parsed.evaluate({task: _AnyNode() for task in tasks})  # syntax check
    return parsed


class _AnyNode:
    status = "Succeeded"
    children: list[Any] = []


def _depends_result(node: Any, result: str) -> bool:
    children = list(getattr(node, "children", None) or []) or [node]
    status = node.status
    if result == "":
        return status in ("Succeeded", "Skipped", "Daemoned")
    if result == "AnySucceeded":
        return any(child.status == "Succeeded" for child in children)
    if result == "AllFailed":
        return all(child.status in ("Failed", "Errored") for child in children)
    return bool(status == result)


# ---------------------------------------------------------------------------------------------- expressions
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<number>\d+(?:\.\d+)?)
      | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<op>==|!=|<=|>=|&&|\|\||=~|[<>!+\-*/%()\[\],.])
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)
_WORD_OPERATORS = {"and", "or", "not", "in", "matches", "contains", "startsWith", "endsWith"}
_COMPARISONS = {"==", "!=", "<", "<=", ">", ">=", "in", "not in", "matches", "=~", "contains", "startsWith",
                "endsWith"}


def _as_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ExpressionError(f"asInt: not a number: {value!r}")
    if isinstance(value, (int, float)):
        return int(value)
    try:
        return int(str(value).strip())
    except ValueError as exc:
        raise ExpressionError(f"asInt: not an integer: {value!r}") from exc


def _as_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ExpressionError(f"asFloat: not a number: {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise ExpressionError(f"asFloat: not a number: {value!r}") from exc


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "asInt": _as_int,
    "int": _as_int,
    "asFloat": _as_float,
    "float": _as_float,
    "string": lambda value: value if isinstance(value, str) else json.dumps(value),
    "len": lambda value: len(value),
    "lower": lambda value: str(value).lower(),
    "upper": lambda value: str(value).upper(),
}


def _tokenize(text: str) -> list[tuple[str, Any]]:
    tokens: list[tuple[str, Any]] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if not match:
            raise ExpressionError(f"cannot read expression {text!r} at {text[position:]!r}")
        position = match.end()
        if match.group("number") is not None:
            raw = match.group("number")
            tokens.append(("value", float(raw) if "." in raw else int(raw)))
        elif match.group("string") is not None:
            raw = match.group("string")
            body = raw[1:-1]
            tokens.append(("value", re.sub(r"\\(.)", r"\1", body)))
        elif match.group("op") is not None:
            tokens.append(("op", match.group("op")))
        else:
            name = match.group("name")
            if name in ("true", "false"):
                tokens.append(("value", name == "true"))
            elif name in ("nil", "null"):
                tokens.append(("value", None))
            elif name in _WORD_OPERATORS:
                tokens.append(("op", name))
            else:
                tokens.append(("name", name))
    tokens.append(("end", None))
    return tokens


class _Parser:
    """Recursive descent over the tokens, evaluating as it goes (the expressions are tiny)."""

    def __init__(self, text: str, variables: Mapping[str, Any], *, bare_words: bool = False) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.position = 0
        self.variables = variables
        self.bare_words = bare_words

    def peek(self) -> tuple[str, Any]:
        return self.tokens[self.position]

    def take(self) -> tuple[str, Any]:
        token = self.tokens[self.position]
        self.position += 1
        return token

    def expect(self, value: str) -> None:
        kind, found = self.take()
        if kind != "op" or found != value:
            raise ExpressionError(f"expected {value!r} in expression {self.text!r}, found {found!r}")

    def accept(self, *values: str) -> str | None:
        kind, found = self.peek()
        if kind == "op" and found in values:
            self.position += 1
            return str(found)
        return None

    def parse(self) -> Any:
        value = self.disjunction()
        if self.peek()[0] != "end":
            raise ExpressionError(f"unexpected {self.peek()[1]!r} in expression {self.text!r}")
        return value

    def disjunction(self) -> Any:
        value = self.conjunction()
        while self.accept("or", "||"):
            right = self.conjunction()
            value = _truth(value, self.text) or _truth(right, self.text)
        return value

    def conjunction(self) -> Any:
        value = self.negation()
        while self.accept("and", "&&"):
            right = self.negation()
            value = _truth(value, self.text) and _truth(right, self.text)
        return value

    def negation(self) -> Any:
        if self.accept("not", "!"):
            return not _truth(self.negation(), self.text)
        return self.comparison()

    def comparison(self) -> Any:
        left = self.additive()
        kind, found = self.peek()
        if kind == "op" and found == "not" and self.tokens[self.position + 1] == ("op", "in"):
            self.position += 2
            return not _compare("in", left, self.additive(), self.text)
        if kind == "op" and found in _COMPARISONS:
            self.position += 1
            return _compare(str(found), left, self.additive(), self.text)
        return left

    def additive(self) -> Any:
        value = self.multiplicative()
        while operator := self.accept("+", "-"):
            value = _arithmetic(operator, value, self.multiplicative(), self.text)
        return value

    def multiplicative(self) -> Any:
        value = self.unary()
        while operator := self.accept("*", "/", "%"):
            value = _arithmetic(operator, value, self.unary(), self.text)
        return value

    def unary(self) -> Any:
        if self.accept("-"):
            return _arithmetic("-", 0, self.unary(), self.text)
        return self.postfix()

    def postfix(self) -> Any:
        value, name = self.primary()
        while True:
            if self.accept("."):
                kind, member = self.take()
                if kind != "name":
                    raise ExpressionError(f"expected a member name after '.' in {self.text!r}")
                name = f"{name}.{member}" if name else None
                value = _member(value, member, name, self.text)
            elif self.accept("["):
                index = self.disjunction()
                self.expect("]")
                value = _index(value, index, self.text)
                name = None
            elif self.accept("("):
                function = _FUNCTIONS.get(name or "")
                if function is None or value is not _CALLABLE:
                    raise ExpressionError(f"unknown function {name!r} in expression {self.text!r}")
                arguments = [] if self.accept(")") else self.arguments(")")
                try:
                    value = function(*arguments)
                except TypeError as exc:
                    raise ExpressionError(f"{name}(): {exc} in expression {self.text!r}") from exc
                name = None
            else:
                if value is _CALLABLE:
                    raise ExpressionError(f"function {name!r} used without a call in {self.text!r}")
                return value

    def arguments(self, closing: str) -> list[Any]:
        values = [self.disjunction()]
        while self.accept(","):
            values.append(self.disjunction())
        self.expect(closing)
        return values

    def primary(self) -> tuple[Any, str | None]:
        kind, value = self.take()
        if kind == "value":
            return value, None
        if kind == "name":
            if value in _FUNCTIONS and self.peek() == ("op", "("):
                return _CALLABLE, value
            if value not in self.variables:
                if self.bare_words:
                    return value, None
                raise ExpressionError(f"unknown variable {value!r} in expression {self.text!r}")
            return self.variables[value], value
        if kind == "op" and value == "(":
            inner = self.disjunction()
            self.expect(")")
            return inner, None
        if kind == "op" and value == "[":
            return ([] if self.accept("]") else self.arguments("]")), None
        raise ExpressionError(f"unexpected {value!r} in expression {self.text!r}")


_CALLABLE = object()


def _truth(value: Any, text: str) -> bool:
    if not isinstance(value, bool):
        raise ExpressionError(f"expected a boolean, got {value!r} in expression {text!r}")
    return value


def _member(value: Any, member: str, name: str | None, text: str) -> Any:
    if isinstance(value, Mapping):
        if member not in value:
            raise ExpressionError(f"unknown variable {name or member!r} in expression {text!r}")
        return value[member]
    raise ExpressionError(f"{name or member!r}: cannot read a member of {value!r} in expression {text!r}")


def _index(value: Any, index: Any, text: str) -> Any:
    try:
        return value[index]
    except (KeyError, IndexError, TypeError) as exc:
        raise ExpressionError(f"cannot index {value!r} with {index!r} in expression {text!r}") from exc


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _compare(operator: str, left: Any, right: Any, text: str) -> bool:
    if operator == "==":
        return bool(left == right) and (_number(left) == _number(right))
    if operator == "!=":
        return not _compare("==", left, right, text)
    if operator in ("<", "<=", ">", ">="):
        if not ((_number(left) and _number(right)) or (isinstance(left, str) and isinstance(right, str))):
            raise ExpressionError(f"cannot compare {left!r} {operator} {right!r} in expression {text!r}")
        return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[operator]
    if operator == "in":
        if isinstance(right, list):
            return any(_compare("==", left, item, text) for item in right)
        if isinstance(right, Mapping):
            return left in right
        raise ExpressionError(f"'in' needs a list or map on the right, got {right!r} in expression {text!r}")
    if not (isinstance(left, str) and isinstance(right, str)):
        raise ExpressionError(f"{operator!r} needs strings, got {left!r} and {right!r} in expression {text!r}")
    if operator in ("matches", "=~"):
        try:
            return re.search(right, left) is not None
        except re.error as exc:
            raise ExpressionError(f"bad regular expression {right!r} in expression {text!r}: {exc}") from exc
    if operator == "contains":
        return right in left
    if operator == "startsWith":
        return left.startswith(right)
    return left.endswith(right)


def _arithmetic(operator: str, left: Any, right: Any, text: str) -> Any:
    if operator == "+" and isinstance(left, str) and isinstance(right, str):
        return left + right
    if not (_number(left) and _number(right)):
        raise ExpressionError(f"cannot compute {left!r} {operator} {right!r} in expression {text!r}")
    if operator in ("/", "%") and right == 0:
        raise ExpressionError(f"division by zero in expression {text!r}")
    return {"+": left + right, "-": left - right, "*": left * right, "/": left / right, "%": left % right}[operator]


def evaluate(expression: str, variables: Mapping[str, Any] | None = None, *, bare_words: bool = False) -> Any:
    """Evaluates an expr-lang / govaluate expression of the subset described in the module docstring.

    Args:
        expression: ``asInt(lastRetry.exitCode) in [75, 137]`` or a substituted ``when`` (``true == true``).
        variables: Top-level names; nested mappings give member access (``{"lastRetry": {"status": "Failed"}}``).
        bare_words: Read an unknown name as the string of itself, as Argo does for ``when`` (it turns govaluate's
            variables into strings so that ``heads == heads`` needs no quotes).

    Returns:
        The value (a ``bool`` for conditions).

    Raises:
        ExpressionError: Syntax outside the subset, unknown variables or functions, or type errors.
    """
    if not str(expression).strip():
        raise ExpressionError("empty expression")
    return _Parser(str(expression), variables or {}, bare_words=bare_words).parse()


def evaluate_when(expression: str) -> bool:
    """A substituted ``when`` (a task's, or a metric's) as the controller reads it: govaluate with bare words as
    strings, and the result must be a boolean.

    Raises:
        ExpressionError: Syntax outside the subset, or a result that is not a boolean.
    """
    value = evaluate(expression, bare_words=True)
    if not isinstance(value, bool):
        raise ExpressionError(f"when {expression!r} does not give a boolean (got {value!r})")
    return value
