"""MLPEnv: the task's role, index, resources and peers, as the MLP scheduler exports them."""

import os
from typing import Dict, List, Optional

from absl import logging

from monolith.native_training import yarn_runtime

_DEFAULT_PORT = 2222


class MLPEnv(object):
  """A snapshot of the MLP_*/MPI_* environment taken at construction."""

  def __init__(self):
    self._mlp_envs = {
        k: v for k, v in os.environ.items() if k.startswith('MLP_') or k.startswith('MPI_')
    }
    self.framework = self._get('MLP_FRAMEWORK')
    self.ssh_port = self._get('MLP_SSH_PORT')
    self.log_path = self._get('MLP_LOG_PATH')
    self.debug_port = self._get('MLP_DEBUG_PORT')
    self.entrypoint_dir = self._get('MLP_ENTRYPOINT_DIR')
    self.task_cmd = self._get('MLP_TASK_CMD')
    self.role = (self._get('MLP_ROLE') or '').upper()
    # MLP_<ROLE>_NUM (exactly three '_' parts) -> number of replicas of that role.
    self.all_roles: Dict[str, int] = {}
    for key, value in self._mlp_envs.items():
      parts = key.split('_')
      if key.endswith('_NUM') and len(parts) == 3:
        self.all_roles[parts[1]] = int(self._get(key))
    self.cpu = self._get('MLP_CPU')
    self.gpu = self._get('MLP_GPU')
    self.gpu_type = self._get('MLP_GPU_TYPE')
    self.mem = self._get('MLP_MEM')
    self.host = yarn_runtime.get_local_host()
    assert self.host, 'no local host address (CLOUDNATIVE_INET_ADDR, YARN_INET_ADDR or a NIC)'
    # `avaiable` (sic) is the upstream attribute name.
    self.avaiable = bool(self._mlp_envs) and bool(self.all_roles)

    if self.enable_mpi:
      rank = os.environ.get('OMPI_COMM_WORLD_RANK')
      if rank is None or not rank.strip():
        logging.warning('OMPI_COMM_WORLD_RANK is empty, using index 0')
        rank = '0'
      self.index = int(rank)
      self.all_roles['WORKER'] = int(os.environ.get('OMPI_COMM_WORLD_SIZE') or 1)
      self.port = int(self._get('MLP_PORT', 0)) + self.index
    else:
      self.index = int(self._get('MLP_ROLE_INDEX', 0))
      self.port = int(self._get('MLP_PORT', 0))

  def _get(self, name: str, default=None):
    value = self._mlp_envs.get(name)
    if value is None:
      return default
    value = value.strip().strip('"').strip("'")
    return value if value else default

  @property
  def enable_mpi(self) -> bool:
    return 'OMPI_COMM_WORLD_RANK' in os.environ and self.role == 'WORKER'

  def num_replicas(self, role: Optional[str] = None) -> int:
    return self.all_roles.get((role or self.role).upper(), 0)

  def get_all_addrs(self, role: Optional[str] = None, is_primary: bool = True) -> List[str]:
    role = (role or self.role).upper()
    key = 'MLP_{}_ALL_PRIMARY_ADDRS'.format(role) if is_primary else 'MLP_{}_ALL_ADDRS'.format(role)
    addrs = self._get(key)
    return addrs.split(',') if addrs else []

  def get_all_host(self, role: Optional[str] = None, is_primary: bool = True) -> List[str]:
    return [addr.rsplit(':', 1)[0] for addr in self.get_all_addrs(role, is_primary)]

  def get_host(self, role: Optional[str] = None, index: Optional[int] = None,
               is_primary: bool = True) -> Optional[str]:
    role = (role or self.role).upper()
    index = self.index if index is None else index
    key = 'MLP_{}_{}_{}HOST'.format(role, index, 'PRIMARY_' if is_primary else '')
    return self._get(key)

  def get_port(self, role: Optional[str] = None, index: Optional[int] = None) -> int:
    role = (role or self.role).upper()
    index = self.index if index is None else index
    return int(self._get('MLP_{}_{}_PORT'.format(role, index), _DEFAULT_PORT))

  def get_addr(self, role: Optional[str] = None, index: Optional[int] = None,
               is_primary: bool = True) -> Optional[str]:
    host = self.get_host(role, index, is_primary)
    if host is None:
      return None
    return '{}:{}'.format(host, self.get_port(role, index))
