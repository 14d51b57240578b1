"""Parameter-sync clients handed to hash tables (only the dummy client is built here)."""
from monolith.native_training.runtime.ops import gen_monolith_ops


def create_dummy_sync_client():
  """A no-op parameter-sync client resource shared by every table of the graph."""
  return gen_monolith_ops.monolith_dummy_sync_client(shared_name="MonolithDummySyncClient")
