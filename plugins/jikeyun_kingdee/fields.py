"""Target fields as declared kinds: what a scheme writes into a Kingdee Model, how it is read back and compared.

A scheme's ``target.fields`` is parsed once, when the scheme loads, into a :class:`FieldMap`. Every written field has
one kind, declared (``{kind: …}``) or inferred from its shape:

==============  ==============================================  ===========================  ====================
kind            YAML                                            read back (ExecuteBillQuery)  compared
==============  ==============================================  ===========================  ====================
``scalar``      ``FName: "{goodsName}"``, ``FErpClsID: "1"``     ``FName``                    loosely (values)
``reference``   ``FUseOrgId: {FNumber: I0134}`` (or ``FNUMBER``)  ``FUseOrgId.FNumber``        the number
``sub_entity``  ``SubHeadEntity: {FErpClsID: "1", …}``           each child by its own key    each child
``entries``     ``FEntity: {entries: goodsDetail, fields: …}``   one query row per entry      as a multiset
``write_only``  ``{kind: write_only, value: …}``                 not read                     by the ledger hash
==============  ==============================================  ===========================  ====================

A reference may also be declared ``{kind: reference, value: "{barcode}", form: BD_MATERIAL}``: the form it points to
is then known (documents wait until that base data exists). Everything that is rendered is hashed into the sync
ledger's row hash (:func:`jikeyun_kingdee.ledger.row_hash`); what can be read back is also compared with Kingdee, so
a field that cannot be read back (``write_only``) is compared only through that hash — never silently not at all.

**Templates.** A text ``"{expression}"`` is evaluated against the source record; other text is a constant, and text
with several ``{…}`` parts is filled in (``"{goodsName} {skuName}"``). An expression is a small, safe subset of
Python: source fields (``warehouseName``, nested ``a.b``), constants, ``+ - * /`` (numbers exactly, as decimals;
``+`` joins text when either side is text), comparisons (``isGift == 1``: equality is loose, as in conditions),
``and``/``or``/``not``, ``x if c else y``, calls of the scheme's lookup tables (``unit(unitName)``) and of
:data:`FUNCTIONS` (``round(shareFavourableAfterFee / sellCount, 6)``). A source field that is absent (Jikeyun leaves
empty fields out) rejects the record, naming it, unless the expression says what to use instead
(``goodsMemo or ""``); a comparison treats it as empty. Inside an entry list, names are the line's fields first, then
the record's.

**Lookup tables** (the scheme's ``lookups:``) map a source value to a Kingdee number; a key a table lacks either
rejects the record (``missing: reject``, naming the record, the table and the key) or stands for itself
(``missing: identity``). A template calling a table the scheme does not declare fails when the scheme loads.

Pure: no I/O, no Airflow.
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Literal

from jikeyun_kingdee.kingdee_forms import NUMBER_KEYS, reference_key
from jikeyun_kingdee.values import loose, number, same_value

Kind = Literal["scalar", "reference", "sub_entity", "entries", "write_only"]
KINDS: tuple[Kind, ...] = ("scalar", "reference", "sub_entity", "entries", "write_only")
_PART = re.compile(r"\{([^{}]*)\}")


class MappingError(ValueError):
    """A record cannot be mapped; the message names the target field (and the source field, table or key)."""


class _Missing:
    """A source field the record does not have: falsy, empty in comparisons, an error anywhere else."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __bool__(self) -> bool:
        return False

    def error(self, target: str) -> MappingError:
        return MappingError(f"{target}: source field {self.name!r} is missing")


# -- lookups ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Lookup:
    """One lookup table of a scheme: source value → Kingdee number.

    :param name: the name templates call it by (``unit`` in ``{unit(unitName)}``)
    :param values: the table; keys are compared as text
    :param missing: for a key the table lacks: ``reject`` the record, or ``identity`` (the key itself)
    """

    name: str
    values: Mapping[str, str]
    missing: Literal["reject", "identity"] = "reject"

    def __call__(self, key: Any, target: str) -> str:
        if isinstance(key, _Missing):
            raise key.error(target)
        text = "" if key is None else str(key).strip()
        if text in self.values:
            return self.values[text]
        if self.missing == "identity" and text:
            return text
        raise MappingError(f"{target}: lookup table {self.name!r} has no entry for {text!r}")


# -- template functions -----------------------------------------------------------------------------------------
def _round(value: Any, places: Any = 0) -> Decimal:
    amount = _decimal(value, "round")
    digits = int(_decimal(places, "round"))
    return amount.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)


def _number(value: Any) -> Decimal:
    return _decimal(value, "number")


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _coalesce(*values: Any) -> Any:
    return next((v for v in values if not isinstance(v, _Missing) and v not in (None, "")), None)


#: functions every template may call (besides the scheme's lookup tables)
FUNCTIONS: dict[str, Callable[..., Any]] = {
    "round": _round,  # round(x, places): half up, as accountants round
    "number": _number,  # the value as a number (text "2.50" → 2.5)
    "text": _text,  # the value as text (None → "")
    "coalesce": _coalesce,  # the first value that is present and not empty
}


def _decimal(value: Any, where: str) -> Decimal:
    if isinstance(value, Decimal):
        return value
    result = number(value)
    if result is None:
        raise ValueError(f"{where}: {value!r} is not a number")
    return result


def _plain(value: Any) -> Any:
    """A computed decimal as JSON likes it: an int when whole, else a float."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


# -- templates --------------------------------------------------------------------------------------------------
_NODES = (ast.Expression, ast.Name, ast.Attribute, ast.Constant, ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare,
          ast.IfExp, ast.Call, ast.Load, ast.Add, ast.Sub, ast.Mult, ast.Div, ast.USub, ast.UAdd, ast.Not, ast.And,
          ast.Or, ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE)


@dataclass(frozen=True)
class Expression:
    """One ``{…}`` of a template, parsed and checked once."""

    text: str
    tree: ast.expr
    calls: frozenset[str]

    @classmethod
    def parse(cls, text: str, lookups: Mapping[str, Lookup], where: str) -> Expression:
        try:
            tree = ast.parse(text.strip(), mode="eval")
        except SyntaxError as exc:
            raise ValueError(f"{where}: {{{text}}} is not an expression ({exc.msg})") from None
        calls = set()
        for node in ast.walk(tree):
            if not isinstance(node, _NODES):
                raise ValueError(f"{where}: {{{text}}} uses {type(node).__name__}, which templates do not allow")
            if isinstance(node, ast.Call):
                if not isinstance(node.func, ast.Name) or node.keywords:
                    raise ValueError(f"{where}: {{{text}}}: only name(arg, …) calls are allowed")
                name = node.func.id
                if name not in lookups and name not in FUNCTIONS:
                    raise ValueError(f"{where}: {{{text}}} calls {name!r}, which is neither a lookup table of the "
                                     f"scheme ({', '.join(sorted(lookups)) or 'none declared'}) nor a function "
                                     f"({', '.join(sorted(FUNCTIONS))})")
                if name in lookups and len(node.args) != 1:
                    raise ValueError(f"{where}: {{{text}}}: lookup table {name!r} takes one argument")
                calls.add(name)
        return cls(text.strip(), tree.body, frozenset(calls))

    def evaluate(self, scope: Mapping[str, Any], lookups: Mapping[str, Lookup], target: str) -> Any:
        try:
            return _Evaluation(scope, lookups, target).value(self.tree)
        except MappingError:
            raise
        except (ValueError, TypeError, ArithmeticError, InvalidOperation) as exc:
            raise MappingError(f"{target}: {{{self.text}}}: {exc}") from None


class _Evaluation:
    def __init__(self, scope: Mapping[str, Any], lookups: Mapping[str, Lookup], target: str) -> None:
        self.scope, self.lookups, self.target = scope, lookups, target

    def value(self, node: ast.expr) -> Any:
        result = self.any(node)
        if isinstance(result, _Missing):
            raise result.error(self.target)
        return result

    def any(self, node: ast.expr) -> Any:
        """The node's value; an absent source field is a :class:`_Missing`."""
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, (ast.Name, ast.Attribute)):
            return self.field(node)
        if isinstance(node, ast.BoolOp):
            result: Any = None
            for operand in node.values:
                result = self.any(operand)
                if bool(result) == isinstance(node.op, ast.Or):
                    return result
            return result
        if isinstance(node, ast.UnaryOp):
            operand = self.any(node.operand)
            if isinstance(node.op, ast.Not):
                return not operand
            return -self.number(operand) if isinstance(node.op, ast.USub) else self.number(operand)
        if isinstance(node, ast.IfExp):
            return self.any(node.body) if self.any(node.test) else self.any(node.orelse)
        if isinstance(node, ast.Compare):
            return self.compare(node)
        if isinstance(node, ast.BinOp):
            return self.arithmetic(node)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):  # parse() allows no other call
            name = node.func.id
            if name in self.lookups:
                return self.lookups[name](self.any(node.args[0]), self.target)
            return FUNCTIONS[name](*(self.value(arg) for arg in node.args))
        raise ValueError(f"unexpected {type(node).__name__}")  # parse() lets no other node through

    def field(self, node: ast.Name | ast.Attribute) -> Any:
        parts: list[str] = []
        current_node: ast.expr = node
        while isinstance(current_node, ast.Attribute):
            parts.insert(0, current_node.attr)
            current_node = current_node.value
        if not isinstance(current_node, ast.Name):
            raise ValueError("only source fields have attributes")
        parts.insert(0, current_node.id)
        current: Any = self.scope
        for part in parts:
            if not isinstance(current, Mapping) or part not in current:
                return _Missing(".".join(parts))
            current = current[part]
        return current

    def number(self, value: Any) -> Decimal:
        if isinstance(value, _Missing):
            raise value.error(self.target)
        return _decimal(value, "arithmetic")

    def arithmetic(self, node: ast.BinOp) -> Any:
        left, right = self.any(node.left), self.any(node.right)
        for side in (left, right):
            if isinstance(side, _Missing):
                raise side.error(self.target)
        if isinstance(node.op, ast.Add) and (isinstance(left, str) or isinstance(right, str)):
            return _text(left) + _text(right)
        a, b = self.number(left), self.number(right)
        if isinstance(node.op, ast.Add):
            return a + b
        if isinstance(node.op, ast.Sub):
            return a - b
        if isinstance(node.op, ast.Mult):
            return a * b
        if b == 0:
            raise MappingError(f"{self.target}: division by zero ({ast.unparse(node.right)} is 0)")
        return a / b

    def compare(self, node: ast.Compare) -> bool:
        left = self.any(node.left)
        for operator, comparator in zip(node.ops, node.comparators, strict=True):
            right = self.any(comparator)
            a = None if isinstance(left, _Missing) else left
            b = None if isinstance(right, _Missing) else right
            if isinstance(operator, (ast.Eq, ast.NotEq)):
                holds = (loose(a) == loose(b)) == isinstance(operator, ast.Eq)
            else:
                x, y = number(a), number(b)
                holds = x is not None and y is not None and {
                    ast.Lt: x < y, ast.LtE: x <= y, ast.Gt: x > y, ast.GtE: x >= y}[type(operator)]
            if not holds:
                return False
            left = right
        return True


@dataclass(frozen=True)
class Template:
    """A field's value: a constant, one ``{expression}`` (its value keeps its type), or text with ``{…}`` parts."""

    constant: Any = None
    parts: tuple[str | Expression, ...] = ()

    @classmethod
    def parse(cls, value: Any, lookups: Mapping[str, Lookup], where: str) -> Template:
        if not isinstance(value, str) or ("{" not in value and "}" not in value):
            if isinstance(value, (dict, list)):
                raise ValueError(f"{where}: {value!r} is not a value (a constant or a '{{sourceField}}' template)")
            return cls(constant=value)
        parts: list[str | Expression] = []
        position = 0
        for match in _PART.finditer(value):
            if match.start() > position:
                parts.append(value[position:match.start()])
            parts.append(Expression.parse(match.group(1), lookups, where))
            position = match.end()
        parts.append(value[position:])
        literal = "".join(p for p in parts if isinstance(p, str))
        if "{" in literal or "}" in literal:
            raise ValueError(f"{where}: {value!r} is not a constant nor a '{{sourceField}}' template "
                             "(unbalanced braces)")
        return cls(parts=tuple(p for p in parts if p != ""))

    @property
    def calls(self) -> frozenset[str]:
        return frozenset(name for part in self.parts if isinstance(part, Expression) for name in part.calls)

    def render(self, scope: Mapping[str, Any], lookups: Mapping[str, Lookup], target: str) -> Any:
        if not self.parts:
            return self.constant
        if len(self.parts) == 1 and isinstance(self.parts[0], Expression):
            return _plain(self.parts[0].evaluate(scope, lookups, target))
        return "".join(part if isinstance(part, str) else _text(_plain(part.evaluate(scope, lookups, target)))
                       for part in self.parts)


# -- fields -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Field:
    """One declared target field.

    :param name: its Kingdee key (``FName``, ``SubHeadEntity``, ``FEntity``)
    :param kind: see the module docstring
    :param template: the value of a scalar, reference or write-only field
    :param number_key: how a reference spells its key (``FNumber`` or ``FNUMBER``)
    :param form: the form a reference points to, when declared
    :param children: the fields of a sub-entity or of each entry
    :param source: an entry list's source list (a path in the record)
    """

    name: str
    kind: Kind
    template: Template | None = None
    number_key: str = "FNumber"
    form: str | None = None
    children: tuple[Field, ...] = ()
    source: str | None = None
    reference: bool = False  # a write-only field renders as a reference

    @property
    def read_key(self) -> str | None:
        """The ExecuteBillQuery key that reads the field back; None when it cannot be read."""
        if self.kind == "scalar":
            return self.name
        if self.kind == "reference":
            return reference_key(self.name)
        return None

    def render(self, scope: Mapping[str, Any], lookups: Mapping[str, Lookup], where: str) -> Any:
        target = f"{where}{self.name}"
        if self.kind == "sub_entity":
            return {child.name: child.render(scope, lookups, f"{target}.") for child in self.children}
        if self.kind == "entries":
            lines = _source_list(scope, self.source or "", target)
            return [{child.name: child.render(_LineScope(line, scope), lookups, f"{target}[{i}].")
                     for child in self.children} for i, line in enumerate(lines)]
        assert self.template is not None  # every other kind has one (FieldMap.parse)
        value = self.template.render(scope, lookups, target)
        return {self.number_key: value} if self.kind == "reference" or self.reference else value


class _LineScope(Mapping[str, Any]):
    """An entry line's names first, then the record's."""

    def __init__(self, line: Mapping[str, Any], record: Mapping[str, Any]) -> None:
        self.line, self.record = line, record

    def __getitem__(self, key: str) -> Any:
        return self.line[key] if key in self.line else self.record[key]

    def __contains__(self, key: object) -> bool:
        return key in self.line or key in self.record

    def __iter__(self) -> Iterator[str]:
        return iter({**self.record, **self.line})

    def __len__(self) -> int:
        return len({**self.record, **self.line})


def _source_list(scope: Mapping[str, Any], path: str, target: str) -> list[Mapping[str, Any]]:
    current: Any = scope
    for part in path.split("."):
        if not isinstance(current, Mapping) or part not in current:
            raise MappingError(f"{target}: source list {path!r} is missing")
        current = current[part]
    if current is None:
        return []
    if not isinstance(current, list) or not all(isinstance(line, Mapping) for line in current):
        raise MappingError(f"{target}: source {path!r} is not a list of lines")
    return current


@dataclass(frozen=True)
class Difference:
    """A field whose Kingdee value is not the desired one (``field`` is a path: ``SubHeadEntity.FBaseUnitId``)."""

    field: str
    desired: Any
    actual: Any


@dataclass(frozen=True)
class FieldMap:
    """A scheme's target fields, parsed: render a record, read the fields back, compare them.

    :param fields: the declared fields, in the scheme's order (Kingdee wants header fields, then sub-entities, then
        entry lists; the order of the YAML is kept)
    :param lookups: the scheme's lookup tables
    :param keys: fields never compared (the business key the records are joined on, the primary key)
    """

    fields: tuple[Field, ...]
    lookups: Mapping[str, Lookup] = field(default_factory=dict)
    keys: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, fields: Mapping[str, Any], lookups: Mapping[str, Lookup] | None = None,
              keys: Iterable[str] = ()) -> FieldMap:
        """:raises ValueError: naming the field (``fields.SubHeadEntity.FBaseUnitId: …``)."""
        tables = dict(lookups or {})
        return cls(tuple(_parse(name, value, tables, "fields.", nested=False) for name, value in fields.items()),
                   tables, frozenset(keys))

    # -- rendering ----------------------------------------------------------------------------------------------
    def render(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """The Kingdee Model of one source record.

        :raises MappingError: naming the target field and what is wrong.
        """
        return {f.name: f.render(record, self.lookups, "") for f in self.fields}

    # -- reading back ---------------------------------------------------------------------------------------
    def leaves(self) -> Iterator[tuple[tuple[str, ...], Field]]:
        """``(path, field)`` of every scalar, reference and write-only field of the header and its sub-entities."""
        for f in self.fields:
            if f.kind == "sub_entity":
                for child in f.children:
                    yield (f.name, child.name), child
            elif f.kind != "entries":
                yield (f.name,), f

    @property
    def entry_lists(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if f.kind == "entries")

    @property
    def compared(self) -> dict[str, str]:
        """Field path → read key, for every header and sub-entity field that is read back and compared."""
        return {".".join(path): f.read_key for path, f in self.leaves()
                if f.read_key is not None and path[-1] not in self.keys}

    @property
    def entry_keys(self) -> dict[str, list[str]]:
        """Entry list → the read keys of its entries' compared fields."""
        return {e.name: [c.read_key for c in e.children if c.read_key is not None] for e in self.entry_lists}

    @property
    def read_keys(self) -> list[str]:
        """ExecuteBillQuery keys that read back everything compared (sub-entity fields by their own key)."""
        keys = list(self.compared.values())
        keys += [key for entry_keys in self.entry_keys.values() for key in entry_keys]
        return list(dict.fromkeys(keys))

    @property
    def write_only(self) -> list[str]:
        """Paths of the fields that are written but never read back (compared only through the ledger hash)."""
        paths = [".".join(path) for path, f in self.leaves() if f.kind == "write_only"]
        paths += [f"{e.name}[].{c.name}" for e in self.entry_lists for c in e.children if c.kind == "write_only"]
        return paths

    def describe(self) -> list[tuple[str, Kind, str | None]]:
        """``(path, kind, read key)`` of every written field (for docs and tests)."""
        rows: list[tuple[str, Kind, str | None]] = [(".".join(p), f.kind, f.read_key) for p, f in self.leaves()]
        for e in self.entry_lists:
            rows += [(f"{e.name}[].{c.name}", c.kind, c.read_key) for c in e.children]
        return rows

    def group(self, rows: Iterable[Mapping[str, Any]], by: str) -> dict[str, dict[str, Any]]:
        """Query rows → one record per value of ``by``: header keys from its first row, each entry list as the list
        of its rows' entry keys (ExecuteBillQuery answers a form with entries one row per entry)."""
        records: dict[str, dict[str, Any]] = {}
        entry_keys = self.entry_keys
        for row in rows:
            key = "" if row.get(by) is None else str(row.get(by)).strip()
            record = records.get(key)
            if record is None:
                record = records[key] = dict(row)
                for name in entry_keys:
                    record[name] = []
            for name, keys in entry_keys.items():
                record[name].append({k: row.get(k) for k in keys})
        return records

    # -- comparing ------------------------------------------------------------------------------------------------
    def differences(self, row: Mapping[str, Any], actual: Mapping[str, Any]) -> list[Difference]:
        """The fields of a rendered ``row`` whose Kingdee value (``actual``, a query row or a :meth:`group` record)
        is not the same; write-only fields are not compared here (the ledger's hash covers them)."""
        found = []
        for path, f in self.leaves():
            if f.read_key is None or path[-1] in self.keys:
                continue
            desired = _at(row, path)
            if desired is _ABSENT:
                continue
            if not same_value(desired, actual.get(f.read_key)):
                found.append(Difference(".".join(path), desired, actual.get(f.read_key)))
        for e in self.entry_lists:
            desired_lines = row.get(e.name)
            if not isinstance(desired_lines, list):
                continue
            compared = [(c.name, c.read_key) for c in e.children if c.read_key is not None]
            want = sorted(tuple(loose(line.get(name)) for name, _ in compared) for line in desired_lines)
            have = sorted(tuple(loose(line.get(key)) for _, key in compared) for line in actual.get(e.name) or [])
            if want != have:
                names = [name for name, _ in compared]
                found.append(Difference(e.name, _unmatched(names, want, have), _unmatched(names, have, want)))
        return found

    @functools.cached_property
    def form_references(self) -> dict[str, str]:
        """Lower-case field name → form, of the references declared with a ``form`` (header, sub-entities and
        entries): what a document checks as base data, and how a refusal of a field names what it lacks."""
        fields = [f for _, f in self.leaves()] + [c for e in self.entry_lists for c in e.children]
        return {f.name.lower(): f.form for f in fields if f.form}

    @property
    def referenced_forms(self) -> set[str]:
        """The forms of the references declared with a ``form``."""
        return set(self.form_references.values())

    def referenced(self, row: Mapping[str, Any]) -> dict[str, set[str]]:
        """Form → the numbers a rendered row references in fields declared with a ``form``."""
        found: dict[str, set[str]] = {}

        def add(f: Field, value: Any) -> None:
            if f.form and isinstance(value, Mapping):
                number_ = value.get(f.number_key)
                if number_ not in (None, ""):
                    found.setdefault(f.form, set()).add(str(number_))

        for path, f in self.leaves():
            value = _at(row, path)
            if value is not _ABSENT:
                add(f, value)
        for e in self.entry_lists:
            for line in row.get(e.name) or []:
                for c in e.children:
                    add(c, line.get(c.name))
        return found


_ABSENT = object()


def _unmatched(names: list[str], lines: list[tuple[str, ...]], other: list[tuple[str, ...]]) -> list[dict[str, str]]:
    """The entry lines of ``lines`` that ``other`` lacks, as ``{field: loose text}``."""
    return [dict(zip(names, line, strict=True)) for line in lines if line not in other]


def _at(row: Mapping[str, Any], path: Sequence[str]) -> Any:
    current: Any = row
    for part in path:
        if not isinstance(current, Mapping) or part not in current:
            return _ABSENT
        current = current[part]
    return current


def _parse(name: str, value: Any, lookups: Mapping[str, Lookup], where: str, *, nested: bool) -> Field:
    """One declared field (``nested``: inside a sub-entity or an entry list, where lists are not allowed)."""
    here = f"{where}{name}"
    if isinstance(value, list):
        raise ValueError(f"{here}: a list is not a field; an entry list is {{entries: <source list>, fields: {{…}}}}")
    if not isinstance(value, dict):
        return Field(name, "scalar", Template.parse(value, lookups, here))
    if "kind" in value:
        return _declared(name, value, lookups, here, nested=nested)
    if "entries" in value:
        return _declared(name, {"kind": "entries", **value}, lookups, here, nested=nested)
    if len(value) == 1 and next(iter(value)) in NUMBER_KEYS:
        key, number_ = next(iter(value.items()))
        return Field(name, "reference", Template.parse(number_, lookups, f"{here}.{key}"), number_key=key)
    if not value:
        raise ValueError(f"{here}: an empty mapping is not a field")
    if nested:
        raise ValueError(f"{here}: a sub-entity cannot hold another sub-entity (a reference is {{FNumber: …}})")
    return Field(name, "sub_entity",
                 children=tuple(_parse(k, v, lookups, f"{here}.", nested=True) for k, v in value.items()))


_DECLARED_KEYS: dict[str, set[str]] = {
    "scalar": {"value"},
    "reference": {"value", "key", "form"},
    "write_only": {"value"},
    "entries": {"entries", "fields"},
}


def _declared(name: str, spec: dict[str, Any], lookups: Mapping[str, Lookup], here: str, *, nested: bool) -> Field:
    kind = spec["kind"]
    if kind not in _DECLARED_KEYS:
        raise ValueError(f"{here}: kind {kind!r} is not one of {', '.join(sorted(_DECLARED_KEYS))} "
                         "(a sub-entity is written as a mapping of its fields)")
    unknown = set(spec) - _DECLARED_KEYS[kind] - {"kind"}
    if unknown:
        raise ValueError(f"{here}: {', '.join(sorted(unknown))} is not a setting of a {kind} field "
                         f"(settings: {', '.join(sorted(_DECLARED_KEYS[kind]))})")
    if kind == "entries":
        if nested:
            raise ValueError(f"{here}: an entry list belongs to the header, not inside another field")
        source, children = spec.get("entries"), spec.get("fields")
        if not isinstance(source, str) or not source:
            raise ValueError(f"{here}.entries: the source list (a field of the record, e.g. goodsDetail) is required")
        if not isinstance(children, dict) or not children:
            raise ValueError(f"{here}.fields: an entry list needs the fields of its entries")
        return Field(name, "entries", source=source,
                     children=tuple(_parse(k, v, lookups, f"{here}.fields.", nested=True) for k, v in children.items()))
    if "value" not in spec:
        raise ValueError(f"{here}.value: a {kind} field needs its value")
    value = spec["value"]
    if kind == "reference":
        key = spec.get("key", "FNumber")
        if key not in NUMBER_KEYS:
            raise ValueError(f"{here}.key: {key!r} is not one of {', '.join(NUMBER_KEYS)}")
        return Field(name, "reference", Template.parse(value, lookups, f"{here}.value"), number_key=key,
                     form=spec.get("form"))
    if kind == "write_only" and isinstance(value, dict) and len(value) == 1 and next(iter(value)) in NUMBER_KEYS:
        key, number_ = next(iter(value.items()))
        return Field(name, "write_only", Template.parse(number_, lookups, f"{here}.value.{key}"), number_key=key,
                     reference=True)
    return Field(name, kind, Template.parse(value, lookups, f"{here}.value"))
