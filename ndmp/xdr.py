"""XDR (RFC 4506), the encoding of every NDMP message body.

The standard library's ``xdrlib`` is gone in Python 3.13, so this is our
own: a :class:`Packer` and an :class:`Unpacker` for the primitive types,
and small type objects (:data:`U32`, :data:`STRING`, :func:`Array`,
:class:`Struct`, ...) that describe a layout once and both encode and
decode it.  A struct is a dataclass whose fields carry their XDR type in
their metadata (see :func:`xfield`), so a message body is a typed record,
not a dict.

Enums are decoded as plain integers: NDMP peers deliberately send values
out of range and expect an ``ILLEGAL_ARGS`` reply, not a decoding failure.
"""

from __future__ import annotations

import dataclasses
import struct
import sys
from typing import Any, Callable, Protocol

from .errors import XdrError

_U32 = struct.Struct(">I")
_I32 = struct.Struct(">i")
_U64 = struct.Struct(">Q")
_PAD = (b"", b"\0\0\0", b"\0\0", b"\0")

#: NDMP's "invalid / unknown" marker for a u64 (and its u32 sibling).
U64_INVALID = 0xFFFFFFFFFFFFFFFF
U32_INVALID = 0xFFFFFFFF


class Packer:
    """Appends XDR items to a growing buffer."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def u32(self, value: int) -> None:
        self._parts.append(_U32.pack(value & 0xFFFFFFFF))

    def i32(self, value: int) -> None:
        self._parts.append(_I32.pack(value))

    def u64(self, value: int) -> None:
        # XDR's unsigned hyper: the high word, then the low word.
        self._parts.append(_U64.pack(value & U64_INVALID))

    def opaque(self, data: bytes | bytearray | memoryview) -> None:
        self.u32(len(data))
        self.fixed(data)

    def fixed(self, data: bytes | bytearray | memoryview) -> None:
        self._parts.append(bytes(data))
        self._parts.append(_PAD[len(data) % 4])

    def string(self, text: str) -> None:
        self.opaque(text.encode("utf-8", "surrogateescape"))

    def data(self) -> bytes:
        return b"".join(self._parts)


class Unpacker:
    """Reads XDR items from a buffer; :class:`XdrError` when it runs short."""

    def __init__(self, data: bytes | bytearray | memoryview, offset: int = 0) -> None:
        self._data = memoryview(data)
        self.offset = offset

    def _take(self, n: int) -> memoryview:
        end = self.offset + n
        if n < 0 or end > len(self._data):
            raise XdrError(f"XDR data ends at byte {len(self._data)}, {n} more bytes wanted at {self.offset}")
        piece = self._data[self.offset:end]
        self.offset = end
        return piece

    def u32(self) -> int:
        return _U32.unpack(self._take(4))[0]

    def i32(self) -> int:
        return _I32.unpack(self._take(4))[0]

    def u64(self) -> int:
        return _U64.unpack(self._take(8))[0]

    def fixed(self, n: int) -> bytes:
        data = bytes(self._take(n))
        self._take((4 - n % 4) % 4)
        return data

    def opaque(self, limit: int | None = None) -> bytes:
        n = self.u32()
        if limit is not None and n > limit:
            raise XdrError(f"XDR opaque of {n} bytes is longer than its limit {limit}")
        return self.fixed(n)

    def string(self) -> str:
        return self.opaque().decode("utf-8", "surrogateescape")

    @property
    def remaining(self) -> int:
        return len(self._data) - self.offset

    def done(self) -> None:
        """Refuse trailing bytes: a body longer than its layout is malformed."""
        if self.remaining:
            raise XdrError(f"{self.remaining} bytes left over after the XDR data")


class XdrType(Protocol):
    """What every layout object offers."""

    def pack(self, p: Packer, value: Any) -> None: ...
    def unpack(self, u: Unpacker) -> Any: ...
    def default(self) -> Any: ...


class _Primitive:
    def __init__(self, name: str, pack: Callable[[Packer, Any], None],
                 unpack: Callable[[Unpacker], Any], default: Any) -> None:
        self.name = name
        self._pack = pack
        self._unpack = unpack
        self._default = default

    def pack(self, p: Packer, value: Any) -> None:
        self._pack(p, value)

    def unpack(self, u: Unpacker) -> Any:
        return self._unpack(u)

    def default(self) -> Any:
        return self._default

    def __repr__(self) -> str:
        return self.name


U32 = _Primitive("u32", Packer.u32, Unpacker.u32, 0)
#: Enums and bools travel as signed 4-byte ints; kept as plain ints here.
ENUM = _Primitive("enum", Packer.i32, Unpacker.i32, 0)
U64 = _Primitive("u64", Packer.u64, Unpacker.u64, 0)
STRING = _Primitive("string", Packer.string, Unpacker.string, "")
OPAQUE = _Primitive("opaque", Packer.opaque, Unpacker.opaque, b"")


class Fixed:
    """A fixed-length opaque (no length word), e.g. an MD5 digest."""

    def __init__(self, size: int) -> None:
        self.size = size

    def pack(self, p: Packer, value: bytes) -> None:
        if len(value) != self.size:
            raise XdrError(f"fixed opaque of {len(value)} bytes where {self.size} are due")
        p.fixed(value)

    def unpack(self, u: Unpacker) -> bytes:
        return u.fixed(self.size)

    def default(self) -> bytes:
        return bytes(self.size)


class Array:
    """A variable-length array ``T<>``: a count, then the elements."""

    #: No NDMP array is anywhere near this long; a bigger count is garbage.
    MAX_COUNT = 1 << 24

    def __init__(self, element: "XdrType | type") -> None:
        # A struct dataclass stands for its StructType.
        self.element: XdrType = StructType(element) if isinstance(element, type) else element

    def pack(self, p: Packer, value: list) -> None:
        p.u32(len(value))
        for item in value:
            self.element.pack(p, item)

    def unpack(self, u: Unpacker) -> list:
        n = u.u32()
        if n > self.MAX_COUNT or n > u.remaining:
            raise XdrError(f"XDR array of {n} elements cannot fit in {u.remaining} bytes")
        return [self.element.unpack(u) for _ in range(n)]

    def default(self) -> list:
        return []


def xfield(xdr: XdrType, default: Any = dataclasses.MISSING) -> Any:
    """A dataclass field carrying its XDR type; the default is the type's
    zero value unless given (lists get a fresh one per instance)."""
    if default is dataclasses.MISSING:
        zero = xdr.default()
        if isinstance(zero, list):
            return dataclasses.field(default_factory=list, metadata={"xdr": xdr})
        if isinstance(zero, bytes) or not hasattr(zero, "__dataclass_fields__"):
            return dataclasses.field(default=zero, metadata={"xdr": xdr})
        return dataclasses.field(default_factory=xdr.default, metadata={"xdr": xdr})
    return dataclasses.field(default=default, metadata={"xdr": xdr})


def layout(name: str, /, **fields: "XdrType | tuple[XdrType, Any]") -> type:
    """A struct dataclass called ``name`` whose fields, in wire order, have
    these XDR types; a pair gives a type and a default other than its zero.

    A protocol's bodies are tables mirroring its ``.x`` file, so they are
    written as tables: ``Reply = layout("Reply", error=ENUM, count=U32)``."""
    specs = []
    for field_name, spec in fields.items():
        xdr, default = spec if isinstance(spec, tuple) else (spec, dataclasses.MISSING)
        specs.append((field_name, Any, xfield(xdr, default)))
    cls = dataclasses.make_dataclass(name, specs)
    cls.__module__ = sys._getframe(1).f_globals.get("__name__", __name__)
    return cls


class Struct:
    """The layout of a dataclass whose fields are declared with :func:`xfield`,
    in declaration order (the wire order)."""

    def __init__(self, cls: type) -> None:
        self.cls = cls
        self.fields = [(f.name, f.metadata["xdr"]) for f in dataclasses.fields(cls)
                       if "xdr" in f.metadata]

    def pack(self, p: Packer, value: Any) -> None:
        for name, xdr in self.fields:
            xdr.pack(p, getattr(value, name))

    def unpack(self, u: Unpacker) -> Any:
        return self.cls(**{name: xdr.unpack(u) for name, xdr in self.fields})

    def default(self) -> Any:
        return self.cls()


def struct_of(cls: type) -> Struct:
    """The :class:`Struct` for a dataclass (made once, kept on the class)."""
    layout = cls.__dict__.get("_xdr_struct")
    if layout is None:
        layout = Struct(cls)
        cls._xdr_struct = layout  # type: ignore[attr-defined]
    return layout


def encode(value: Any) -> bytes:
    """The XDR bytes of a struct dataclass instance."""
    p = Packer()
    struct_of(type(value)).pack(p, value)
    return p.data()


def decode(cls: type, data: bytes | bytearray | memoryview) -> Any:
    """A struct dataclass instance from exactly ``data`` (no bytes left over)."""
    u = Unpacker(data)
    value = struct_of(cls).unpack(u)
    u.done()
    return value


class StructType:
    """A struct dataclass used as the type of a field or an array element."""

    def __init__(self, cls: type) -> None:
        self.cls = cls

    def pack(self, p: Packer, value: Any) -> None:
        struct_of(self.cls).pack(p, value)

    def unpack(self, u: Unpacker) -> Any:
        return struct_of(self.cls).unpack(u)

    def default(self) -> Any:
        return self.cls()


class Union:
    """A discriminated union over a dataclass with a discriminant field and
    one field per non-void arm: ``arms`` maps a discriminant value to the
    field that holds its arm (``None`` for a void arm).  An unknown
    discriminant decodes as a void arm, so the handler can answer
    ILLEGAL_ARGS instead of the whole message failing."""

    def __init__(self, cls: type, discriminant: str, arms: dict[int, tuple[str, XdrType] | None]) -> None:
        self.cls = cls
        self.discriminant = discriminant
        self.arms = arms

    def pack(self, p: Packer, value: Any) -> None:
        kind = getattr(value, self.discriminant)
        p.i32(kind)
        arm = self.arms.get(kind)
        if arm is not None:
            arm[1].pack(p, getattr(value, arm[0]))

    def unpack(self, u: Unpacker) -> Any:
        kind = u.i32()
        arm = self.arms.get(kind)
        if arm is None:
            return self.cls(**{self.discriminant: kind})
        return self.cls(**{self.discriminant: kind, arm[0]: arm[1].unpack(u)})

    def default(self) -> Any:
        return self.cls()
