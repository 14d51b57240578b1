import json

from absl.testing import absltest

from monolith.agent_service.data_def import (Event, EventType, ModelMeta, ModelState, PublishMeta,
                                             PublishType, ReplicaMeta, ResourceSpec)
from monolith.native_training.net_utils import AddressFamily


class DataDefTest(absltest.TestCase):

  def serde(self, item):
    cls = item.__class__
    serialized = item.serialize()
    self.assertIsInstance(serialized, bytes)
    recom = cls.deserialize(serialized)
    self.assertEqual(item, recom)
    return serialized

  def test_model_info(self):
    mm = ModelMeta(model_name='monolith', num_shard=3, model_dir='/tmp/opt', ckpt='model.ckpt-1234')
    self.serde(mm)
    self.assertEqual(mm.get_path('/bzid/portal'), '/bzid/portal/monolith')
    self.assertEqual(
        ModelMeta().serialize(),
        b'{"model_name": null, "model_dir": null, "ckpt": null, "num_shard": -1, '
        b'"action": "NONE", "spec_replicas": []}')

  def test_resource(self):
    spec = ResourceSpec(address='localhost:123', shard_id=10, replica_id=2, memory=12345, cpu=3.5)
    self.assertEqual(
        self.serde(spec), b'{"address": "localhost:123", "shard_id": 10, "replica_id": 2, '
        b'"memory": 12345, "cpu": 3.5, "network": -1.0, "work_load": -1.0}')
    self.assertEqual(spec.get_path('/bzid/resource'), '/bzid/resource/10:2')

  def test_replica_meta(self):
    meta = ReplicaMeta(address='localhost:123', model_name='monolith', server_type='ps', task=0,
                       replica=0)
    self.serde(meta)
    self.assertEqual(meta.get_path('bzid'), '/bzid/service/monolith/ps:0/0')
    self.assertEqual(meta.stat, ModelState.UNKNOWN)
    decoded = json.loads(ReplicaMeta(stat=ModelState.AVAILABLE).serialize())
    self.assertEqual(decoded['stat'], 30)

  def test_replica_address(self):
    meta = ReplicaMeta(address='0.0.0.0:1', address_ipv6='[::1]:1', archon_address='1.2.3.4:2',
                       archon_address_ipv6='[::]:2')
    # wildcard addresses are not usable: fall back to the other family
    self.assertEqual(meta.get_address(), '[::1]:1')
    self.assertEqual(meta.get_address(address_family=AddressFamily.IPV6), '[::1]:1')
    self.assertEqual(meta.get_address(use_archon=True), '1.2.3.4:2')
    self.assertEqual(meta.get_address(use_archon=True, address_family=AddressFamily.IPV6),
                     '1.2.3.4:2')
    self.assertIsNone(ReplicaMeta().get_address())

  def test_publish_meta(self):
    pm = PublishMeta(shard_id=0, replica_id=1, model_name='m', num_ps=2, total_publish_num=2,
                     sub_models={'entry': '/p/entry/1', 'ps_0': '/p/ps_0/1'},
                     ptype=PublishType.UNLOAD, is_spec=True)
    self.assertEqual(
        self.serde(pm), b'{"shard_id": 0, "replica_id": 1, "model_name": "m", "num_ps": 2, '
        b'"total_publish_num": 2, "sub_models": {"entry": "/p/entry/1", "ps_0": "/p/ps_0/1"}, '
        b'"ptype": 2, "is_spec": true}')
    self.assertEqual(pm.get_path('/bzid/publish'), '/bzid/publish/0:1:m')
    self.assertEqual(PublishMeta.deserialize(b'{"model_name": "x"}').ptype, PublishType.LOAD)

  def test_event(self):
    event = Event(path='/bzid/portal/m', data=ModelMeta(model_name='m').serialize(),
                  etype=EventType.PORTAL)
    self.serde(event)
    self.assertIs(EventType.UNKNOWN, EventType.PORTAL)
    self.assertEqual(json.loads(event.serialize())['etype'], 1)

  def test_bad_input(self):
    with self.assertRaises(ValueError):
      ModelMeta.deserialize(b'{not json')
    with self.assertRaises(UnicodeDecodeError):
      ModelMeta.deserialize(b'\xff\xfe')


if __name__ == '__main__':
  absltest.main()
