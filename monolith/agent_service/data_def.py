"""Documents the serving agent stores in ZooKeeper (JSON via dataclasses_json).

Field order and defaults are the wire format: agents compare stored bytes with freshly serialized
ones, so do not reorder fields.
"""

import os
from dataclasses import dataclass, field
from enum import Enum
from typing import Dict, List, NewType, Optional

from dataclasses_json import dataclass_json
from tensorflow_serving.apis.get_model_status_pb2 import ModelVersionStatus
from tensorflow_serving.apis.status_pb2 import StatusProto

from monolith.agent_service.json_serde import JsonSerde
from monolith.native_training.net_utils import AddressFamily

ModelState = ModelVersionStatus.State
ModelName = NewType('ModelName', str)
SubModelName = NewType('SubModelName', str)
SubModelSize = NewType('SubModelSize', int)
TFSModelName = NewType('TFSModelName', str)
VersionPath = NewType('VersionPath', str)
EmptyStatus = StatusProto()


@dataclass_json
@dataclass
class ModelMeta(JsonSerde):
  model_name: Optional[str] = None
  model_dir: Optional[str] = None
  ckpt: Optional[str] = None
  num_shard: int = -1
  action: str = 'NONE'
  spec_replicas: List[int] = field(default_factory=list)

  def get_path(self, base_path: str) -> str:
    return os.path.join(base_path, self.model_name)


@dataclass_json
@dataclass
class ResourceSpec(JsonSerde):
  address: Optional[str] = None
  shard_id: Optional[int] = None
  replica_id: Optional[int] = None
  memory: Optional[int] = None
  cpu: float = -1.0
  network: float = -1.0
  work_load: float = -1.0

  def get_path(self, base_path: str) -> str:
    return os.path.join(base_path, '{}:{}'.format(self.shard_id, self.replica_id))


class PublishType(Enum):
  LOAD = 1
  UNLOAD = 2


@dataclass_json
@dataclass
class PublishMeta(JsonSerde):
  shard_id: Optional[int] = None
  replica_id: int = -1
  model_name: Optional[str] = None
  num_ps: Optional[int] = None
  total_publish_num: int = 1
  sub_models: Dict[SubModelName, VersionPath] = None
  ptype: PublishType = PublishType.LOAD
  is_spec: bool = False

  def get_path(self, base_path: str) -> str:
    return os.path.join(base_path,
                        '{}:{}:{}'.format(self.shard_id, self.replica_id, self.model_name))


def _valid(address: str, invalid_prefix: str):
  if address is None or address.startswith(invalid_prefix):
    return None
  return address


@dataclass_json
@dataclass
class ReplicaMeta(JsonSerde):
  address: Optional[str] = None
  address_ipv6: Optional[str] = None
  stat: int = ModelState.UNKNOWN
  model_name: Optional[str] = None
  server_type: Optional[str] = None
  task: int = -1
  replica: int = -1
  archon_address: Optional[str] = None
  archon_address_ipv6: Optional[str] = None

  def get_path(self, bzid: str, sep: str = '/') -> str:
    return sep.join([
        '', bzid, 'service', self.model_name, '{}:{}'.format(self.server_type, self.task),
        str(self.replica)
    ])

  def get_address(self, use_archon: bool = False, address_family: str = AddressFamily.IPV4):
    if use_archon:
      ipv4, ipv6 = self.archon_address, self.archon_address_ipv6
    else:
      ipv4, ipv6 = self.address, self.address_ipv6
    # Wildcard binds are not reachable addresses.
    ipv4 = _valid(ipv4, '0.0.0.0')
    ipv6 = _valid(ipv6, '[::]')
    if address_family == AddressFamily.IPV4:
      return ipv4 if ipv4 is not None else ipv6
    return ipv6 if ipv6 is not None else ipv4


class EventType(Enum):
  PORTAL = 1
  SERVICE = 2
  PUBLISH = 3
  RESOURCE = 4
  UNKNOWN = 1  # an alias of PORTAL, as upstream


@dataclass_json
@dataclass
class Event(JsonSerde):
  path: Optional[str] = None
  data: bytes = b''
  etype: EventType = EventType.UNKNOWN
