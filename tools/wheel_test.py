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

  @classmethod
  def run_in_venv_any_rc(cls, argv):
    result = subprocess.run(argv, capture_output=True, text=True, env=cls.env, cwd=cls.tmp)
    return result.stdout + result.stderr

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

  def test_console_scripts_print_help(self):
    expected_flag = {"monolith-agent": "--conf", "monolith-agent-client": "--cmd_type",
                     "monolith-agent-controller": "--cmd", "monolith-serving-client": "--cmd_type",
                     "monolith-tfs-client": "--cmd_type"}
    for script, flag in expected_flag.items():
      # absl's --help prints the flags and exits with 1, so the exit status says nothing here.
      output = self.run_in_venv_any_rc([os.path.join(self.venv, "bin", script), "--help"])
      self.assertNotIn("Traceback", output, script)
      self.assertIn(flag, output, script)

  def test_agent_service_scenario_on_fake_zookeeper(self):
    # Replicas registered in a FakeKazooClient tree are served over loopback gRPC by the
    # installed AgentService, as an agent would serve them.
    script = """
import os, time
os.environ.update(MY_HOST_IP="127.0.0.1", TCE_INTERNAL_IDC="lf", TCE_LOGICAL_CLUSTER="default")
from monolith.agent_service.agent_service import AgentService
from monolith.agent_service.agent_service_pb2 import ServerType
from monolith.agent_service.data_def import ModelState, ReplicaMeta
from monolith.agent_service.mocked_zkclient import FakeKazooClient
from monolith.agent_service.replica_manager import ReplicaWatcher
from monolith.agent_service.svr_client import SvrClient
from monolith.agent_service.utils import AgentConfig

zk = FakeKazooClient()
zk.start()
conf = AgentConfig(bzid="wheel", base_name="m", deploy_type="ps", base_path="/wheel/m/saved_models",
                   num_ps=2, dc_aware=True, platform_config_file=os.path.abspath("platform.cfg"))
for task in range(2):
  meta = ReplicaMeta(address="10.0.0.{}:9000".format(task), stat=ModelState.AVAILABLE)
  zk.create("{}/ps:{}/0".format(conf.path_prefix, task), meta.serialize(), ephemeral=True,
            makepath=True)
watcher = ReplicaWatcher(zk, conf)
watcher.watch_data()
service = AgentService(watcher, port=conf.agent_port)
service.start()
try:
  client = SvrClient(conf)
  deadline = time.time() + 30
  while len(client.heart_beat(server_type=ServerType.PS).addresses) < 2:
    assert time.time() < deadline, "the agent service never saw both ps tasks"
    time.sleep(0.1)
  print(sorted(client.get_replicas(server_type=ServerType.PS, task=1).address_list.address))
finally:
  service.stop(0)
  watcher.stop()
  zk.stop()
"""
    output = self.run_in_venv([self.python, "-c", script]).stdout
    self.assertEqual(output.strip().splitlines()[-1], "['10.0.0.1:9000']")

  def test_two_builds_give_identical_bytes(self):
    # //tools:monolith_wheel_second_build runs the same wheel action again, separately: any
    # timestamp, ordering or permission leak would make the two differ.
    second = glob.glob(os.path.join(_RUNFILES, "tools", "monolith-*.whl"))
    self.assertEqual([os.path.basename(p) for p in second], [os.path.basename(_wheel_path())])
    with open(second[0], "rb") as a, open(_wheel_path(), "rb") as b:
      self.assertEqual(a.read(), b.read())


if __name__ == "__main__":
  unittest.main()
