"""lib0's binary decoding, bounded for untrusted input (one reader for all of sync/)."""

from __future__ import annotations

#: Nesting bound of a lib0 "any" value (JSON-like content): deeper is refused.
MAX_ANY_DEPTH = 64


class ProtocolError(ValueError):
    """Bytes that are not a well-formed message (a socket sending them is closed, 4400)."""


class Reader:
    """A bounded reader over bytes: lib0's ``decoding``, for untrusted input.

    Every read checks the end. Varints stop after 8 bytes (56 bits, far above any Yjs
    client id, clock or length): pycrdt's ``Decoder.read_var_uint`` has no such bound,
    and a hostile frame of 2 MiB of 0xff bytes makes it quadratic (seconds to minutes of
    a blocked event loop). The position is our own, never pycrdt's internals.
    """

    __slots__ = ("buf", "end", "pos")

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0
        self.end = len(buf)

    def left(self) -> int:
        return self.end - self.pos

    def uint(self) -> int:
        buf = self.buf
        i = self.pos
        if i < self.end:
            byte = buf[i]
            if byte < 0x80:  # one byte: most lengths, counts and small clocks
                self.pos = i + 1
                return byte
        stop = min(i + 8, self.end)
        value = 0
        shift = 0
        while i < stop:
            byte = buf[i]
            i += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                self.pos = i
                return value
            shift += 7
        if i - self.pos >= 8:
            raise ProtocolError("varint too long")
        raise ProtocolError("truncated varint")

    def count(self) -> int:
        """A number of elements to read, each of which takes at least one byte."""
        n = self.uint()
        if n > self.end - self.pos:
            raise ProtocolError("count past end")
        return n

    def int_(self) -> int:
        """lib0 signed varint: sign in bit 6 of the first byte, 6 + 7n bits of magnitude."""
        buf = self.buf
        i = self.pos
        if i >= self.end:
            raise ProtocolError("truncated varint")
        byte = buf[i]
        i += 1
        value = byte & 0x3F
        negative = bool(byte & 0x40)
        shift = 6
        stop = min(self.pos + 8, self.end)
        while byte & 0x80:
            if i >= stop:
                raise ProtocolError("varint too long" if i < self.end else "truncated varint")
            byte = buf[i]
            i += 1
            value |= (byte & 0x7F) << shift
            shift += 7
        self.pos = i
        return -value if negative else value

    def byte(self) -> int:
        i = self.pos
        if i >= self.end:
            raise ProtocolError("truncated input")
        self.pos = i + 1
        return self.buf[i]

    def raw(self, n: int) -> bytes:
        i = self.pos
        if n > self.end - i:
            raise ProtocolError("length past end")
        self.pos = i + n
        return self.buf[i : i + n]

    def bytes_(self) -> bytes:
        return self.raw(self.uint())

    def string(self) -> str:
        try:
            return self.raw(self.uint()).decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("string is not UTF-8") from None

    def skip_any(self, depth: int = 0) -> None:
        """Read one lib0 "any" value (validated, discarded: nobody here needs it)."""
        if depth > MAX_ANY_DEPTH:
            raise ProtocolError("'any' value nested too deep")
        tag = self.byte()
        if tag >= 120:  # 127 undefined, 126 null, 121 false, 120 true: no payload
            if tag == 125:
                self.int_()
            elif tag == 124:
                self.raw(4)
            elif tag == 123 or tag == 122:
                self.raw(8)
        elif tag == 119:
            self.string()
        elif tag == 118:
            for _ in range(self.count()):
                self.string()
                self.skip_any(depth + 1)
        elif tag == 117:
            for _ in range(self.count()):
                self.skip_any(depth + 1)
        elif tag == 116:
            self.bytes_()
        else:
            raise ProtocolError(f"unknown 'any' tag {tag}")

    def done(self) -> None:
        """Refuse anything left over: a message is exactly one encoded value."""
        if self.pos != self.end:
            raise ProtocolError("trailing bytes")
