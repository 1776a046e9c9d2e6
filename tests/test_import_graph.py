"""The library's import graph has no cycle (function-level imports included).

A cycle makes import order matter and hides a missing module split; the last one
(wavemix <-> transformer_ports) was broken by moving the shared initialiser into a
module of its own (now backbones/ports/blocks.py). Edges go to modules, not to the
packages that hold them: `from pkg import mod` is an edge to `pkg.mod`, and a module's
own ancestor packages are not counted (Python initialises them first by design).
"""

import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("tfbackbones", "experiments", "tfds_builders")


def _modules() -> dict:
  found = {}
  for package in PACKAGES:
    for dirpath, _, files in os.walk(os.path.join(ROOT, package)):
      for f in files:
        if f.endswith(".py") and not f.endswith("_test.py"):
          rel = os.path.relpath(os.path.join(dirpath, f), ROOT)[:-3].replace(os.sep, ".")
          found[rel.removesuffix(".__init__")] = os.path.join(dirpath, f)
  return found


def _edges(name: str, path: str, modules: dict) -> set:
  tree = ast.parse(open(path).read())
  out = set()
  for node in ast.walk(tree):
    targets = []
    if isinstance(node, ast.Import):
      targets = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
      targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules
                 else node.module for a in node.names]
    for target in targets:
      while target and target not in modules:
        target = target.rpartition(".")[0]
      if target and target != name and not name.startswith(target + "."):
        out.add(target)
  return out


def find_cycle(graph: dict):
  """A cycle as a list of modules, or None (iterative DFS, colours)."""
  colour = dict.fromkeys(graph, 0)
  for start in graph:
    if colour[start]:
      continue
    stack = [(start, iter(sorted(graph[start])))]
    path = [start]
    colour[start] = 1
    while stack:
      node, children = stack[-1]
      child = next(children, None)
      if child is None:
        colour[node] = 2
        stack.pop()
        path.pop()
      elif colour[child] == 1:
        return path[path.index(child):] + [child]
      elif colour[child] == 0:
        colour[child] = 1
        stack.append((child, iter(sorted(graph[child]))))
        path.append(child)
  return None


def test_the_import_graph_has_no_cycle():
  modules = _modules()
  graph = {name: _edges(name, path, modules) for name, path in modules.items()}
  assert "tfbackbones.backbones.ports.blocks" in graph["tfbackbones.backbones.ports.wavemix"]
  cycle = find_cycle(graph)
  assert cycle is None, " -> ".join(cycle)


def test_the_cycle_finder_finds_one():
  assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
  assert find_cycle({"a": {"b"}, "b": set()}) is None
