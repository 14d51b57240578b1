"""Per-graph metadata objects, kept in one dict in graph collection "monolith_graph_meta"."""
from typing import Any, Callable

import tensorflow as tf

_GRAPH_META_KEY = "monolith_graph_meta"


def get_meta(key: str, factory: Callable[[], Any]) -> Any:
  """Returns the default graph's metadata object `key`, creating it with `factory()` once."""
  collection = tf.compat.v1.get_default_graph().get_collection_ref(_GRAPH_META_KEY)
  if not collection:
    collection.append({})
  meta = collection[0]
  if key not in meta:
    meta[key] = factory()
  return meta[key]
