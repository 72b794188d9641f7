"""Just enough of the protobuf wire format to read a small message: no schema, no codegen.

A message is a sequence of (field number, wire type, value). Varints are at most 10 bytes;
every length is checked against what is left, so truncated or hostile input fails cleanly.
"""

from collections.abc import Iterator

from totpd.errors import WireError

VARINT, FIXED64, LENGTH_DELIMITED, FIXED32 = 0, 1, 2, 5
MAX_VARINT_BYTES = 10


def read_varint(buffer: bytes, offset: int) -> tuple[int, int]:
    """The unsigned varint at `offset` and the offset after it."""
    value = 0
    for index in range(MAX_VARINT_BYTES):
        if offset + index >= len(buffer):
            raise WireError("truncated varint")
        byte = buffer[offset + index]
        value |= (byte & 0x7F) << (7 * index)
        if not byte & 0x80:
            return value, offset + index + 1
    raise WireError("varint longer than 10 bytes")


def fields(buffer: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """Each field of the message in `buffer`: (number, wire type, int or bytes value)."""
    offset = 0
    while offset < len(buffer):
        tag, offset = read_varint(buffer, offset)
        number, wire_type = tag >> 3, tag & 7
        if number == 0:
            raise WireError("field number 0")
        value: int | bytes
        if wire_type == VARINT:
            value, offset = read_varint(buffer, offset)
        elif wire_type == LENGTH_DELIMITED:
            length, offset = read_varint(buffer, offset)
            if length > len(buffer) - offset:
                raise WireError("length runs past the end")
            value, offset = buffer[offset : offset + length], offset + length
        elif wire_type in (FIXED64, FIXED32):
            size = 8 if wire_type == FIXED64 else 4
            if size > len(buffer) - offset:
                raise WireError("fixed-size field runs past the end")
            value, offset = int.from_bytes(buffer[offset : offset + size], "little"), offset + size
        else:
            raise WireError(f"unsupported wire type {wire_type}")
        yield number, wire_type, value
