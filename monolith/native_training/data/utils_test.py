from absl.testing import absltest

from monolith.native_training.data import utils


class UtilsTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    utils.TOBENV = False
    utils.NAME_TO_SLOT.clear()
    utils.USED_FREATUE_NAMES.clear()

  def test_slot_feature_name(self):
    self.assertEqual(utils.get_slot_feature_name(5), 'slot_5')
    utils.enable_tob_env()
    self.assertTrue(utils.TOBENV)
    self.assertEqual(utils.get_slot_feature_name(5), 'fc_slot_5')

  def test_slot_from_prefixed_names(self):
    self.assertEqual(utils.get_slot_from_feature_name('slot_12'), 12)
    self.assertEqual(utils.get_slot_from_feature_name('fc_slot_7'), 7)
    self.assertIsNone(utils.get_slot_from_feature_name('slot_abc'))

  def test_unknown_names_get_stable_incremental_ids(self):
    self.assertEqual(utils.get_slot_from_feature_name('f_user'), 1)
    self.assertEqual(utils.get_slot_from_feature_name('f_item'), 2)
    self.assertEqual(utils.get_slot_from_feature_name('f_user'), 1)
    self.assertEqual(utils.USED_FREATUE_NAMES, {'f_user': 1, 'f_item': 2})

  def test_register_slots(self):
    utils.register_slots([3, 4])
    self.assertEqual(utils.NAME_TO_SLOT, {'slot_3': 3, 'slot_4': 4})
    utils.register_slots({'f_user': 100, 'slot_9': 42})
    self.assertEqual(utils.get_slot_from_feature_name('f_user'), 100)
    # A registered name wins over the name-derived slot.
    self.assertEqual(utils.get_slot_from_feature_name('slot_9'), 42)
    utils.enable_tob_env()
    utils.register_slots([8])
    self.assertEqual(utils.get_slot_from_feature_name('fc_slot_8'), 8)
    self.assertIn('fc_slot_8', utils.NAME_TO_SLOT)


if __name__ == '__main__':
  absltest.main()
