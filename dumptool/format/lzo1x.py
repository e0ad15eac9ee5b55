"""LZO1X decompression in plain Python, for the records of ``dump -y``.

Linux dump compresses each record with liblzo2's ``lzo1x_1_compress`` and
restore undoes it with ``lzo1x_decompress``.  Python's standard library has
no LZO, so this module decodes the LZO1X bit stream itself (the layout as
the Linux kernel's ``Documentation/staging/lzo.rst`` describes it).  It is
written for records of a few hundred KiB at most: every read and every copy
is bounds-checked, and a stream that breaks a rule raises
:class:`LzoError` instead of producing bytes.

The stream is a sequence of instructions, each a copy from the output
already produced (a *match*: length and distance) followed by 0 to 3
literal bytes (the low two bits ``S`` of the instruction), or a run of 4 or
more literals.  What an opcode below 16 means depends on what the previous
instruction did (the *state*: 0 literals, 1 to 3, or 4 for a long run).
The stream ends with the match whose distance is exactly 16384 (bytes
``0x11 0x00 0x00``).
"""

from __future__ import annotations

from ..errors import FormatError


class LzoError(FormatError):
    """The bytes are not a valid LZO1X stream (or decode to more than allowed)."""


def _run_length(src: bytes, ip: int, base: int) -> tuple[int, int]:
    """A length continued in extra bytes: 255 for each zero byte, then the
    first non-zero byte, added to *base*.  Returns (length, next ip)."""
    n = base
    end = len(src)
    while True:
        if ip >= end:
            raise LzoError("LZO stream ends inside a length")
        b = src[ip]
        ip += 1
        if b:
            return n + b, ip
        n += 255


def lzo1x_decompress(src: bytes, max_out: int) -> bytes:
    """Decode the LZO1X stream *src*, which must produce at most *max_out* bytes."""
    out = bytearray()
    ip = 0
    end = len(src)
    if end < 3:
        raise LzoError("LZO stream too short")
    state = 0

    def literals(count: int) -> None:
        nonlocal ip
        if ip + count > end:
            raise LzoError("LZO stream ends inside a literal run")
        if len(out) + count > max_out:
            raise LzoError(f"LZO stream decodes to more than {max_out} bytes")
        out.extend(src[ip:ip + count])
        ip += count

    def match(distance: int, length: int) -> None:
        start = len(out) - distance
        if start < 0:
            raise LzoError(f"LZO match reaches {distance} bytes back, before the start of the output")
        if len(out) + length > max_out:
            raise LzoError(f"LZO stream decodes to more than {max_out} bytes")
        if distance >= length:
            out.extend(out[start:start + length])
        else:  # overlapping: the copy repeats the last `distance` bytes
            chunk = out[start:]
            whole, part = divmod(length, distance)
            out.extend(chunk * whole + chunk[:part])

    first = src[0]
    if first > 17:
        ip = 1
        count = first - 17
        literals(count)
        state = 4 if count >= 4 else count
    while True:
        if ip >= end:
            raise LzoError("LZO stream ends without its end marker")
        op = src[ip]
        ip += 1
        if op < 16:
            if state == 0:
                # a run of 4 or more literals
                if op == 0:
                    count, ip = _run_length(src, ip, 15)
                    count += 3
                else:
                    count = op + 3
                literals(count)
                state = 4
                continue
            if ip >= end:
                raise LzoError("LZO stream ends inside an instruction")
            distance = (src[ip] << 2) + (op >> 2) + 1
            ip += 1
            if state == 4:  # after a long literal run: 3 bytes from 2..3 KiB back
                match(distance + 2048, 3)
            else:
                match(distance, 2)
        elif op < 64:
            # 0001HLLL (16 to 48 KiB back, or the end) and 001LLLLL (up to 16 KiB
            # back): a length, continued when zero, then a little-endian word.
            mask = 7 if op < 32 else 31
            length = op & mask
            if length == 0:
                length, ip = _run_length(src, ip, mask)
            if ip + 2 > end:
                raise LzoError("LZO stream ends inside an instruction")
            word = src[ip] | src[ip + 1] << 8
            ip += 2
            if op < 32:
                distance = 16384 + ((op & 8) << 11) + (word >> 2)
                if distance == 16384:
                    if ip != end:
                        raise LzoError(f"LZO end marker {end - ip} byte(s) before the end of the stream")
                    return bytes(out)
            else:
                distance = (word >> 2) + 1
            match(distance, length + 2)
            op = word
        else:
            if ip >= end:
                raise LzoError("LZO stream ends inside an instruction")
            distance = (src[ip] << 3) + ((op >> 2) & 7) + 1
            ip += 1
            # 01LDDDSS copies 3 + L bytes, 1LLDDDSS copies 5 + LL
            match(distance, (op >> 5) + 1 if op >= 128 else ((op >> 5) & 1) + 3)
        state = op & 3
        if state:
            literals(state)
