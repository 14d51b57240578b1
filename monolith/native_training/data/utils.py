"""Slot <-> feature-name helpers shared by the data pipeline and serving tools."""

import threading
from typing import Dict, List, Optional, Union

TOBENV = False
USED_FREATUE_NAMES = {}  # (sic) upstream spelling; name -> process-local slot id.
NAME_TO_SLOT = {}

_LOCK = threading.Lock()


def enable_tob_env():
  """Switches slot feature names to the TOB (`fc_slot_<n>`) scheme, process-wide."""
  global TOBENV
  TOBENV = True


def get_slot_feature_name(slot: int) -> str:
  return 'fc_slot_{}'.format(slot) if TOBENV else 'slot_{}'.format(slot)


def get_slot_from_feature_name(feature_name: str) -> Optional[int]:
  if feature_name in NAME_TO_SLOT:
    return NAME_TO_SLOT[feature_name]
  if feature_name.startswith('slot_') or feature_name.startswith('fc_slot_'):
    suffix = feature_name.split('_')[-1]
    return int(suffix) if suffix.isdigit() else None
  # Unknown names still need a stable slot within this process: hand them out
  # incrementally in first-seen order.
  with _LOCK:
    if feature_name not in USED_FREATUE_NAMES:
      USED_FREATUE_NAMES[feature_name] = len(USED_FREATUE_NAMES) + 1
    return USED_FREATUE_NAMES[feature_name]


def register_slots(sparse_features: Union[List[int], Dict[str, int]]):
  if isinstance(sparse_features, dict):
    NAME_TO_SLOT.update(sparse_features)
  else:
    for slot in sparse_features:
      NAME_TO_SLOT[get_slot_feature_name(slot)] = slot
