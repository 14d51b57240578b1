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

  def test_wheel_assembly_is_deterministic(self):
    # Re-assembling the wheel's own contents must reproduce it byte for byte (fixed timestamps,
    # sorted entries, normalised permissions).
    workdir = os.path.join(self.tmp, "rebuild")
    manifest = os.path.join(self.tmp, "manifest")
    with zipfile.ZipFile(_wheel_path()) as wheel:
      wheel.extractall(workdir)
      names = [n for n in wheel.namelist() if ".dist-info/" not in n]
      entry_points = wheel.read("monolith-0.1.0.dist-info/entry_points.txt").decode() if (
          "monolith-0.1.0.dist-info/entry_points.txt" in wheel.namelist()) else ""
    with open(manifest, "w") as f:
      for name in names:
        f.write("{}\t{}\n".format(name, os.path.join(workdir, name)))
    scripts = []
    for line in entry_points.splitlines()[1:]:
      if line.strip():
        scripts += ["--console_script", line.replace(" = ", "=")]
    output = os.path.join(self.tmp, os.path.basename(_wheel_path()))
    tag = os.path.basename(_wheel_path())[:-len(".whl")].split("-", 2)[2]
    subprocess.run([sys.executable, os.path.join(_RUNFILES, "tools", "build_wheel.py"),
                    "--output", output, "--manifest", manifest, "--distribution", "monolith",
                    "--version", "0.1.0", "--tag", tag, "--summary",
                    self._metadata_field("Summary"), "--requirements",
                    os.path.join(_RUNFILES, "tools", "requirements.in"), "--package", "idl",
                    "--package", "monolith"] + scripts, check=True)
    with open(output, "rb") as a, open(_wheel_path(), "rb") as b:
      self.assertEqual(a.read(), b.read())

  def _metadata_field(self, field):
    with zipfile.ZipFile(_wheel_path()) as wheel:
      for line in wheel.read("monolith-0.1.0.dist-info/METADATA").decode().splitlines():
        if line.startswith(field + ": "):
          return line[len(field) + 2:]
    raise KeyError(field)


if __name__ == "__main__":
  unittest.main()
