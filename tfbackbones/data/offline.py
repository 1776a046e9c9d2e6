"""Is a TFDS download hopeless here? Then try it once, not for minutes.

Offline, TFDS's downloader retries each URL ten times with exponential back-off (about
200 s, measured: ~4 minutes for dtd, with a warning line per retry) before it raises.
A first-hour user who types the README's paper command on an offline machine waited
that long for the "Offline? Prepare it where the network works" line. When no host
name resolves and no proxy is configured, retrying cannot help: `attempts` lets TFDS
try once (it fails in a second) and says why, so the error names the cause. The
download itself still runs, so anything that replaces it (tfds.testing.mock_data,
a local mirror) behaves as before.

Only TFDS's own catalog builders download; the project's builders (tfds_builders/:
folders, manual files, data that ships with scikit-learn or scikit-image) never do and
are never probed.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from urllib.parse import urlparse

# A host that resolves wherever the internet does; TFDS's own data and Keras's weights
# live there. The dataset's homepage host is tried too.
WELL_KNOWN_HOST = "storage.googleapis.com"
_PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY",
               "all_proxy")


def downloads(builder) -> bool:
  """True for a TFDS catalog builder that fetches its data from the network."""
  return (type(builder).__module__.startswith("tensorflow_datasets.")
          and not getattr(builder, "MANUAL_DOWNLOAD_INSTRUCTIONS", None))


def unreachable(builder) -> str | None:
  """Why `builder`'s download cannot work here (no host name resolves), else None.

  A proxy resolves names for its clients, so with one configured nothing is concluded.
  A name that resolves proves nothing either way; then TFDS tries, as before.
  """
  if not downloads(builder):
    return None
  homepage = urlparse(getattr(builder.info, "homepage", "") or "").hostname
  return unresolvable([homepage, WELL_KNOWN_HOST])


def unresolvable(hosts) -> str | None:
  """Why none of `hosts` can be reached ("no network: ..."), or None if one resolves or a
  proxy is set (a proxy resolves names for its clients, so nothing is concluded)."""
  hosts = [h for h in hosts if h]
  if not hosts or any(os.environ.get(v) for v in _PROXY_VARS):
    return None
  for host in hosts:
    try:
      socket.getaddrinfo(host, 443)
      return None
    except (socket.gaierror, UnicodeError):
      continue
  return f"no network: none of {', '.join(hosts)} resolves (and no proxy is set)"


@contextlib.contextmanager
def attempts(builder) -> Iterator[str | None]:
  """Around `builder.download_and_prepare()`: yields why the network is unreachable (or
  None) and, if it is, lets TFDS's downloader try each URL once instead of ten times.

  TFDS reads `downloader.MAX_RETRIES` when it opens a URL; a TFDS without it just
  retries as before.
  """
  why = unreachable(builder)
  from tensorflow_datasets.core.download import downloader
  if why is None or not hasattr(downloader, "MAX_RETRIES"):
    yield why
    return
  saved, downloader.MAX_RETRIES = downloader.MAX_RETRIES, 0
  try:
    yield why
  finally:
    downloader.MAX_RETRIES = saved
