"""bpfobj.records: the attrs-like record classes of the data model."""

from __future__ import annotations

import copy
import pickle
from typing import ClassVar

import pytest

from bpfobj import records
from bpfobj.records import FrozenInstanceError


@records.frozen
class Base:
    kind: ClassVar[str] = "base"

    id: int
    name: str


@records.frozen
class Child(Base):
    kind: ClassVar[str] = "child"

    size: int
    tags: tuple[str, ...] = ()
    cache: list[int] = records.field(factory=list, eq=False, repr=False)


@records.frozen
class Anon(Base):
    id: int = 0
    name: str = ""


@records.define
class Mutable:
    x: int
    items: list[int] = records.field(factory=list)


@records.frozen(order=True)
class Version:
    major: int
    minor: int
    label: str = records.field(default="", order=False)


@records.frozen(kw_only=True)
class Options:
    verbose: bool = False
    level: int


def build_many(n: int) -> list[Child]:
    return [Child(i, f"c{i}", 8, tags=("a",)) for i in range(n)]


# 1 instance: the generic __init__; more than records._COMPILE_AFTER: the compiled one.
MANY = 2 * records._COMPILE_AFTER


@pytest.mark.parametrize("n", [1, MANY])
def test_init_binds_positional_keyword_and_defaults(n: int) -> None:
    c = build_many(n)[-1]
    assert (c.id, c.name, c.size, c.tags, c.cache) == (n - 1, f"c{n - 1}", 8, ("a",), [])
    assert Child(1, "x", size=2) == Child(id=1, name="x", size=2, tags=())
    assert Child(1, "x", 2).cache is not Child(1, "x", 2).cache  # a fresh factory value
    assert type(c).kind == "child"



def test_generic_init_with_every_field_given() -> None:
    @records.frozen
    class Pair:
        a: int
        b: str = "b"

    p, q = Pair(1, "x"), Pair(b="y", a=2)  # all positional / all keyword
    assert (p.a, p.b, q.a, q.b) == (1, "x", 2, "y")
    assert Pair(3).b == "b" and Pair(a=4).b == "b"
    with pytest.raises(TypeError):
        Pair(1, "x", 3)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Pair(a=1, c=2)  # type: ignore[call-arg]
    with pytest.raises(FrozenInstanceError):
        p.a = 5  # type: ignore[misc]

@pytest.mark.parametrize("n", [1, MANY])
def test_init_rejects_bad_calls(n: int) -> None:
    build_many(n)
    with pytest.raises(TypeError):
        Child(1, "x")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Child(1, "x", 2, (), [], 9)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Child(1, "x", 2, bogus=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Child(1, "x", 2, id=3)  # type: ignore[misc]


def test_fields_order_and_redefinition() -> None:
    assert [f.name for f in records.fields(Child)] == ["id", "name", "size", "tags", "cache"]
    assert [f.name for f in records.fields(Anon)] == ["id", "name"]
    assert Anon() == Anon(0, "")
    with pytest.raises(TypeError, match="mandatory field 'b' follows defaulted field 'a'"):

        @records.frozen
        class Bad:
            a: int = 0
            b: int


def test_frozen_eq_hash_repr() -> None:
    a, b = Child(1, "x", 2), Child(1, "x", 2)
    b.cache.append(5)  # eq=False: not compared
    assert a == b and hash(a) == hash(b)
    assert a != Child(1, "x", 3)
    assert Base(1, "x") != Child(1, "x", 2)  # another class is never equal
    assert repr(a) == "Child(id=1, name='x', size=2, tags=())"
    with pytest.raises(FrozenInstanceError, match="evolve"):
        a.size = 3  # type: ignore[misc]
    assert not hasattr(a, "__dict__")  # slotted


def test_mutable_record() -> None:
    m = Mutable(1)
    m.x = 2
    m.items.append(3)
    assert m == Mutable(2, [3])
    with pytest.raises(TypeError):
        hash(m)


def test_order_skips_excluded_fields() -> None:
    assert Version(1, 2, "z") < Version(1, 3, "a")
    assert sorted([Version(2, 0), Version(1, 9)]) == [Version(1, 9), Version(2, 0)]
    assert Version(1, 2, "a") <= Version(1, 2, "b") and Version(1, 2, "b") >= Version(1, 2, "a")


def test_kw_only() -> None:
    assert Options(level=3) == Options(verbose=False, level=3)
    with pytest.raises(TypeError):
        Options(False, 3)  # type: ignore[misc]


def test_evolve_asdict_astuple() -> None:
    c = Child(1, "x", 2, ("t",))
    d = records.evolve(c, size=4)
    assert (d.size, d.name, c.size) == (4, "x", 2)
    with pytest.raises(TypeError, match="no field 'nope'"):
        records.evolve(c, nope=1)
    nested = Mutable(1, [2])
    assert records.asdict(c) == {"id": 1, "name": "x", "size": 2, "tags": ["t"], "cache": []}
    assert records.astuple(Version(1, 2)) == (1, 2, "")
    assert records.asdict(Mutable(Version(1, 2), [nested])) == {  # type: ignore[arg-type]
        "x": {"major": 1, "minor": 2, "label": ""},
        "items": [{"x": 1, "items": [2]}],
    }


def test_pickle_and_copy_go_through_init() -> None:
    c = Child(1, "x", 2, ("t",))
    assert pickle.loads(pickle.dumps(c)) == c
    assert copy.deepcopy(c) == c and copy.copy(c) == c
    m = Mutable(1, [2])
    assert pickle.loads(pickle.dumps(m)) == m


def test_fields_of_a_non_record() -> None:
    with pytest.raises(TypeError, match="not a record class"):
        records.fields(int)
