"""bpfobj.enums: the tables built in one pass behave like the standard library's enums."""

from __future__ import annotations

import enum
import importlib
import itertools
import pickle
import pkgutil

import pytest

import bpfobj
from bpfobj import enums

_STD_BASES = (enum.IntFlag, enum.IntEnum, enum.StrEnum, enum.Enum)  # most derived first


def _bpfobj_enums() -> list[type[enum.Enum]]:
    """Every enum class defined in a bpfobj module."""
    found: dict[str, type[enum.Enum]] = {}
    for info in pkgutil.walk_packages(bpfobj.__path__, "bpfobj."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if (isinstance(value, type) and issubclass(value, enum.Enum)
                    and value.__module__ == info.name and value.__members__):
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return [found[k] for k in sorted(found)]


TABLES = _bpfobj_enums()


def _standard(cls: type[enum.Enum]) -> type[enum.Enum]:
    """The same table built by the standard (member by member) path."""
    base = next(b for b in _STD_BASES if issubclass(cls, b))
    members = [(name, m.value) for name, m in cls.__members__.items()]
    std: type[enum.Enum] = base(  # type: ignore[call-overload]
        cls.__name__, members, module=cls.__module__, qualname=cls.__qualname__)
    return std


def test_every_bpfobj_enum_is_a_fast_table() -> None:
    assert len(TABLES) >= 25
    slow = [t.__qualname__ for t in TABLES if not isinstance(t, enums.TableType)]
    assert not slow, f"derive these from bpfobj.enums (start-up time): {slow}"


@pytest.mark.parametrize("cls", TABLES, ids=lambda c: c.__qualname__)
def test_table_matches_the_standard_build(cls: type[enum.Enum]) -> None:
    std = _standard(cls)
    assert [(m.name, m.value) for m in cls] == [(m.name, m.value) for m in std]
    assert list(cls.__members__) == list(std.__members__)
    assert len(cls) == len(std)
    for name, member in cls.__members__.items():
        twin = std[name]
        assert isinstance(member, cls) and isinstance(member, type(twin).__mro__[1])
        assert member.value == twin.value and type(member.value) is type(twin.value)
        assert repr(member) == repr(twin)
        assert str(member) == str(twin)
        assert format(member) == format(twin) and f"{member:>12}" == f"{twin:>12}"
        assert hash(member) == hash(twin)
        assert cls[name] is member and getattr(cls, name) is member
        # stored as the class attribute itself (fast to read), like the standard build
        assert (vars(cls).get(name) is member) == (vars(std).get(name) is twin)
        assert cls(member.value) is cls(twin.value)
        assert pickle.loads(pickle.dumps(member)) is member
    if issubclass(cls, enum.Flag):
        for a, b in itertools.combinations(cls, 2):
            assert repr(a | b) == repr(std[a.name] | std[b.name])  # type: ignore[operator]
            assert (a | b).value == a.value | b.value  # type: ignore[operator]
    elif cls.__members__:
        missing = max(m.value for m in cls) + 1 if issubclass(cls, int) else object()
        with pytest.raises(ValueError):
            cls(missing)


def test_methods_and_docstrings_are_kept() -> None:
    from bpfobj.uapi import CoreReloKind, ProgType, UapiEnum

    assert ProgType.TRACEPOINT.label == "tracepoint"
    assert ProgType.from_label("xdp") is ProgType.XDP
    assert CoreReloKind.FIELD_EXISTS.label == "field_exists"  # overridden in the subclass
    assert issubclass(ProgType, UapiEnum) and issubclass(ProgType, enum.IntEnum)
    assert ProgType.__doc__ == "enum bpf_prog_type (linux/bpf.h)."
    assert ProgType.__module__ == "bpfobj.uapi" and ProgType.__qualname__ == "ProgType"


def test_without_simple_enum_the_standard_path_builds_them(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(enums, "_simple_enum", None)

    class Color(enums.IntEnum):
        RED = 1
        GREEN = 2

        @property
        def lower(self) -> str:
            return self.name.lower()

    assert list(Color) == [Color.RED, Color.GREEN] and Color(2) is Color.GREEN
    assert repr(Color.RED) == "<Color.RED: 1>" and Color.GREEN.lower == "green"


def test_direct_build_and_its_fallback_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plain tables are built directly on CPython 3.11; elsewhere (or with auto(), aliases
    of a base's descriptor names ...) `_simple_enum` builds them, with the same result."""

    def table() -> type[enum.IntEnum]:
        class Op(enums.IntEnum):
            """doc"""

            ADD = 1
            SUB = 2
            MINUS = 2  # an alias

            @property
            def lower(self) -> str:
                return self.name.lower()

        return Op

    direct = table()
    monkeypatch.setattr(enums, "_DIRECT", False)
    general = table()
    for t in (direct, general):
        assert list(t.__members__) == ["ADD", "SUB", "MINUS"] and len(t) == 2
        assert t.MINUS is t.SUB and t(2) is t.SUB and t["MINUS"] is t.SUB
        assert repr(t.SUB) == "<Op.SUB: 2>" and t.ADD.lower == "add" and t.__doc__ == "doc"
        assert isinstance(t.ADD, enum.IntEnum) and t.ADD == 1
        with pytest.raises(ValueError):
            t(3)
    assert vars(direct)["ADD"] is direct.ADD  # stored as the class attribute itself


def test_auto_values_take_the_general_path() -> None:
    class Kind(enums.Enum):
        A = enum.auto()
        B = enum.auto()

    assert [m.value for m in Kind] == [1, 2] and Kind(2) is Kind.B
