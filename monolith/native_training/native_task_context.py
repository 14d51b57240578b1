"""The process-wide description of this training task (cluster shape, model name)."""

import contextlib
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:  # imported for the annotation only: the agent backends pull in ZooKeeper.
  from monolith.agent_service.backends import SyncBackend


class NativeTaskContext(NamedTuple):
  num_ps: int
  ps_index: int
  num_workers: int
  worker_index: int
  model_name: str
  sync_backend: "SyncBackend"
  server_type: str


_CTX = None


@contextlib.contextmanager
def with_ctx(ctx: NativeTaskContext):
  """Makes `ctx` current. On exit a previous context is restored; when there was none, `ctx`
  stays current (upstream semantics: the outermost context is never cleared)."""
  global _CTX
  old_ctx = _CTX
  _CTX = ctx
  try:
    yield
  finally:
    if old_ctx is not None:
      _CTX = old_ctx


def get() -> NativeTaskContext:
  if _CTX is None:
    return NativeTaskContext(num_ps=0,
                             ps_index=0,
                             num_workers=1,
                             worker_index=0,
                             server_type="",
                             model_name="",
                             sync_backend=None)
  return _CTX
