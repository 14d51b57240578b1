"""Runs a child process that imports exit_hook with a recording metrics client, signals it and
checks the counter it emitted on the way out."""

import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import unittest

_CHILD = textwrap.dedent("""
    import json, sys, time
    from monolith.native_training import native_task_context
    from monolith.native_training.metric import cli
    from monolith.native_training.metric import exit_hook

    out_path, server_type = sys.argv[1], sys.argv[2]

    class RecordingClient(object):
      def __init__(self, prefix):
        self.prefix = prefix
      def emit_counter(self, name, value, tags):
        with open(out_path, "a") as f:
          f.write(json.dumps({"prefix": self.prefix, "name": name, "value": value,
                              "tags": tags}) + "\\n")

    cli.get_cli = lambda prefix, *args, **kwargs: RecordingClient(prefix)
    ctx = native_task_context.NativeTaskContext(num_ps=2, ps_index=1, num_workers=3,
                                                worker_index=2, model_name="m",
                                                sync_backend=None, server_type=server_type)
    with native_task_context.with_ctx(ctx):
      pass  # the outermost context stays current
    print("ready", flush=True)
    if sys.argv[3] == "wait":
      time.sleep(120)
""")


class ExitHookTest(unittest.TestCase):

  def _run_child(self, server_type, mode, sig=None, env=None):
    out_path = os.path.join(tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR")), "metrics")
    child_env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    child_env.pop("MONOLITH_METRIC_PREFIX", None)
    child_env.update(env or {})
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, out_path, server_type, mode],
                            stdout=subprocess.PIPE,
                            env=child_env,
                            text=True)
    self.assertEqual(proc.stdout.readline().strip(), "ready")
    if sig is not None:
      proc.send_signal(sig)
    returncode = proc.wait(timeout=60)
    proc.stdout.close()
    records = []
    if os.path.exists(out_path):
      with open(out_path) as f:
        records = [json.loads(line) for line in f]
    return returncode, records

  def test_sigterm_on_worker(self):
    returncode, records = self._run_child("worker", "wait", signal.SIGTERM)
    self.assertEqual(returncode, int(signal.SIGTERM))  # sys.exit(signo)
    self.assertEqual(records, [{
        "prefix": "monolith.training",
        "name": "exit_hook",
        "value": 1,
        "tags": {"server_type": "worker", "index": "2", "sig": str(int(signal.SIGTERM))},
    }])

  def test_sighup_on_ps_uses_ps_index_and_metric_prefix(self):
    returncode, records = self._run_child("ps", "wait", signal.SIGHUP,
                                          env={"MONOLITH_METRIC_PREFIX": "custom.prefix"})
    self.assertEqual(returncode, int(signal.SIGHUP))
    self.assertEqual(len(records), 1)
    self.assertEqual(records[0]["prefix"], "custom.prefix")
    self.assertEqual(records[0]["tags"], {
        "server_type": "ps",
        "index": "1",
        "sig": str(int(signal.SIGHUP))
    })

  def test_sigint(self):
    returncode, records = self._run_child("worker", "wait", signal.SIGINT)
    self.assertEqual(returncode, int(signal.SIGINT))
    self.assertEqual(records[0]["tags"]["sig"], str(int(signal.SIGINT)))

  def test_normal_exit_emits_nothing(self):
    returncode, records = self._run_child("worker", "exit")
    self.assertEqual(returncode, 0)
    self.assertEqual(records, [])


if __name__ == "__main__":
  unittest.main()
