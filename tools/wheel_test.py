"""Installs the built Monolith wheel into a fresh venv and uses it there, outside Bazel."""
import glob
import os
import subprocess
import sys
import sysconfig
import tempfile
import unittest
import zipfile

_RUNFILES = os.path.join(os.environ["TEST_SRCDIR"], os.environ["TEST_WORKSPACE"])


def _wheel_path():
  wheels = glob.glob(os.path.join(_RUNFILES, "monolith-*.whl"))
  assert len(wheels) == 1, wheels
  return wheels[0]


class WheelTest(unittest.TestCase):

  @classmethod
  def setUpClass(cls):
    cls.tmp = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
    cls.venv = os.path.join(cls.tmp, "venv")
    # No pip of its own: the project venv's (reached through the .pth below) installs into it,
    # and its bundled setuptools would shadow the pinned one.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", cls.venv], check=True)
    cls.python = os.path.join(cls.venv, "bin", "python")
    # Dependencies come from the project venv (the wheel is installed with --no-deps, no index).
    site = subprocess.run([cls.python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    with open(os.path.join(site, "project_venv.pth"), "w") as f:
      f.write(sysconfig.get_paths()["purelib"] + "\n")
    cls.env = {"PATH": os.path.join(cls.venv, "bin") + ":/usr/bin:/bin", "HOME": cls.tmp,
               "TF_CPP_MIN_LOG_LEVEL": "3"}
    cls.run_in_venv([cls.python, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
                     _wheel_path()])

  @classmethod
  def run_in_venv(cls, argv, **kwargs):
    result = subprocess.run(argv, capture_output=True, text=True, env=cls.env, cwd=cls.tmp,
                            **kwargs)
    if result.returncode != 0:
      raise AssertionError("{} exited with {}:\n{}\n{}".format(argv, result.returncode,
                                                                 result.stdout, result.stderr))
    return result

  def test_pip_check(self):
    output = self.run_in_venv([self.python, "-m", "pip", "check"]).stdout
    self.assertIn("No broken requirements", output)

  def test_metadata_pins_match_the_venv_requirements(self):
    with open(os.path.join(_RUNFILES, "tools", "requirements.in")) as f:
      pins = [l.strip() for l in f if l.strip() and not l.startswith("#")]
    with zipfile.ZipFile(_wheel_path()) as wheel:
      metadata = wheel.read("monolith-0.1.0.dist-info/METADATA").decode()
      self.assertIsNone(wheel.testzip())
    self.assertEqual([l[len("Requires-Dist: "):] for l in metadata.splitlines()
                      if l.startswith("Requires-Dist: ")], pins)

  def test_ops_load_and_run_from_the_installed_package(self):
    script = """
import os, monolith
import tensorflow as tf
from monolith.native_training import file_ops
from monolith.native_training.runtime.ops import gen_monolith_ops
assert "site-packages" in gen_monolith_ops.LIBRARY_PATH, gen_monolith_ops.LIBRARY_PATH
path = os.path.join(os.getcwd(), "out", "f.txt")
f = file_ops.WritableFile(path)
f.append("hello")
f.close()
print(open(path).read())
"""
    self.assertEqual(self.run_in_venv([self.python, "-c", script]).stdout.strip(), "hello")

  def test_two_builds_give_identical_bytes(self):
    # //tools:monolith_wheel_second_build runs the same wheel action again, separately: any
    # timestamp, ordering or permission leak would make the two differ.
    second = glob.glob(os.path.join(_RUNFILES, "tools", "monolith-*.whl"))
    self.assertEqual([os.path.basename(p) for p in second], [os.path.basename(_wheel_path())])
    with open(second[0], "rb") as a, open(_wheel_path(), "rb") as b:
      self.assertEqual(a.read(), b.read())


if __name__ == "__main__":
  unittest.main()
