"""`NestedMap`: a dict with attribute access, used to hold sub-layers and nested structures."""

import re

# Upstream matches only the start of the key (no end anchor); keys like 'a-b' are accepted.
_VALID_KEY_RE = re.compile(r'[A-Za-z_]')


class NestedMap(dict):
  """A simple helper to maintain a dict with attribute access (`m.foo` is `m['foo']`)."""

  _RESERVED_KEYS = frozenset(dir(dict))

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    for key in self.keys():
      NestedMap.CheckKey(key)

  def __setitem__(self, key, value):
    NestedMap.CheckKey(key)
    super().__setitem__(key, value)

  def setdefault(self, key, default=None):
    NestedMap.CheckKey(key)
    return super().setdefault(key, default)

  def update(self, *args, **kwargs):
    for key, value in dict(*args, **kwargs).items():
      self[key] = value

  def __setattr__(self, name, value):
    self[name] = value

  def __getattr__(self, name):
    try:
      return self[name]
    except KeyError as e:
      raise AttributeError('%s; available attributes: %s' % (e, sorted(self.keys())))

  def __delattr__(self, name):
    try:
      del self[name]
    except KeyError as e:
      raise AttributeError('%s; available attributes: %s' % (e, sorted(self.keys())))

  def copy(self) -> 'NestedMap':
    return NestedMap(self)

  def __deepcopy__(self, memo):
    return self.DeepCopy()

  def DeepCopy(self) -> 'NestedMap':
    """Copies the structure (NestedMaps and lists) but shares the leaves."""
    return self.Pack(self.Flatten())

  @staticmethod
  def FromNestedDict(x):
    """Converts every dict inside nested lists/tuples/dicts to a NestedMap."""
    if isinstance(x, dict):
      return NestedMap({k: NestedMap.FromNestedDict(v) for k, v in x.items()})
    if isinstance(x, (list, tuple)):
      return type(x)(NestedMap.FromNestedDict(v) for v in x)
    return x

  @staticmethod
  def CheckKey(key):
    assert isinstance(key, str), ('Key %r must be a string, got %s.' % (key, type(key)))
    if not _VALID_KEY_RE.match(key):
      raise ValueError("Invalid NestedMap key '{}'".format(key))
    assert key not in NestedMap._RESERVED_KEYS, '%s is a reserved key' % key

  def GetItem(self, key: str):
    current = self
    for k in key.split('.'):
      current = current[k]
    return current

  def Get(self, key: str, default=None):
    try:
      return self.GetItem(key)
    except (KeyError, TypeError):
      return default

  def Set(self, key: str, value):
    current = self
    sub_keys = key.split('.')
    for i, k in enumerate(sub_keys[:-1]):
      if k not in current:
        current[k] = NestedMap()
      current = current[k]
      if not isinstance(current, dict):
        raise ValueError('Error while setting key {}. Sub key "{}" is of type {} but must be a '
                         'dict or NestedMap.'.format(key, sub_keys[i], type(current)))
    current[sub_keys[-1]] = value

  def _RecursiveMap(self, fn, flatten=False):
    """Walks NestedMaps (sorted keys) and lists; `fn(key, leaf)` -> new leaf or `_DROP`."""

    def Recurse(v, key=''):
      if isinstance(v, NestedMap):
        items = []
        out = NestedMap()
        for k in sorted(v.keys()):
          child = Recurse(v[k], key + '.' + k if key else k)
          if child is not _DROP:
            out[k] = child
            items.extend(child if flatten else [])
        if not out and v:
          return _DROP
        return items if flatten else out
      if isinstance(v, list):
        items = []
        out = []
        for i, x in enumerate(v):
          child = Recurse(x, '%s[%d]' % (key, i))
          if child is not _DROP:
            out.append(child)
            items.extend(child if flatten else [])
        if not out and v:
          return _DROP
        return items if flatten else out
      result = fn(key, v)
      if flatten:
        return _DROP if result is _DROP else [result]
      return result

    result = Recurse(self)
    if result is _DROP:
      return [] if flatten else NestedMap()
    return result

  def Flatten(self):
    return self._RecursiveMap(lambda _, v: v, flatten=True)

  def FlattenItems(self):
    return self._RecursiveMap(lambda k, v: (k, v), flatten=True)

  def Pack(self, lst):
    assert len(self.FlattenItems()) == len(lst), (
        'Pack expects %d leaves, got %d' % (len(self.FlattenItems()), len(lst)))
    values = iter(lst)
    return self._RecursiveMap(lambda _, v: next(values))

  def Transform(self, fn):
    return self._RecursiveMap(lambda _, v: fn(v))

  def IsCompatible(self, other) -> bool:
    if not isinstance(other, NestedMap):
      return False
    return [k for k, _ in self.FlattenItems()] == [k for k, _ in other.FlattenItems()]

  def Filter(self, fn):
    return self.FilterKeyVal(lambda _, v: fn(v))

  def FilterKeyVal(self, fn):
    return self._RecursiveMap(lambda k, v: v if fn(k, v) else _DROP)

  def DebugString(self) -> str:
    items = self.FlattenItems()
    if not items:
      return ''
    width = max(len(k) for k, _ in items)
    return '\n'.join('%s%s %s' % (k, ' ' * (width - len(k)), v) for k, v in sorted(items))


# Sentinel for leaves removed by `Filter`.
_DROP = object()
