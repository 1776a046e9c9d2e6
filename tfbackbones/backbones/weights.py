"""Finding, fetching and loading backbone weights, failing fast offline.

Three jobs, all about where pretrained weights live:

* Keras application weights: the `include_top=False` ImageNet file is looked
  up in the Keras cache (`$KERAS_HOME/models`, else `~/.keras/models`),
  verified against the hash Keras itself uses, downloaded with
  `keras.utils.get_file` only when absent and not offline, and loaded the way
  the keras.applications constructors load it.
* TF Hub models: where `tensorflow_hub` caches a handle (TFHUB_CACHE_DIR).
* keras-hub presets: a local preset directory in the Keras cache
  (`$KERAS_HOME/keras_hub/<preset>`) or in kagglehub's download cache.
* User weight files (`weights=PATH`): existence, suffix and shape checks with
  errors that name the file.

Why the cache directory is computed here rather than left to Keras: Keras
reads KERAS_HOME once, when `keras` is first imported. We read it at call time
and pass the directory to `get_file` explicitly, so what we report (tables,
error messages) is exactly where we look.

No TensorFlow or Keras import at module level (fast table printing).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import socket
import tempfile
import urllib.parse
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
  import keras

  from tfbackbones.backbones.registry import BackboneSpec

OFFLINE_ENV = "TFBACKBONES_OFFLINE"
# Per socket operation, so a slow but progressing download is not cut off;
# a stalled connection fails within this many seconds instead of hanging.
DOWNLOAD_SOCKET_TIMEOUT_S = 20.0
WEIGHTS_SUFFIXES = (".weights.h5", ".keras", ".h5")


class WeightsNotAvailableError(RuntimeError):
  """Pretrained or requested weights cannot be obtained on this machine."""


class WeightsMismatchError(ValueError):
  """A weights file does not fit the backbone's architecture."""


def offline() -> bool:
  """Returns True if TFBACKBONES_OFFLINE asks us never to use the network."""
  value = os.environ.get(OFFLINE_ENV, "").strip().lower()
  return value in ("1", "true", "yes", "on")


def keras_cache_dir() -> str:
  """Returns the Keras cache root, as `keras.utils.get_file` resolves it.

  `$KERAS_HOME` if set (and non-empty), else `~/.keras` (`/tmp/.keras` when
  the home directory is not writable); an existing but unwritable root falls
  back to `/tmp/.keras`, as in keras/src/utils/file_utils.py.

  Returns:
    Absolute path of the cache root (it may not exist yet).
  """
  base = os.environ.get("KERAS_HOME", "")
  if base:
    base = os.path.expanduser(base)
  else:
    home = os.path.expanduser("~")
    base = os.path.join(home if os.access(home, os.W_OK) else "/tmp",
                        ".keras")
  if os.path.isdir(base) and not os.access(base, os.W_OK):
    tmp = "/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir()
    base = os.path.join(tmp, ".keras")
  return os.path.abspath(base)


def keras_models_dir() -> str:
  """Returns the directory Keras keeps application weights in."""
  return os.path.join(keras_cache_dir(), "models")


def tfhub_cache_dir() -> str:
  """Returns the TF Hub download cache (TFHUB_CACHE_DIR or the default).

  Mirrors tensorflow_hub.resolver.tfhub_cache_dir(use_temp=True); the
  `--tfhub_cache_dir` absl flag is ignored.
  """
  configured = os.environ.get("TFHUB_CACHE_DIR", "")
  if configured:
    return os.path.abspath(os.path.expanduser(configured))
  return os.path.join(tempfile.gettempdir(), "tfhub_modules")


def tfhub_module_dir(handle: str) -> str:
  """Returns where tensorflow_hub caches `handle` (sha1 of the handle)."""
  digest = hashlib.sha1(handle.encode("utf8")).hexdigest()
  return os.path.join(tfhub_cache_dir(), digest)


def tfhub_cached(handle: str) -> str | None:
  """Returns the cached module directory for `handle`, or None if absent."""
  path = tfhub_module_dir(handle)
  if os.path.isdir(path) and os.listdir(path):
    return path
  return None


KAGGLEHUB_CACHE_ENV = "KAGGLEHUB_CACHE"
PRESET_CONFIG = "config.json"  # the file every keras-hub preset directory has


def kagglehub_cache_dir() -> str:
  """Returns kagglehub's download cache ($KAGGLEHUB_CACHE, else ~/.cache/kagglehub)."""
  configured = os.environ.get(KAGGLEHUB_CACHE_ENV, "")
  if configured:
    return os.path.abspath(os.path.expanduser(configured))
  return os.path.join(os.path.expanduser("~"), ".cache", "kagglehub")


def keras_hub_presets_dir() -> str:
  """Returns where this project looks for copied keras-hub presets by name."""
  return os.path.join(keras_cache_dir(), "keras_hub")


def is_preset_dir(path: str) -> bool:
  """True if `path` is a keras-hub preset directory (it has config.json)."""
  return os.path.isfile(os.path.join(path, PRESET_CONFIG))


def keras_hub_preset_dirs(handle: str) -> list[str]:
  """Where a keras-hub preset can live on this machine, in lookup order.

  Args:
    handle: A Kaggle handle `kaggle://<owner>/<model>/keras/<variation>[/<version>]`
      or a local preset directory.

  Returns:
    Candidate directories: `<keras cache>/keras_hub/<variation>` (a copy made by
    hand or with `save_to_preset`), then kagglehub's own cache path for the handle
    (what `from_preset` fills on a machine with network). A local directory is its
    own only candidate.
  """
  prefix = "kaggle://"
  if not handle.startswith(prefix):
    return [os.path.abspath(os.path.expanduser(handle))]
  parts = handle[len(prefix):].strip("/").split("/")
  if len(parts) not in (4, 5):
    return []
  candidates = [os.path.join(keras_hub_presets_dir(), parts[3])]
  model_root = os.path.join(kagglehub_cache_dir(), "models", *parts[:4])
  if len(parts) == 5:
    candidates.append(os.path.join(model_root, parts[4]))
  elif os.path.isdir(model_root):  # no version given: the newest cached one
    versions = sorted((v for v in os.listdir(model_root) if v.isdigit()), key=int)
    candidates.extend(os.path.join(model_root, v) for v in reversed(versions))
  return candidates


def keras_hub_cached(handle: str) -> str | None:
  """Returns the first local preset directory for `handle`, or None."""
  for path in keras_hub_preset_dirs(handle):
    if is_preset_dir(path):
      return path
  return None


def cached_weights_path(spec: BackboneSpec) -> str | None:
  """Returns the local copy of a spec's pretrained weights, if there is one.

  Does not verify hashes (cheap enough for tables).

  Args:
    spec: Any backbone spec.

  Returns:
    The cached Keras weights file (keras.applications), the cached TF Hub
    module directory (tfhub) or the local preset directory (keras_hub); None if
    absent or not applicable.
  """
  if spec.source == "keras.applications" and spec.weights_file:
    path = os.path.join(keras_models_dir(), spec.weights_file)
    return path if os.path.isfile(path) else None
  if spec.source == "tfhub" and spec.handle:
    return tfhub_cached(spec.handle)
  if spec.source == "tfbackbones" and spec.weights_file:
    path = os.path.join(keras_models_dir(), spec.weights_file)
    return path if os.path.isfile(path) else None
  if spec.source == "keras_hub" and spec.handle:
    return keras_hub_cached(spec.handle)
  return None


def ported_weights_file(name: str) -> str:
  """File name, in the Keras cache, of a port's converted ImageNet backbone weights."""
  return f"{name}_notop.weights.h5"


def ported_imagenet_path(spec: BackboneSpec, url: str) -> str:
  """A port's converted ImageNet weights in the Keras cache, or how to make them.

  The project's Keras ports (source "tfbackbones") have no Keras download: their
  ImageNet weights are the PyTorch release the paper used, converted once with
  `python -m tfbackbones.convert` into `<keras cache>/models/<name>_notop.weights.h5`.
  """
  path = os.path.join(keras_models_dir(), spec.weights_file or ported_weights_file(spec.name))
  if os.path.isfile(path):
    return path
  raise WeightsNotAvailableError(
      f"ImageNet weights for backbone {spec.name!r} are a PyTorch checkpoint "
      f"converted to Keras, and {path} does not exist.\n"
      f"Download {url} (on a machine with internet), then\n"
      f"  python -m tfbackbones.convert --arch={spec.name} --src=FILE.pth --dst={path}\n"
      "(the converter needs torch: pip install -e '.[parity]'). Alternatives: "
      "--weights=none (random init) or --weights=/path/file.weights.h5.")


def parse_weights_arg(weights: str | None) -> str:
  """Normalises a `weights` argument.

  Args:
    weights: "imagenet", "none" (or None), or a file path.

  Returns:
    "imagenet", "none", or the absolute, user-expanded path.
  """
  if weights is None:
    return "none"
  text = str(weights).strip()
  if text.lower() in ("imagenet", "none"):
    return text.lower()
  return os.path.abspath(os.path.expanduser(text))


def check_weights_path(path: str) -> str:
  """Checks that a user weights file exists and has a loadable suffix.

  Called before building, so a typo fails in milliseconds.

  Args:
    path: Path from `weights=PATH`.

  Returns:
    The path.

  Raises:
    WeightsNotAvailableError: If the file does not exist.
    ValueError: If the suffix is not .weights.h5, .keras or .h5.
  """
  if not os.path.isfile(path):
    raise WeightsNotAvailableError(
        f"Weights file not found: {path}\n"
        "Pass --weights=imagenet, --weights=none, or the path of an existing "
        ".weights.h5 / .keras file saved from this backbone.")
  if not path.endswith(WEIGHTS_SUFFIXES):
    raise ValueError(
        f"Cannot load weights from {path}: expected a file ending in "
        f"{', '.join(WEIGHTS_SUFFIXES)}.")
  return path


def load_weights_file(model: keras.Model, path: str, backbone: str) -> None:
  """Loads a weights file into a model, with an error that names the file.

  Args:
    model: The built model.
    path: A checked path (see `check_weights_path`).
    backbone: Backbone name, for the message.

  Raises:
    WeightsMismatchError: If the file is unreadable or its variables do not
      fit the model. The Keras message (kept, shortened) names the first
      offending layer.
  """
  # A failing load first emits one warning per unmatched sub-container
  # (dozens); record them and re-emit only if the load succeeds.
  error = None
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    try:
      model.load_weights(path)
    except (ValueError, KeyError, TypeError, OSError) as e:
      error = e
  if error is None:
    for w in caught:
      warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return
  detail = str(error)
  if len(detail) > 1200:
    detail = detail[:1200] + " ..."
  raise WeightsMismatchError(
      f"Could not load the weights in {path} into backbone {backbone!r} "
      f"({len(model.weights)} variables). Was the file saved from this "
      "backbone? Keras says:\n" + detail) from error


def _file_digest(path: str, algorithm: str) -> str:
  """Hashes a file in chunks."""
  digest = hashlib.new(algorithm)
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      digest.update(chunk)
  return digest.hexdigest()


def hash_matches(path: str, expected: str) -> bool:
  """Checks a file against a Keras-style hash (sha256 if 64 hex, else md5)."""
  algorithm = "sha256" if len(expected) == 64 else "md5"
  return _file_digest(path, algorithm) == expected.lower()


@contextlib.contextmanager
def socket_timeout(seconds: float) -> Iterator[None]:
  """Temporarily gives sockets a default timeout so downloads cannot hang."""
  previous = socket.getdefaulttimeout()
  if previous is None:
    socket.setdefaulttimeout(seconds)
  try:
    yield
  finally:
    socket.setdefaulttimeout(previous)


def _missing_weights_message(spec: BackboneSpec, reason: str) -> str:
  """Explains how to provide a keras.applications weights file by hand."""
  algorithm = "sha256" if len(spec.weights_hash or "") == 64 else "md5"
  return (
      f"ImageNet weights for backbone {spec.name!r} are not available "
      f"({reason}).\n"
      f"Keras looks for the file\n  {spec.weights_file}\n"
      f"in the directory\n  {keras_models_dir()}\n"
      "(that is $KERAS_HOME/models; without KERAS_HOME, ~/.keras/models).\n"
      f"Download it on a machine with internet from\n  {spec.weights_url}\n"
      "and copy it there unchanged. Keras checks its "
      f"{algorithm} ({spec.weights_hash}) and DELETES a cached file whose "
      "hash does not match, so copy the exact file.\n"
      "Alternatives: --weights=none (random init) or "
      "--weights=/path/file.weights.h5 (weights saved from this backbone).")


def fetch_imagenet_weights(spec: BackboneSpec) -> str:
  """Returns a verified local copy of a keras.applications weights file.

  Order: a cached file is verified and used (never deleted, unlike Keras's
  own path, which deletes and re-downloads a mismatching file); an absent
  file raises at once when TFBACKBONES_OFFLINE is set; otherwise it is
  downloaded once with a socket timeout, and any failure is reported as
  `WeightsNotAvailableError`.

  Args:
    spec: A keras.applications spec with weights_file/url/hash.

  Returns:
    Path of the weights file in the Keras cache.

  Raises:
    WeightsNotAvailableError: If the file is absent and cannot be fetched,
      or if the cached copy fails the hash check.
  """
  if not (spec.weights_file and spec.weights_url):
    raise WeightsNotAvailableError(
        f"Backbone {spec.name!r} has no published ImageNet weights file.")
  path = os.path.join(keras_models_dir(), spec.weights_file)
  if os.path.isfile(path):
    if spec.weights_hash and not hash_matches(path, spec.weights_hash):
      raise WeightsNotAvailableError(_missing_weights_message(
          spec, f"the cached file {path} does not match the expected hash; "
          "it is incomplete or a different file. Delete or replace it"))
    return path
  if offline():
    raise WeightsNotAvailableError(_missing_weights_message(
        spec, f"{spec.weights_file} is not cached and {OFFLINE_ENV}=1 "
        "forbids downloading"))
  import keras

  from tfbackbones.data import offline as network
  # Offline, Keras still prints "Downloading data from <url>" before it fails, which reads
  # as if the download were under way: the attempt still runs (tests replace get_file),
  # without its output, and the error says there is no network.
  why = network.unresolvable([urllib.parse.urlparse(spec.weights_url).hostname])
  cache_dir = keras_cache_dir()
  try:
    # get_file falls back to /tmp/.keras when the root does not exist yet.
    os.makedirs(cache_dir, exist_ok=True)
    with socket_timeout(DOWNLOAD_SOCKET_TIMEOUT_S), (
        contextlib.redirect_stdout(io.StringIO()) if why else contextlib.nullcontext()):
      return keras.utils.get_file(
          spec.weights_file,
          spec.weights_url,
          cache_subdir="models",
          file_hash=spec.weights_hash,
          cache_dir=cache_dir,
      )
  except Exception as e:
    reason = (f"{spec.weights_file} is not cached and cannot be downloaded: {why}" if why
              else f"download failed: {type(e).__name__}: {e}")
    raise WeightsNotAvailableError(_missing_weights_message(spec, reason)) from e
