"""Pre-training examples as TFRecord files, written in plain Python (no TensorFlow).

`ExampleFeatures` holds the three int64 features of a pre-training example
(`input_ids`, `input_mask`, `segment_ids`). `serialize_example` encodes it as
the `tf.train.Example` protocol buffer TensorFlow would write, and
`TFRecordFileWriter` frames records as TFRecord files (length, masked CRC32C,
data, masked CRC32C); the tests compare both byte for byte with TensorFlow.
Writing without TensorFlow lets each builder worker start in well under a
second; TensorFlow is imported only for remote (`gs://...`) paths.
"""
from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from util import paths

if TYPE_CHECKING:
  import tensorflow as tf


def lazy_tensorflow():
  """TensorFlow, imported on first use (remote paths, `tf.train.Example`): a local
  build never imports it, so each worker process starts in well under a second."""
  from util import tf_startup  # pylint: disable=import-outside-toplevel
  return tf_startup.import_tensorflow()  # its start-up banners once


class ExampleFeatures(NamedTuple):
  """The three features of one pre-training example (docs/data.md#example-layout), each max_length
  ints."""
  input_ids: List[int]
  input_mask: List[int]
  segment_ids: List[int]

  def to_tf_example(self) -> "tf.train.Example":
    """The `tf.train.Example` the original builds (imports TensorFlow)."""
    train = lazy_tensorflow().train
    return train.Example(features=train.Features(feature={
        key: train.Feature(int64_list=train.Int64List(value=values))
        for key, values in self._asdict().items()}))


# --- tf.train.Example serialization and TFRecord framing without TensorFlow ---


class _Varints(dict):
  """int -> its protobuf varint bytes (int64: a negative takes 10 bytes), memoized."""

  def __missing__(self, value: int) -> bytes:
    encoded = _encode_varint(value)
    if len(self) < 1 << 20:
      self[value] = encoded
    return encoded


def _encode_varint(value: int) -> bytes:
  value &= (1 << 64) - 1  # Two's complement, as protobuf encodes int64.
  out = bytearray()
  while value >= 0x80:
    out.append((value & 0x7F) | 0x80)
    value >>= 7
  out.append(value)
  return bytes(out)


_VARINTS = _Varints()


def _length_delimited(tag: bytes, payload: bytes) -> bytes:
  return tag + _VARINTS[len(payload)] + payload


def _pack_varints(values: Sequence[int]) -> bytes:
  """The packed varints of an int64 list (what `Int64List.value` serializes to)."""
  if type(values) is not list:  # E.g. a numpy array, whose bytes() is its buffer.
    values = [int(value) for value in values]
  try:
    packed = bytes(values)
    if packed.isascii():  # Every value in [0, 128): one byte each, as is.
      return packed
  except ValueError:  # A value outside [0, 256).
    pass
  return b"".join(map(_VARINTS.__getitem__, values))


class _EntryHeaders(dict):
  """(key, packed length) -> the bytes of a feature map entry before its packed values.

  Entry tag and length, key, Feature tag and length, Int64List tag and length:
  they depend on nothing else, so each is built once.
  """

  def __missing__(self, key_and_length: Tuple[str, int]) -> bytes:
    key, length = key_and_length
    # Int64List.value = 1, packed; an empty list serializes to nothing.
    int64_list_header = b"\x0a" + _VARINTS[length] if length else b""
    int64_list_length = len(int64_list_header) + length
    feature_header = b"\x1a" + _VARINTS[int64_list_length]  # Feature.int64_list = 3.
    feature_length = len(feature_header) + int64_list_length
    key_field = _length_delimited(b"\x0a", key.encode("utf-8"))  # MapEntry.key = 1.
    value_header = b"\x12" + _VARINTS[feature_length]  # MapEntry.value = 2.
    entry_length = len(key_field) + len(value_header) + feature_length
    header = (b"\x0a" + _VARINTS[entry_length] + key_field + value_header + feature_header +
              int64_list_header)  # Features.feature = 1 (one map entry).
    self[key_and_length] = header
    return header


_ENTRY_HEADERS = _EntryHeaders()
# Deterministic protobuf serialization writes map entries sorted by key.
_FIELDS_BY_KEY = sorted(enumerate(ExampleFeatures._fields), key=lambda field: field[1])


def serialize_example(features: ExampleFeatures) -> bytes:
  """The serialized `tf.train.Example` of `features`, without TensorFlow.

  Equal byte for byte to `features.to_tf_example().SerializeToString(
  deterministic=True)` (map entries sorted by key; TF's default order is
  that of a hash table and may differ from process to process).

  Args:
    features: the example's int64 features.

  Returns:
    The protobuf wire bytes.
  """
  parts = []
  for index, key in _FIELDS_BY_KEY:
    packed = _pack_varints(features[index])
    parts.append(_ENTRY_HEADERS[key, len(packed)])
    parts.append(packed)
  body = b"".join(parts)
  return b"\x0a" + _VARINTS[len(body)] + body  # Example.features = 1.


class _Crc32c:
  """CRC-32C (Castagnoli) of byte strings, vectorized with numpy.

  Bytewise, the reflected CRC updates `crc = T0[(crc ^ b) & 0xFF] ^ (crc >> 8)`.
  The update is linear over GF(2), so the register after a block is the XOR
  of one table entry per byte: `T_d[b]`, byte b followed by d more bytes,
  with `T_d = shift(T_(d-1))`; the incoming register is XORed into the
  block's first 4 bytes. Blocks hold at least 4 bytes; shorter tails go
  bytewise.
  """

  POLYNOMIAL = 0x82F63B78
  BLOCK = 1024

  def __init__(self):
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):
      table = np.where(table & 1, (table >> 1) ^ np.uint32(self.POLYNOMIAL), table >> 1)
    self._byte_table = [int(x) for x in table]
    tables = np.empty((self.BLOCK, 256), dtype=np.uint32)
    tables[0] = table
    for distance in range(1, self.BLOCK):
      previous = tables[distance - 1]
      tables[distance] = table[previous & 0xFF] ^ (previous >> 8)
    # Row offset of byte i of a block of n bytes: (n - 1 - i) * 256.
    self._row_offsets = np.arange(self.BLOCK - 1, -1, -1, dtype=np.intp) * 256
    # The initial register 0xFFFFFFFF XORed into the first 4 bytes of an
    # n-byte message contributes tables[n-1][0xFF] ^ ... ^ tables[n-4][0xFF].
    initial = np.zeros(self.BLOCK + 1, dtype=np.uint32)
    for j in range(4):
      initial[4:] ^= tables[3 - j:self.BLOCK - j, 0xFF]
    self._initial = [int(x) for x in initial]
    self._tables = tables.reshape(-1)

  def __call__(self, data: bytes) -> int:
    size = len(data)
    if 4 <= size <= self.BLOCK:  # One block (a pre-training example): no carried register.
      block = np.frombuffer(data, dtype=np.uint8)
      terms = self._tables[self._row_offsets[-size:] + block]
      return self._initial[size] ^ int(np.bitwise_xor.reduce(terms)) ^ 0xFFFFFFFF
    register = 0xFFFFFFFF
    position = 0
    while size - position >= 4:
      n = min(self.BLOCK, size - position)
      if 0 < size - position - n < 4:
        n -= 4  # Leaves a tail of at least 4 bytes for the next block.
      block = np.frombuffer(data, dtype=np.uint8, count=n, offset=position).astype(np.intp)
      block[:4] ^= np.frombuffer(register.to_bytes(4, "little"), dtype=np.uint8)
      register = int(np.bitwise_xor.reduce(self._tables[self._row_offsets[-n:] + block]))
      position += n
    table = self._byte_table
    for byte in data[position:]:
      register = table[(register ^ byte) & 0xFF] ^ (register >> 8)
    return register ^ 0xFFFFFFFF


_CRC32C: Optional[_Crc32c] = None


def crc32c(data: bytes) -> int:
  """CRC-32C (Castagnoli) of `data`, as TFRecord framing uses it."""
  global _CRC32C
  if _CRC32C is None:
    _CRC32C = _Crc32c()
  return _CRC32C(data)


def masked_crc32c(data: bytes) -> int:
  """TFRecord's masked CRC: rotate right by 15 bits, add 0xa282ead8 (mod 2^32)."""
  crc = crc32c(data)
  return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


class TFRecordFileWriter:
  """Writes an uncompressed TFRecord file in plain Python (the bytes TensorFlow writes).

  Each record is framed as `uint64 length, uint32 masked_crc32c(length
  bytes), data, uint32 masked_crc32c(data)`, little-endian. The file is
  created (empty) at construction.

  Args:
    path: local path, or any TF filesystem URL (then written through
      `tf.io.gfile`).
  """

  def __init__(self, path: str):
    self._file = (lazy_tensorflow().io.gfile.GFile(path, "wb")
                  if paths.is_remote(path) else open(path, "wb"))
    self._headers: Dict[int, bytes] = {}

  def write(self, record: bytes) -> None:
    """Appends one record."""
    header = self._headers.get(len(record))
    if header is None:
      length = struct.pack("<Q", len(record))
      header = self._headers[len(record)] = length + struct.pack("<I", masked_crc32c(length))
    self._file.write(header + record + struct.pack("<I", masked_crc32c(record)))

  def close(self) -> None:
    self._file.close()
