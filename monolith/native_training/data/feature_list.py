"""Parser and lookup table for Monolith `feature_list.conf` files.

File grammar (one entry per line): blank lines and `#` comments are skipped;
`column_name: a, b` lists column names; `cache_column: X` declares a cache
column; every other line is whitespace-separated `key=value` pairs and becomes a
`Feed` (line starts with `feed`), a `Cache` (starts with `cache`) or a `Feature`.
"""

import dataclasses
import inspect
import re
import threading
from typing import Dict, List, Optional, Set

from absl import flags
from absl import logging
import tensorflow as tf

from monolith.native_training.data.utils import get_slot_feature_name
from monolith.native_training.data.utils import get_slot_from_feature_name

FLAGS = flags.FLAGS

_TRUTHY = {'true', 'yes', 't', 'y', '1'}


def _to_bool(value) -> bool:
  if value is None:
    return False
  if isinstance(value, str):
    return value.strip().lower() in _TRUTHY
  return bool(value)


def _to_int(value):
  if isinstance(value, str):
    return int(value.strip())
  return value


def _to_list(value):
  if isinstance(value, str):
    return [item.strip().strip('\'"') for item in value.split(',')]
  return value


def _strip_term_prefixes(name: str, strip_f: bool) -> str:
  terms = []
  for term in name.split('-'):
    if term.startswith('fc_'):
      term = term[3:]
    elif strip_f:
      term = term[2:]
    terms.append(term)
  return '-'.join(terms).lower()


@dataclasses.dataclass
class Feed:
  feed_name: Optional[str] = None
  shared: Optional[bool] = None
  feature_id: Optional[int] = None

  def __post_init__(self):
    self.shared = _to_bool(self.shared)
    self.feature_id = _to_int(self.feature_id)

  @property
  def name(self):
    return self.feed_name


@dataclasses.dataclass
class Cache:
  cache_column: Optional[str] = None
  cache_name: Optional[str] = None
  capacity: Optional[int] = None
  timeout: Optional[int] = None
  cache_type: Optional[str] = None
  cache_key_class: Optional[str] = None

  def __post_init__(self):
    self.capacity = _to_int(self.capacity)
    self.timeout = _to_int(self.timeout)

  @property
  def name(self):
    if self.cache_name:
      return self.cache_name
    if self.cache_key_class:
      return self.cache_key_class
    if self.cache_column:
      return 'cache_column'
    raise Exception('no name for cache')


@dataclasses.dataclass
class Feature:
  feature_name: Optional[str] = None
  depend: Optional[List[str]] = None
  method: Optional[str] = None
  slot: Optional[int] = None
  args: Optional[List[str]] = None
  feature_version: Optional[int] = None
  shared: bool = False
  cache_keys: Optional[List[str]] = None
  need_raw: bool = False
  feature_id: Optional[int] = None
  input_optional: Optional[List[bool]] = None
  feature_group: Optional[List[str]] = None

  def __post_init__(self):
    self.depend = _to_list(self.depend)
    self.args = _to_list(self.args)
    self.cache_keys = _to_list(self.cache_keys)
    self.feature_group = _to_list(self.feature_group)
    if isinstance(self.input_optional, str):
      self.input_optional = [
          item == 'true' for item in _to_list(self.input_optional)
      ]
    self.slot = _to_int(self.slot)
    self.feature_id = _to_int(self.feature_id)
    self.feature_version = _to_int(self.feature_version)
    self.shared = _to_bool(self.shared)
    self.need_raw = _to_bool(self.need_raw)

  @property
  def name(self) -> str:
    return _strip_term_prefixes(self.feature_name,
                                self.feature_name.startswith('f_'))

  @property
  def depend_strip_prefix(self) -> List[str]:
    result = []
    for dep in self.depend or []:
      terms = []
      for term in dep.split('-'):
        if term.startswith('fc_'):
          term = term[3:]
        elif term.startswith('f_'):
          term = term[2:]
        terms.append(term)
      result.append('-'.join(terms).lower())
    return result

  def __str__(self):
    items = []
    for field in dataclasses.fields(self):
      value = getattr(self, field.name)
      if value is None:
        continue
      if isinstance(value, bool):
        if value:
          items.append('{}=true'.format(field.name))
        continue
      if isinstance(value, list):
        value = ','.join(
            str(v).lower() if isinstance(v, bool) else str(v) for v in value)
      items.append('{}={}'.format(field.name, value))
    return ';'.join(items)


def _parse_key_values(line: str) -> Dict[str, str]:
  """Splits `k1=v1 k2=v2 ...`; only the last value may contain spaces."""
  parts = line.split('=')
  if len(parts) < 2:
    raise ValueError('no key=value pair in line: {!r}'.format(line))
  key = parts[0].split()[-1] if parts[0].split() else ''
  result = {}
  for i, segment in enumerate(parts[1:], start=1):
    if i == len(parts) - 1:
      value, next_key = segment, None
    else:
      segment = segment.rstrip()
      match = re.match(r'^(.*)\s(\S+)$', segment, re.S)
      if match:
        value, next_key = match.group(1), match.group(2)
      else:
        value, next_key = '', segment
    result[key] = value.strip().rstrip(',;').strip()
    key = next_key
  return result


def _constructor_kwargs(cls, kv: Dict[str, str]) -> Dict[str, str]:
  params = inspect.signature(cls).parameters
  return {k: v for k, v in kv.items() if k in params}


class FeatureList:
  """Features of a model, indexed by name and by slot."""

  _cache: Dict[str, 'FeatureList'] = {}
  _lock = threading.Lock()

  def __init__(self, column_name: Set[str], feeds: Dict[str, Feed],
               caches: Dict[str, Cache], features: Dict[str, Feature]):
    self.column_name = column_name
    self.feeds = feeds
    self.caches = caches
    self.features = features
    self._slots: Dict[int, List[Feature]] = {}
    for feature in features.values():
      self._slots.setdefault(feature.slot, []).append(feature)
    tf.compat.v1.add_to_collection('feature_list', self)

  def _lookup_key(self, name: str) -> Optional[str]:
    candidates = [name, 'f_' + name, 'fc_' + name]
    if '-' in name:
      terms = name.split('-')
      candidates.append('-'.join('fc_' + t for t in terms))
      candidates.append('-'.join('f_' + t for t in terms))
    for key in candidates:
      if key in self.features:
        return key
    return None

  def __getitem__(self, item) -> Feature:
    if isinstance(item, int):
      features = self._slots.get(item)
      if not features:
        raise Exception('there is no feature {}'.format(item))
      return features[0]
    name = item.strip()
    key = self._lookup_key(name)
    if key is None:
      raise Exception('there is no feature {}'.format(name))
    return self.features[key]

  def get(self, item, default=None):
    try:
      return self[item]
    except Exception:  # pylint: disable=broad-except
      return default

  def get_with_slot(self, slot: int) -> List[Feature]:
    return list(self._slots.get(slot, []))

  def __len__(self):
    return len(self.features)

  def __contains__(self, item):
    if isinstance(item, int):
      return item in self._slots
    return any(
        key in self.features for key in (item, 'f_' + item, 'fc_' + item))

  def __iter__(self):
    return iter(self.features.values())

  @classmethod
  def parse(cls, fname: Optional[str] = None, use_old_name: bool = True):
    if fname is None and 'feature_list' in FLAGS:
      fname = FLAGS['feature_list'].value
    assert fname is not None, 'feature_list file is not given'
    # Parsed lists are cached per file name only (upstream behaviour), so the
    # first call's `use_old_name` decides the keys for later callers too.
    with cls._lock:
      if fname in cls._cache:
        return cls._cache[fname]
      column_name, feeds, caches, features = set(), {}, {}, {}
      with tf.io.gfile.GFile(fname, 'r') as stream:
        for raw_line in stream:
          line = raw_line.strip()
          if not line or line.startswith('#'):
            continue
          try:
            if line.startswith('column_name:'):
              column_name = {
                  name.strip()
                  for name in line[len('column_name:'):].split(',')
                  if name.strip()
              }
            elif line.startswith('cache_column:'):
              cache = Cache(cache_column=line[len('cache_column:'):].strip())
              caches[cache.name] = cache
            else:
              kv = _parse_key_values(line)
              if line.startswith('feed'):
                feed = Feed(**_constructor_kwargs(Feed, kv))
                feeds[feed.name] = feed
              elif line.startswith('cache'):
                cache = Cache(**_constructor_kwargs(Cache, kv))
                caches[cache.name] = cache
              else:
                feature = Feature(**_constructor_kwargs(Feature, kv))
                key = feature.feature_name if use_old_name else feature.name
                features[key] = feature
          except Exception:
            logging.error('bad line in %s: %s', fname, line)
            raise
      feature_list = cls(column_name, feeds, caches, features)
      cls._cache[fname] = feature_list
      return feature_list


def get_feature_name_and_slot(item):
  """Returns `(feature_name, slot)` for a slot, a feature name or a column."""
  if isinstance(item, int):
    try:
      return FeatureList.parse().get(item).feature_name, item
    except Exception:  # pylint: disable=broad-except
      return get_slot_feature_name(item), item
  if isinstance(item, str):
    try:
      feature_list = FeatureList.parse()
      assert item in feature_list
      return item, feature_list[item].slot
    except Exception:  # pylint: disable=broad-except
      return item, get_slot_from_feature_name(item)
  assert hasattr(item, 'feature_name') and hasattr(item, 'feature_slot'), (
      'cannot get feature name and slot from {!r}'.format(item))
  return item.feature_name, item.feature_slot
