"""A real `tensorboard` server process for tests: loopback only, bounded wait, killed by pid.

The HParams dashboard is JavaScript reading two JSON endpoints; the tests post the same
requests it posts (`/data/plugin/hparams/experiment`, `/data/plugin/hparams/session_groups`)
and read the same answers.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

TENSORBOARD = os.path.join(os.path.dirname(sys.executable), "tensorboard")


def free_port() -> int:
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


class Server:
  def __init__(self, url: str, proc: subprocess.Popen):
    self.url, self.proc = url, proc

  def post(self, route: str, body: dict) -> dict:
    request = urllib.request.Request(
        self.url + route, data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json",
                 # TensorBoard refuses cross-site POSTs without this header.
                 "X-XSRF-Protected": "1"})
    with urllib.request.urlopen(request, timeout=30) as response:
      return json.loads(response.read())

  def experiment(self) -> dict:
    return self.post("/data/plugin/hparams/experiment",
                     {"experimentName": "", "includeMetrics": True})

  def session_groups(self, statuses: list[str]) -> dict:
    return self.post("/data/plugin/hparams/session_groups", {
        "experimentName": "", "allowedStatuses": statuses, "colParams": [],
        "startIndex": 0, "sliceSize": 100, "includeMetrics": True})


@contextlib.contextmanager
def serve(command: str, *, timeout: float = 120.0, env=None, cwd=None,
          shell_prefix: str | None = None):
  """Starts `command` (a `tensorboard ...` line) on a free 127.0.0.1 port; yields a Server.

  The port and host are appended, so a printed command runs as printed otherwise. With
  `shell_prefix` (e.g. `source .venv/bin/activate`), bash runs `prefix && exec command`,
  as a user's shell would; else `tensorboard` is this Python's.
  """
  port = free_port()
  where = f"--port={port} --host=127.0.0.1"
  if shell_prefix:
    argv = ["bash", "-c", f"{shell_prefix} && exec {command} {where}"]
  else:
    argv = shlex.split(command) + where.split()
    if argv[0] == "tensorboard":
      argv[0] = TENSORBOARD
  proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          env=env, cwd=cwd)
  url = f"http://127.0.0.1:{port}"
  try:
    deadline = time.time() + timeout
    while True:
      if proc.poll() is not None:
        raise RuntimeError(f"tensorboard exited with {proc.returncode}: "
                           f"{proc.stdout.read().decode(errors='replace')[-2000:]}")
      try:
        with urllib.request.urlopen(url + "/data/plugins_listing", timeout=5):
          break
      except (urllib.error.URLError, ConnectionError, OSError) as e:
        if time.time() > deadline:
          raise TimeoutError(f"tensorboard did not answer on {url} in {timeout:.0f}s") from e
        time.sleep(0.5)
    yield Server(url, proc)
  finally:
    proc.kill()
    proc.wait(timeout=30)
    proc.stdout.close()
