"""Bytes <-> dataclass for the JSON documents agents keep in ZooKeeper."""


class JsonSerde(object):
  """Mixed into a @dataclass_json dataclass, which supplies to_json/from_json."""

  def serialize(self) -> bytes:
    return self.to_json().encode('utf-8')

  @classmethod
  def deserialize(cls, serialized: bytes):
    return cls.from_json(serialized.decode('utf-8'))
