"""On import: turns SIGHUP/SIGINT/SIGTERM into a normal interpreter exit and, at exit, emits an
`exit_hook` counter tagged with this task and the signal that ended it."""

import atexit
import signal
import sys

from monolith.native_training import native_task_context
from monolith.native_training import utils
from monolith.native_training.metric import cli

sig_no = None


def sig_handler(signo, frame):
  global sig_no
  sig_no = signo
  sys.exit(signo)


signal.signal(signal.SIGHUP, sig_handler)
signal.signal(signal.SIGINT, sig_handler)
signal.signal(signal.SIGTERM, sig_handler)


@atexit.register
def exit_hook():
  ctx = native_task_context.get()
  mcli = cli.get_cli(utils.get_metric_prefix())
  index = ctx.worker_index if ctx.server_type == 'worker' else ctx.ps_index
  tags = {'server_type': ctx.server_type, 'index': str(index), 'sig': str(sig_no)}
  if sig_no is not None:
    mcli.emit_counter("exit_hook", 1, tags)
