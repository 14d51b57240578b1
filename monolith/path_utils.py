"""Locating Monolith's code tree: Bazel runfiles, an installed package, or a source checkout.

Imports neither TensorFlow nor absl: launchers use it before either is loaded."""
import os

_MARKERS = ("/__main__/", "/site-packages/", "/monolith/")


def find_main() -> str:
  """Returns the directory that contains the top-level `monolith` package."""
  path = os.path.abspath(__file__)
  # Upstream gives up after the first marker present in the path; trying the next ones too keeps
  # an installed package working below a directory named __main__ (e.g. inside a Bazel sandbox).
  for marker in _MARKERS:
    index = path.rfind(marker)
    if index < 0:
      continue
    # For "/monolith/" the base is the prefix; for the others the marker directory itself.
    base = path[:index] if marker == "/monolith/" else path[:index + len(marker) - 1]
    if os.path.exists(os.path.join(base, "monolith")):
      return base
  raise ValueError(
      "Unable to find the monolith base directory. This file directory is {}. "
      "Are you running under bazel structure?".format(os.path.dirname(path)))


def get_libops_path(lib_name: str) -> str:
  """Path of a file shipped with Monolith (e.g. an ops library), given relative to find_main()."""
  return os.path.join(find_main(), lib_name)
