"""`json.dumps(default=...)` for the numbers training produces (NumPy scalars, arrays).

A module of its own because both the workdir (state.json) and the typed result
(result.json) write JSON, and neither should import the other for it.
"""


def jsonable(value):
  """NumPy scalars and arrays as numbers and lists; anything else as its str()."""
  if hasattr(value, "item"):
    return value.item()
  if hasattr(value, "tolist"):
    return value.tolist()
  return str(value)
