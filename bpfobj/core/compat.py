"""Type compatibility rules of CO-RE: relo_core.c, ported function by function.

* `types_are_compat` — __bpf_core_types_are_compat (type-based relocations)
* `fields_are_compat` — bpf_core_fields_are_compat (field relocations, per named field)
* `types_match` — __bpf_core_types_match (BPF_CORE_TYPE_MATCHES)
* `essential_name_len` / `names_match` — libbpf.c bpf_core_essential_name_len,
  relo_core.c bpf_core_names_match

Results follow libbpf: 1 compatible, 0 not, a negative errno on malformed BTF or too
deep recursion (-EINVAL).
"""

from __future__ import annotations

from bpfobj.core.btfview import (
    BTF_INT_SIGNED,
    enum_name,
    int_encoding,
    int_offset,
    is_any_enum,
    is_composite,
    kflag,
    kind_core_compat,
    kind_of,
    kind_str,
    param_type,
    ref_type,
    skip_mods_and_typedefs,
    type_by_id,
    vlen,
)
from bpfobj.uapi import BtfKind

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any

EINVAL = 22


def _is_flavor_sep(name: str, i: int) -> bool:
    """libbpf.c bpf_core_is_flavor_sep: X___Y at position i, X and Y not underscores."""
    return (
        name[i] != "_" and name[i + 1 : i + 4] == "___" and i + 4 < len(name) and name[i + 4] != "_"
    )


def essential_name_len(name: str) -> int:
    """libbpf.c bpf_core_essential_name_len: length of `name` before its last ``___flavor``."""
    n = len(name)
    for i in range(n - 5, -1, -1):
        if _is_flavor_sep(name, i):
            return i + 1
    return n


def essential_name(name: str) -> str:
    return name[: essential_name_len(name)]


def names_match(local_name: str, targ_name: str) -> bool:
    """relo_core.c bpf_core_names_match (flavor suffixes ignored; anonymous only matches anonymous)."""
    if not targ_name:
        return not local_name
    targ_len = essential_name_len(targ_name)
    local_len = essential_name_len(local_name)
    return targ_len == local_len and local_name[:local_len] == targ_name[:targ_len]


def types_are_compat(
    local_btf: Any, local_id: int, targ_btf: Any, targ_id: int, level: int = 32
) -> int:
    """relo_core.c __bpf_core_types_are_compat (caller made sure root names match)."""
    depth = 32
    local_t = type_by_id(local_btf, local_id)
    targ_t = type_by_id(targ_btf, targ_id)
    if local_t is None or targ_t is None:
        return -EINVAL
    if not kind_core_compat(local_t, targ_t):
        return 0
    while True:
        depth -= 1
        if depth < 0:
            return -EINVAL
        local_id, local_t = skip_mods_and_typedefs(local_btf, local_id)
        targ_id, targ_t = skip_mods_and_typedefs(targ_btf, targ_id)
        if local_t is None or targ_t is None:
            return -EINVAL
        if not kind_core_compat(local_t, targ_t):
            return 0
        k = kind_of(local_t)
        if k in (
            BtfKind.UNKN,
            BtfKind.STRUCT,
            BtfKind.UNION,
            BtfKind.ENUM,
            BtfKind.FWD,
            BtfKind.ENUM64,
        ):
            return 1
        if k == BtfKind.INT:
            # just reject deprecated bitfield-like integers
            return int(int_offset(local_t) == 0 and int_offset(targ_t) == 0)
        if k == BtfKind.PTR:
            local_id, targ_id = ref_type(local_t), ref_type(targ_t)
            continue
        if k == BtfKind.ARRAY:
            local_id, targ_id = int(local_t.type), int(targ_t.type)
            continue
        if k == BtfKind.FUNC_PROTO:
            if vlen(local_t) != vlen(targ_t):
                return 0
            for lp, tp in zip(local_t.params, targ_t.params):
                if level <= 0:
                    return -EINVAL
                lid, _ = skip_mods_and_typedefs(local_btf, param_type(lp))
                tid, _ = skip_mods_and_typedefs(targ_btf, param_type(tp))
                err = types_are_compat(local_btf, lid, targ_btf, tid, level - 1)
                if err <= 0:
                    return err
            # tail recurse for return type check
            local_id, _ = skip_mods_and_typedefs(local_btf, int(local_t.return_type))
            targ_id, _ = skip_mods_and_typedefs(targ_btf, int(targ_t.return_type))
            continue
        # pr_warn("unexpected kind %s relocated ...")
        return 0


def fields_are_compat(local_btf: Any, local_id: int, targ_btf: Any, targ_id: int) -> int:
    """relo_core.c bpf_core_fields_are_compat: may a field of this type be relocated?"""
    while True:
        local_id, local_t = skip_mods_and_typedefs(local_btf, local_id)
        targ_id, targ_t = skip_mods_and_typedefs(targ_btf, targ_id)
        if local_t is None or targ_t is None:
            return -EINVAL
        if is_composite(local_t) and is_composite(targ_t):
            return 1
        if not kind_core_compat(local_t, targ_t):
            return 0
        k = kind_of(local_t)
        if k in (BtfKind.PTR, BtfKind.FLOAT):
            return 1
        if k in (BtfKind.FWD, BtfKind.ENUM, BtfKind.ENUM64):
            local_name = local_t.name or ""
            targ_name = targ_t.name or ""
            local_len = essential_name_len(local_name)
            targ_len = essential_name_len(targ_name)
            # one of them is anonymous or both w/ same flavor-less names
            return int(
                local_len == 0
                or targ_len == 0
                or (local_len == targ_len and local_name[:local_len] == targ_name[:targ_len])
            )
        if k == BtfKind.INT:
            return int(int_offset(local_t) == 0 and int_offset(targ_t) == 0)
        if k == BtfKind.ARRAY:
            local_id, targ_id = int(local_t.type), int(targ_t.type)
            continue
        return 0


def fields_incompat_reason(local_btf: Any, local_id: int, targ_btf: Any, targ_id: int) -> str:
    """A short human explanation of why fields_are_compat said 0 (for the CoreRecord)."""
    _, lt = skip_mods_and_typedefs(local_btf, local_id)
    _, tt = skip_mods_and_typedefs(targ_btf, targ_id)
    if lt is None or tt is None:
        return "field type is missing"
    ldesc = f"{kind_str(lt)} {lt.name or '<anon>'}"
    tdesc = f"{kind_str(tt)} {tt.name or '<anon>'}"
    if kind_of(lt) == BtfKind.INT and kind_of(tt) == BtfKind.INT:
        return f"bitfield-style int (BTF_INT_OFFSET != 0): {ldesc} vs {tdesc}"
    return f"incompatible field types: local {ldesc}, target {tdesc}"


def _enums_match(local_t: Any, targ_t: Any) -> int:
    """relo_core.c bpf_core_enums_match."""
    if int(local_t.size) != int(targ_t.size):
        return 0
    if vlen(local_t) > vlen(targ_t):
        return 0
    targ_names = [enum_name(targ_t, j) for j in range(vlen(targ_t))]
    for i in range(vlen(local_t)):
        lname = enum_name(local_t, i)
        if not any(names_match(lname, tn) for tn in targ_names):
            return 0
    return 1


def _composites_match(
    local_btf: Any, local_t: Any, targ_btf: Any, targ_t: Any, behind_ptr: bool, level: int
) -> int:
    """relo_core.c bpf_core_composites_match."""
    if vlen(local_t) > vlen(targ_t):
        return 0
    for lm in local_t.members:
        matched = False
        for tm in targ_t.members:
            if not names_match(lm.name or "", tm.name or ""):
                continue
            err = types_match(
                local_btf, int(lm.type), targ_btf, int(tm.type), behind_ptr, level - 1
            )
            if err < 0:
                return err
            if err > 0:
                matched = True
                break
        if not matched:
            return 0
    return 1


def types_match(
    local_btf: Any,
    local_id: int,
    targ_btf: Any,
    targ_id: int,
    behind_ptr: bool = False,
    level: int = 32,
) -> int:
    """relo_core.c __bpf_core_types_match (the rules of BPF_CORE_TYPE_MATCHES)."""
    depth = 32
    if level <= 0:
        return -EINVAL
    while True:
        depth -= 1
        if depth < 0:
            return -EINVAL
        local_id, local_t = skip_mods_and_typedefs(local_btf, local_id)
        targ_id, targ_t = skip_mods_and_typedefs(targ_btf, targ_id)
        if local_t is None or targ_t is None:
            return -EINVAL

        if not names_match(local_t.name or "", targ_t.name or ""):
            return 0

        local_k = kind_of(local_t)
        targ_k = kind_of(targ_t)

        if local_k == BtfKind.UNKN:
            return int(local_k == targ_k)
        if local_k == BtfKind.FWD:
            local_f = kflag(local_t)
            if behind_ptr:
                if local_k == targ_k:
                    return int(local_f == kflag(targ_t))
                # kflag says whether the forward declaration is a struct (0) or union (1)
                return int(
                    (targ_k == BtfKind.STRUCT and not local_f)
                    or (targ_k == BtfKind.UNION and local_f)
                )
            if local_k != targ_k:
                return 0
            return int(local_f == kflag(targ_t))
        if local_k in (BtfKind.ENUM, BtfKind.ENUM64):
            if not is_any_enum(targ_t):
                return 0
            return _enums_match(local_t, targ_t)
        if local_k in (BtfKind.STRUCT, BtfKind.UNION):
            if behind_ptr:
                if local_k == targ_k:
                    return 1
                if targ_k != BtfKind.FWD:
                    return 0
                return int((local_k == BtfKind.UNION) == kflag(targ_t))
            if local_k != targ_k:
                return 0
            return _composites_match(local_btf, local_t, targ_btf, targ_t, behind_ptr, level)
        if local_k == BtfKind.INT:
            if local_k != targ_k:
                return 0
            local_sgn = int_encoding(local_t) & BTF_INT_SIGNED
            targ_sgn = int_encoding(targ_t) & BTF_INT_SIGNED
            return int(int(local_t.size) == int(targ_t.size) and local_sgn == targ_sgn)
        if local_k == BtfKind.PTR:
            if local_k != targ_k:
                return 0
            behind_ptr = True
            local_id, targ_id = ref_type(local_t), ref_type(targ_t)
            continue
        if local_k == BtfKind.ARRAY:
            if local_k != targ_k:
                return 0
            if int(local_t.nelems) != int(targ_t.nelems):
                return 0
            local_id, targ_id = int(local_t.type), int(targ_t.type)
            continue
        if local_k == BtfKind.FUNC_PROTO:
            if local_k != targ_k:
                return 0
            if vlen(local_t) != vlen(targ_t):
                return 0
            for lp, tp in zip(local_t.params, targ_t.params):
                err = types_match(
                    local_btf, param_type(lp), targ_btf, param_type(tp), behind_ptr, level - 1
                )
                if err <= 0:
                    return err
            # tail recurse for return type check
            local_id, targ_id = int(local_t.return_type), int(targ_t.return_type)
            continue
        # pr_warn("unexpected kind %s relocated ...")
        return 0
