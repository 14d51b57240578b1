import os
import re
from unittest import mock

from absl.testing import absltest
from google.protobuf import text_format
import grpc
from tensorflow.core.framework import types_pb2
from tensorflow_serving.config import platform_config_pb2

from idl.matrix.proto import proto_parser_pb2
from monolith.agent_service import constants, tfs_platform_protos, utils
from monolith.agent_service.utils import (AgentConfig, ConfError, DeployType, InstanceFormater,
                                          ModelVersionStatus, TFSServerType, ZKPath)

CONF = 'monolith/agent_service/agent.conf'
TEST_DATA = 'monolith/agent_service/test_data'


class ServingUtilsTest(absltest.TestCase):

  @classmethod
  def setUpClass(cls):
    os.environ['MY_HOST_IP'] = '127.0.0.1'

  def setUp(self):
    self.tmp = self.create_tempdir()
    # AgentConfig writes the platform config on construction; keep it out of /opt in tests.
    patcher = mock.patch.object(utils, 'DEFAULT_PLATFORM_CONFIG_FILE',
                                os.path.join(self.tmp.full_path, 'platform_config_file.cfg'))
    patcher.start()
    self.addCleanup(patcher.stop)

  def write_conf(self, text: str) -> str:
    return self.tmp.create_file('agent.conf', content=text).full_path

  def test_gen_model_spec(self):
    spec = utils.gen_model_spec('model', 1, 'predict')
    self.assertEqual(spec.name, 'model')
    self.assertEqual(spec.version.value, 1)
    self.assertEqual(spec.signature_name, 'predict')
    spec = utils.gen_model_spec('model', 'stable')
    self.assertEqual(spec.version_label, 'stable')
    self.assertFalse(spec.HasField('version'))

  def test_gen_model_config(self):
    config = utils.gen_model_config('model', base_path='/tmp/model', version_data=2,
                                    version_labels={'stable': 1})
    self.assertEqual(config.name, 'model')
    self.assertEqual(config.base_path, '/tmp/model')
    self.assertEqual(config.model_platform, 'tensorflow')
    self.assertEqual(config.model_version_policy.latest.num_versions, 2)
    self.assertEqual(dict(config.version_labels), {'stable': 1})
    config = utils.gen_model_config('m', '/p', version_policy='specific', version_data=[3, 4])
    self.assertEqual(list(config.model_version_policy.specific.versions), [3, 4])
    config = utils.gen_model_config('m', '/p', version_policy='specific', version_data=7)
    self.assertEqual(list(config.model_version_policy.specific.versions), [7])
    config = utils.gen_model_config('m', '/p', version_policy='all')
    self.assertEqual(config.model_version_policy.WhichOneof('policy_choice'), 'all')
    config = utils.gen_model_config('m', '/p', version_policy='latest_once')
    self.assertEqual(config.model_version_policy.latest.num_versions, 1)
    with self.assertRaisesRegex(ValueError, "version_policy 'newest' is not supported"):
      utils.gen_model_config('m', '/p', version_policy='newest')

  def test_default_model_config(self):
    self.assertEqual(utils.DEFAULT_MODEL_CONFIG.name, 'default')
    self.assertEqual(utils.DEFAULT_MODEL_CONFIG.base_path,
                     '/opt/tiger/monolith_serving/dat/saved_models/entry')

  def test_gen_status_proto(self):
    status = utils.gen_status_proto(utils.ErrorCode.CANCELLED, 'CANCELLED')
    self.assertEqual(status.error_code, utils.ErrorCode.CANCELLED)
    self.assertEqual(status.error_message, 'CANCELLED')

  def test_gen_model_version_status(self):
    status = utils.gen_model_version_status(version=1, state=ModelVersionStatus.State.START,
                                            error_code=utils.ErrorCode.NOT_FOUND,
                                            error_message='NOT_FOUND')
    self.assertEqual(status.version, 1)
    self.assertEqual(status.state, ModelVersionStatus.State.START)
    self.assertEqual(status.status.error_code, utils.ErrorCode.NOT_FOUND)
    self.assertEqual(status.status.error_message, 'NOT_FOUND')

  def test_latest_version_status(self):
    State = ModelVersionStatus.State
    statuses = [utils.gen_model_version_status(v, state) for v, state in
                ((3, State.LOADING), (1, State.AVAILABLE), (2, State.AVAILABLE))]
    self.assertEqual(utils.latest_version_status(statuses, 'gone'), statuses[2])
    self.assertEqual(utils.latest_version_status(statuses[:1], 'gone'), statuses[0])
    self.assertEqual(utils.latest_version_status([], 'm not found'),
                     utils.gen_model_version_status(0, State.UNKNOWN, utils.ErrorCode.NOT_FOUND,
                                                    'm not found'))

  def test_rpc_error_version_status(self):

    class Unavailable(grpc.RpcError):

      def code(self):
        return grpc.StatusCode.UNAVAILABLE

      def details(self):
        return 'connection refused'

    self.assertEqual(utils.rpc_error_version_status(Unavailable()),
                     utils.gen_model_version_status(0, ModelVersionStatus.State.UNKNOWN,
                                                    utils.ErrorCode.UNAVAILABLE,
                                                    'connection refused'))

  def test_gen_from_file(self):
    conf = AgentConfig.from_file(CONF)
    self.assertTrue(conf.stand_alone_serving)
    self.assertEqual(conf.deploy_type, DeployType.MIXED)
    self.assertEqual(conf.bzid, 'predict_ctr')
    self.assertEqual(conf.base_path, 'hdfs:///test/data')
    self.assertEqual(conf.num_ps, 10)
    self.assertEqual(conf.load_retry_interval_micros, 60 * 1000 * 1000)
    self.assertIsNone(conf.saved_model_tags)
    self.assertTrue(conf.dc_aware)
    self.assertEqual(conf.max_waiting_sec, 600)
    self.assertEqual(conf.num_shard, 1)
    for port in (conf.tfs_entry_port, conf.tfs_ps_port, conf.agent_port, conf.proxy_port):
      self.assertGreater(port, 0)
    self.assertTrue(os.path.isabs(conf.base_path))  # hdfs:/ paths count as absolute

  def test_platform_config_file(self):
    conf = AgentConfig.from_file(CONF)
    with open(conf.platform_config_file) as fp:
      platform_map = text_format.Parse(fp.read(), platform_config_pb2.PlatformConfigMap())
    adapter = tfs_platform_protos.SavedModelBundleSourceAdapterConfig()
    self.assertTrue(platform_map.platform_configs['tensorflow'].source_adapter_config.Unpack(adapter))
    session = adapter.legacy_config.session_config
    self.assertEqual(session.intra_op_parallelism_threads, 16)
    self.assertTrue(session.allow_soft_placement)
    self.assertTrue(adapter.legacy_config.enable_model_warmup)
    self.assertFalse(adapter.legacy_config.HasField('batching_parameters'))

  def test_platform_config_batching(self):
    path = self.write_conf('deploy_type dense\ndense_alone true\nenable_batching true\n')
    with mock.patch.dict(os.environ, {'MY_CPU_LIMIT': '4'}):
      conf = AgentConfig.from_file(path)
    with open(conf.platform_config_file) as fp:
      platform_map = text_format.Parse(fp.read(), platform_config_pb2.PlatformConfigMap())
    adapter = tfs_platform_protos.SavedModelBundleSourceAdapterConfig()
    platform_map.platform_configs['tensorflow'].source_adapter_config.Unpack(adapter)
    batching = adapter.legacy_config.batching_parameters
    self.assertEqual(batching.max_batch_size.value, 1024)
    self.assertEqual(batching.batch_timeout_micros.value, 800)
    self.assertTrue(batching.support_diff_dim_size_inputs)
    self.assertEqual(adapter.legacy_config.session_config.inter_op_parallelism_threads, 4)

  def test_list_field(self):
    conf = AgentConfig.from_file(CONF)
    self.assertEqual(conf.layout_filters, ['ps_0', 'ps_1'])

  def test_conf_parser_include_and_repeats(self):
    included = self.tmp.create_file('base.conf', content='num_ps 4\nlayout_filters a\n').full_path
    path = self.write_conf('include {}\n# comment\n\nlayout_filters=b\nlayout_filters c # tail\n'
                           'bzid  x\n'.format(included))
    args = {}
    utils.conf_parser(path, args)
    # every occurrence is kept (upstream dropped the third and later ones)
    self.assertEqual(args, {'num_ps': '4', 'layout_filters': ['a', 'b', 'c'], 'bzid': 'x'})
    args = {}
    utils.conf_parser(os.path.join(self.tmp.full_path, 'missing.conf'), args)
    self.assertEqual(args, {})

  def test_bad_conf_line(self):
    path = self.write_conf('bzid x\njust_a_key\n')
    with self.assertRaisesRegex(ConfError, r"agent.conf:2: .*'just_a_key'"):
      AgentConfig.from_file(path)

  def test_bad_int_value(self):
    path = self.write_conf('stand_alone_serving true\nnum_ps ten\n')
    with self.assertRaisesRegex(ConfError, r"conf key 'num_ps': cannot convert 'ten' to int"):
      AgentConfig.from_file(path)
    path = self.write_conf('stand_alone_serving true\nnum_ps __import__("os").getpid()\n')
    with self.assertRaisesRegex(ConfError, 'num_ps'):
      AgentConfig.from_file(path)  # arbitrary code is not evaluated
    path = self.write_conf('stand_alone_serving true\nnum_ps 2.5\n')
    with self.assertRaisesRegex(ConfError, 'not an integer'):
      AgentConfig.from_file(path)

  def test_bad_bool_value(self):
    path = self.write_conf('stand_alone_serving maybe\n')
    with self.assertRaisesRegex(ConfError, "stand_alone_serving.*'maybe'"):
      AgentConfig.from_file(path)

  def test_repeated_scalar_key(self):
    path = self.write_conf('stand_alone_serving true\nnum_ps 1\nnum_ps 2\n')
    with self.assertRaisesRegex(ConfError, "'num_ps' is given 2 times"):
      AgentConfig.from_file(path)

  def test_unknown_key_is_logged(self):
    path = self.write_conf('stand_alone_serving true\nno_such_key 1\n')
    with self.assertLogs(level='WARNING') as logs:
      conf = AgentConfig.from_file(path)
    self.assertTrue(any("unknown conf key 'no_such_key'" in line for line in logs.output))
    self.assertTrue(conf.stand_alone_serving)

  def test_missing_and_bad_deploy_type(self):
    with self.assertRaisesRegex(ConfError, 'deploy_type'):
      AgentConfig.from_file(self.write_conf('bzid x\n'))
    with self.assertRaisesRegex(ValueError, "deploy_type 'gpu' is not one of"):
      AgentConfig.from_file(self.write_conf('deploy_type gpu\n'))

  def test_num_shard_mismatch(self):
    path = self.write_conf('stand_alone_serving true\nnum_shard 3\n')
    with mock.patch.dict(os.environ, {constants.HOST_SHARD_ENV: '2'}):
      with self.assertRaisesRegex(ConfError, 'num_shard 3 does not match MONOLITH_HOST_SHARD_N=2'):
        AgentConfig.from_file(path)

  def test_bad_port_env(self):
    path = self.write_conf('deploy_type entry\n')
    with mock.patch.dict(os.environ, {'PORT': 'http'}):
      with self.assertRaisesRegex(ConfError, "PORT='http' is not a port number"):
        AgentConfig.from_file(path)

  def test_port_env_and_deploy_types(self):
    path = self.write_conf('deploy_type ps\nnum_ps 4\n')
    with self.assertRaisesRegex(ConfError, 'base_path is required'):
      AgentConfig.from_file(path)._gen_model_server_config()
    path = self.write_conf('deploy_type ps\nnum_ps 4\nbase_path /models/m\n')
    env = {'PORT': '9001', 'PORT2': '9002', 'PORT3': '9003', 'PORT4': '9004', 'SHARD_ID': '1',
           constants.HOST_SHARD_ENV: '2', 'REPLICA_ID': '7'}
    with mock.patch.dict(os.environ, env):
      conf = AgentConfig.from_file(path)
      self.assertEqual((conf.tfs_ps_port, conf.tfs_ps_http_port, conf.tfs_ps_archon_port),
                       (9001, 9003, 9004))
      self.assertEqual(conf.agent_port, 9002)
      self.assertEqual(list(conf.get_server_schedule_iter(TFSServerType.PS)), [1, 3])
      model_config = conf._gen_model_server_config()
      self.assertEqual([(c.name, c.base_path) for c in model_config.model_config_list.config],
                       [('ps_1', '/models/m/ps_1'), ('ps_3', '/models/m/ps_3')])
      self.assertEqual(conf.replica_id, -1)  # agent v1 ignores REPLICA_ID (no MY_POD_NAME)
    path = self.write_conf('deploy_type entry\nagent_version 2\n')
    with mock.patch.dict(os.environ, {'REPLICA_ID': '7'}):
      self.assertEqual(AgentConfig.from_file(path).replica_id, 7)
    with self.assertRaisesRegex(ConfError, 'dense_alone'):
      AgentConfig.from_file(self.write_conf('deploy_type dense\n'))

  def test_env_properties(self):
    env = {'TCE_INTERNAL_IDC': 'LF', 'TCE_CLUSTER': 'Default', 'TCE_PSM': 'my.psm',
           'MY_POD_NAME': 'pod-1'}
    with mock.patch.dict(os.environ, env):
      conf = AgentConfig.from_file(CONF)
      self.assertEqual(conf.location, 'lf:default')
      self.assertEqual(conf.path_prefix, '/predict_ctr/service/predict_ctr/lf:default')
      self.assertEqual(conf.container_cluster, 'my.psm;lf;default')
      self.assertEqual(conf.container_id, 'pod-1')
      conf.layout_pattern = 'mixed'
      self.assertEqual(conf.layout_path, '/predict_ctr/layouts/mixed')
      conf.layout_pattern = '/abs/layout'
      self.assertEqual(conf.layout_path, '/abs/layout')

  def test_replica_id_from_pod_name(self):
    with mock.patch.dict(os.environ, {'MY_POD_NAME': 'pod-1'}):
      first = utils.replica_id_from_pod_name()
      self.assertEqual(first, utils.replica_id_from_pod_name())
      self.assertGreaterEqual(first, 0)
    with mock.patch.dict(os.environ, {}, clear=True):
      self.assertEqual(utils.replica_id_from_pod_name(), -1)

  def _check_tensor(self, inst_formater: InstanceFormater):
    tensor_proto = inst_formater.to_tensor_proto(5)
    self.assertEqual(tensor_proto.dtype, types_pb2.DT_STRING)
    self.assertEqual(tensor_proto.dtype, 7)
    self.assertEqual(tensor_proto.tensor_shape.dim[0].size, 5)
    self.assertLen(tensor_proto.string_val, 5)
    parsed = proto_parser_pb2.Instance.FromString(tensor_proto.string_val[0])
    self.assertEqual(parsed, inst_formater.instance)

  def test_instance_wrapper_from_json(self):
    inst = InstanceFormater.from_json(os.path.join(TEST_DATA, 'inst.json'))
    self._check_tensor(inst)
    self.assertEqual(list(inst.instance.fid), [12345])
    self.assertEqual(list(inst.instance.label), [0, 1])
    self.assertEqual(list(inst.instance.line_id.actions), [1])

  def test_instance_wrapper_from_pbtext(self):
    inst = InstanceFormater.from_pb_text(os.path.join(TEST_DATA, 'inst.pbtext'))
    self._check_tensor(inst)
    self.assertEqual(list(inst.instance.fid), [1, 2])
    self.assertEqual(inst.instance.feature[0].name, 'a')

  def test_instance_wrapper_from_dump(self):
    inst = InstanceFormater.from_dump(os.path.join(TEST_DATA, 'inst.dump'))
    self._check_tensor(inst)
    expected = text_format.Parse(
        'feature { name: "fc_a" fid: 1 } feature { name: "fc_b" fid: 2 } '
        'feature { fid: 3 fid: 4 } label: 0 label: 1 line_id { actions: 1 }',
        proto_parser_pb2.Instance())
    self.assertEqual(inst.instance, expected)

  def test_dump_grammar(self):
    path = self.tmp.create_file('own.dump', content='"root":\n"fid":\n0: 7\n1: 8\n"feature":\n0:\n'
                                '"name": "u"\n"fid":\n0: 9\n"line_id":\n"uid": 5\n').full_path
    inst = InstanceFormater.from_dump(path)
    self.assertEqual(list(inst.instance.fid), [7, 8])
    self.assertEqual(inst.instance.feature[0].name, 'u')
    self.assertEqual(list(inst.instance.feature[0].fid), [9])
    self.assertEqual(inst.instance.line_id.uid, 5)

  def test_bad_dump(self):
    path = self.tmp.create_file('bad.dump', content='"fid":\n0: a:b\n').full_path
    with self.assertRaisesRegex(ValueError, r'bad.dump:2: expected "key:" or "key: value"'):
      InstanceFormater.from_dump(path)

  def test_instance_roundtrip_files(self):
    inst = InstanceFormater.from_pb_text(os.path.join(TEST_DATA, 'inst.pbtext'))
    self.assertEqual(InstanceFormater.from_json(inst.to_json()).instance, inst.instance)
    self.assertEqual(InstanceFormater.from_pb_text(inst.to_pb_text()).instance, inst.instance)
    with open(inst.to_pb(), 'rb') as fp:
      self.assertEqual(proto_parser_pb2.Instance.FromString(fp.read()), inst.instance)

  def test_get_cmd_and_port(self):
    conf = AgentConfig.from_file(CONF)
    conf.agent_version = 2
    cmd, port = conf.get_cmd_and_port(binary='tensorflow_model_server', server_type='ps')
    self.assertIn('model_config_file_poll_wait_seconds', cmd)
    self.assertTrue(cmd.startswith('tensorflow_model_server '))
    self.assertEqual(port, conf.tfs_ps_port)
    self.assertIn('--port={}'.format(conf.tfs_ps_port), cmd)
    self.assertIn('--platform_config_file={}'.format(conf.platform_config_file), cmd)
    config_file = re.search(r'--model_config_file=(\S+)', cmd).group(1)
    with open(config_file) as fp:
      model_config = text_format.Parse(fp.read(), utils.ModelServerConfig())
    self.assertEqual([c.name for c in model_config.model_config_list.config],
                     [])  # shard_id -1: no PS index is scheduled on this shard
    cmd, port = conf.get_cmd_and_port(binary='tfs', server_type='entry')
    self.assertEqual(port, conf.tfs_entry_port)
    self.assertIn('--archon_async_dispatcher_threads=30', cmd)
    conf.agent_version = 1
    self.assertNotIn('model_config_file_poll_wait_seconds', conf.get_cmd('tfs', 'entry'))
    self.assertIn('--file_system_poll_wait_seconds=0', conf.get_cmd('tfs', 'ps'))
    with self.assertRaises(RuntimeError):
      conf.get_cmd('tfs')  # mixed deployments must name the server type

  def test_deploy_type(self):
    entry = DeployType('entry')
    self.assertEqual(entry, 'entry')
    self.assertEqual(entry, DeployType('ENTRY'))
    self.assertEqual(entry.compat_server_type(None), 'entry')
    self.assertEqual(DeployType('mixed').compat_server_type('ps'), 'ps')
    with self.assertRaises(AssertionError):
      entry.compat_server_type('ps')

  def test_patterns(self):
    self.assertEqual(utils.normalize_regex('ps_{idx}'), r'ps_(?P<idx>\d+)')
    self.assertEqual(re.match(utils.normalize_regex('ps_{idx}'), 'ps_12').group('idx'), '12')
    self.assertEqual(utils.expand_pattern('ps_[0-3]'), ['ps_0', 'ps_1', 'ps_2'])
    self.assertEqual(utils.expand_pattern('ps_[1,5]'), ['ps_1', 'ps_5'])
    self.assertEqual(utils.expand_pattern('m[0-2]_[7]'), ['m0_7', 'm1_7'])
    self.assertEqual(utils.expand_pattern('entry'), ['entry'])
    with self.assertRaisesRegex(ValueError, 'unbalanced'):
      utils.expand_pattern('ps_[0-3')
    with self.assertRaisesRegex(ValueError, "bad range 'a-b'"):
      utils.expand_pattern('ps_[a-b]')

  def test_misc(self):
    self.assertEqual(utils.pasre_sub_model_name('ps_3'), ('ps', 3))
    self.assertEqual(utils.pasre_sub_model_name('entry'), ('entry', 0))
    self.assertEqual(utils.get_local_ip(), '127.0.0.1')
    port = utils.find_free_port()
    self.assertFalse(utils.check_port_open(port))
    path = utils.write_to_tmp_file(123)
    with open(path) as fp:
      self.assertEqual(fp.read(), '123')
    tensor = utils.make_tensor_proto([b'a', b'b'])
    self.assertEqual(tensor.tensor_shape.dim[0].size, 2)
    self.assertEqual(list(tensor.string_val), [b'a', b'b'])

  def test_zk_servers_ipv6_only(self):
    with mock.patch.dict(os.environ, {'MY_HOST_IP': ''}):
      with self.assertRaisesRegex(Exception, 'ipv6 only, but zk_servers specified is ipv4'):
        AgentConfig.from_file(CONF)

  def test_zk_path_full_dc_aware(self):
    path = ZKPath('/bzid/service/base_name/idc:cluster/server_type:0/1')
    self.assertEqual(path.bzid, 'bzid')
    self.assertEqual(path.base_name, 'base_name')
    self.assertEqual(path.idc, 'idc')
    self.assertEqual(path.cluster, 'cluster')
    self.assertEqual(path.server_type, 'server_type')
    self.assertEqual(path.index, '0')
    self.assertEqual(path.replica_id, '1')
    self.assertEqual(path.location, 'idc:cluster')
    self.assertEqual(path.task, 'server_type:0')
    self.assertTrue(path.ship_in(None, None))

  def test_zk_path_partial_dc_aware(self):
    path = ZKPath('/bzid/service/base_name/idc:cluster/server_type:0')
    self.assertEqual(path.idc, 'idc')
    self.assertEqual(path.cluster, 'cluster')
    self.assertEqual(path.task, 'server_type:0')
    self.assertIsNone(path.replica_id)
    self.assertTrue(path.ship_in('idc', 'cluster'))
    self.assertFalse(path.ship_in('idc', 'other'))

  def test_zk_path_old_full(self):
    path = ZKPath('/bzid/service/base_name/server_type:0/1')
    self.assertIsNone(path.idc)
    self.assertIsNone(path.cluster)
    self.assertIsNone(path.location)
    self.assertEqual(path.server_type, 'server_type')
    self.assertEqual(path.index, '0')
    self.assertEqual(path.replica_id, '1')
    self.assertTrue(path.ship_in(None, None))

  def test_zk_path_old_partial(self):
    path = ZKPath('/bzid/service/base_name/server_type:0')
    self.assertEqual(path.task, 'server_type:0')
    self.assertIsNone(path.replica_id)

  def test_zk_path_old_partial2(self):
    path = ZKPath('/1_20001223_44fa7cac-a553-11ec-b577-b8cef6afd1e6/service/'
                  '20001223_zm_test_realtime_training_1328_v4_r982567_0/ps:1')
    self.assertEqual(path.bzid, '1_20001223_44fa7cac-a553-11ec-b577-b8cef6afd1e6')
    self.assertEqual(path.base_name, '20001223_zm_test_realtime_training_1328_v4_r982567_0')
    self.assertEqual(path.server_type, 'ps')
    self.assertEqual(path.index, '1')

  def test_zk_path_not_matched(self):
    for bad in ('/bzid/other/base/ps:0', '', None, '/bzid/service/base/ps'):
      path = ZKPath(bad)
      self.assertIsNone(path.bzid)
      self.assertIsNone(path.task)
      self.assertIsNone(path.location)


if __name__ == '__main__':
  absltest.main()
