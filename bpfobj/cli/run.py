"""``bpfobj run OBJ``: load an object, attach its programs, print its ring/perf buffer events.

    bpfobj run examples/build/execsnoop.bpf.o --duration 5
    bpfobj run prog.bpf.o --json --event-type events=struct_event --set target_pid=1234

Every autoloaded program the section tells how to attach is attached (`attach_all`); every
BPF_MAP_TYPE_RINGBUF map is read with `bpfobj.ringbuf.RingBuffer` and every
BPF_MAP_TYPE_PERF_EVENT_ARRAY map with `bpfobj.perfbuf.PerfBuffer`. Records are decoded
through the object's BTF with the record type found for the map: ``--event-type`` (one
type for every map, or ``MAP=TYPE``), else the map's BTF value type when it is a struct,
else a struct named like the map (``events`` -> ``events``, ``event``, ``events_event``,
``event_event``), else ``event``; without one a record prints as hex. Stops after
``--duration`` seconds or at Ctrl-C; a summary (events per map, lost samples) goes to
stderr.

Registered on the main parser by `register(subparsers)`.
"""

from __future__ import annotations

import argparse
import functools
import json
import select
import sys
import time

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any

    from bpfobj.btf.reader import Btf
    from bpfobj.maps import Map
    from bpfobj.object import BpfObject


def register(subparsers: Any) -> None:
    """Add the ``run`` command to `subparsers` (argparse)."""
    p = subparsers.add_parser(
        "run", help="load, attach and print ring/perf buffer events (needs root)",
        description="Load OBJ, attach every autoload program (like a libbpf skeleton's "
        "attach) and print the events of its ring buffer and perf event array maps, "
        "decoded through the object's BTF.")
    p.add_argument("object", help="BPF object file (.o)")
    p.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    p.add_argument("--json", action="store_true", help="one JSON object per event")
    p.add_argument("--event-type", action="append", default=[], metavar="[MAP=]TYPE",
                   help="record type (a struct of the object's BTF), for every map or MAP")
    p.add_argument("--set", action="append", default=[], metavar="VAR=VALUE",
                   help="set a global variable (.rodata, .data, .bss) before loading")
    p.add_argument("--pages", type=int, default=64,
                   help="perf buffer pages per CPU (a power of 2; default 64)")
    p.set_defaults(func=cmd_run)


# --------------------------------------------------------------------------------------
# Record types
# --------------------------------------------------------------------------------------


def _struct_named(btf: Btf, name: str) -> int | None:
    from bpfobj.uapi import BtfKind

    ids = btf.find(name, BtfKind.STRUCT)
    return ids[0] if ids else None


def record_type(btf: Btf | None, m: Map, explicit: dict[str, str]) -> int | None:
    """The BTF type id records of map `m` decode through, or None (hex)."""
    from bpfobj.errors import SpecError
    from bpfobj.ringbuf import find_record_type

    if btf is None:
        if explicit:
            raise SpecError("the object has no BTF: --event-type cannot be used")
        return None
    name = explicit.get(m.name, explicit.get(""))
    if name:
        return find_record_type(btf, name)
    if m.spec.value_type_id:
        from bpfobj.btf import types as T

        t = btf.resolve_type(m.spec.value_type_id)
        if isinstance(t, T.Struct):
            return t.id
    singular = m.name[:-1] if m.name.endswith("s") else m.name
    for cand in (m.name, singular, f"{m.name}_event", f"{singular}_event", "event"):
        tid = _struct_named(btf, cand)
        if tid is not None:
            return tid
    return None


# --------------------------------------------------------------------------------------
# Printing
# --------------------------------------------------------------------------------------


def jsonable(value: Any) -> Any:
    """bytes -> str when printable UTF-8 (else hex); containers recursively."""
    if isinstance(value, bytes):
        try:
            text = value.decode()
        except UnicodeDecodeError:
            return value.hex()
        return text if text.isprintable() else value.hex()
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    return value


def _text(value: Any) -> str:
    if isinstance(value, dict):
        return " ".join(f"{k}={_text(v)}" for k, v in value.items())
    if isinstance(value, list):
        return "[" + ",".join(_text(v) for v in value) + "]"
    if isinstance(value, str):
        return value if value and " " not in value else json.dumps(value)
    return str(value)


class Printer:
    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.counts: dict[str, int] = {}
        self.out = sys.stdout

    def __call__(self, map_name: str, record: Any, cpu: int | None = None) -> None:
        self.counts[map_name] = self.counts.get(map_name, 0) + 1
        if self.as_json:
            doc: dict[str, Any] = {"map": map_name}
            if cpu is not None:
                doc["cpu"] = cpu
            doc["event"] = jsonable(record)
            self.out.write(json.dumps(doc) + "\n")
        else:
            where = f"{map_name}" + (f"@{cpu}" if cpu is not None else "")
            body = record.hex() if isinstance(record, bytes) else _text(jsonable(record))
            self.out.write(f"{where}: {body}\n")

    def sample(self, map_name: str, cpu: int, record: Any) -> None:
        """A perf buffer sample (PerfBuffer callbacks get the CPU first)."""
        self(map_name, record, cpu)


# --------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------


def _set_globals(obj: BpfObject, items: list[str]) -> None:
    from bpfobj.errors import SpecError

    sections = [name for name, m in obj.spec.maps.items() if m.is_internal and
                not name.startswith(".kconfig")]
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name:
            raise SpecError(f"--set wants VAR=VALUE, got {item!r}")
        value: Any
        try:
            value = int(text, 0)
        except ValueError:
            value = text
        for section in sections:
            view = obj.section(section)
            if name in view:
                view[name] = value
                break
        else:
            raise SpecError(f"no global variable {name!r} in {', '.join(sections) or '(none)'}")


def cmd_run(args: argparse.Namespace) -> int:
    from bpfobj.attach import attach_all
    from bpfobj.object import BpfObject
    from bpfobj.perfbuf import PerfBuffer
    from bpfobj.ringbuf import RingBuffer
    from bpfobj.uapi import MapType

    explicit: dict[str, str] = {}
    for item in args.event_type:
        map_name, sep, type_name = item.rpartition("=")
        explicit[map_name if sep else ""] = type_name
    printer = Printer(args.json)
    with BpfObject.open(args.object) as obj:
        _set_globals(obj, args.set)
        obj.load()
        btf = obj.spec.btf
        links = attach_all(obj)
        rb: RingBuffer | None = None
        pbs: list[PerfBuffer] = []
        try:
            for name, m in obj.maps.items():
                if m.type == MapType.RINGBUF:
                    rb = rb or RingBuffer()
                    rb.add(m, functools.partial(printer, name),
                           event_type=record_type(btf, m, explicit), btf=btf)
                elif m.type == MapType.PERF_EVENT_ARRAY:
                    pbs.append(PerfBuffer(m, functools.partial(printer.sample, name),
                                          event_type=record_type(btf, m, explicit), btf=btf,
                                          page_cnt=args.pages))
            print(f"# attached {len(links)} program(s); reading "
                  f"{len(rb.rings) if rb else 0} ring buffer(s), {len(pbs)} perf buffer(s)",
                  file=sys.stderr, flush=True)
            _loop(rb, pbs, args.duration, printer)
        except KeyboardInterrupt:
            pass
        finally:
            lost = {pb.name: pb.lost for pb in pbs}
            if rb is not None:
                rb.close()
            for pb in pbs:
                pb.close()
            for link in links:
                link.close()
    summary = ", ".join(f"{n}: {c}" for n, c in printer.counts.items()) or "none"
    lost_text = "".join(f"; {n}: {c} lost" for n, c in lost.items() if c)
    print(f"# events: {summary}{lost_text}", file=sys.stderr)
    return 0


def _loop(rb: Any, pbs: list[Any], duration: float | None, printer: Printer) -> None:
    """Wait on every consumer's epoll fd at once; read what is ready."""
    outer = select.epoll()
    try:
        by_fd = {}
        for consumer in ([rb] if rb is not None else []) + pbs:
            outer.register(consumer.fileno(), select.EPOLLIN)
            by_fd[consumer.fileno()] = consumer
        deadline = None if duration is None else time.monotonic() + duration
        while True:
            wait = 1.0 if deadline is None else deadline - time.monotonic()
            if wait <= 0:
                break
            for fd, _ in outer.poll(min(wait, 1.0)):
                consumer = by_fd[fd]
                consumer.poll(0)
                consumer.consume()  # perf fds' wake-up flag was read by the outer epoll
            printer.out.flush()
        for consumer in by_fd.values():  # what arrived last
            consumer.consume()
        printer.out.flush()
    finally:
        outer.close()
