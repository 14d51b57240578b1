"""The checked-in fixtures are exactly what gen_fixtures.py writes (so none is hand-edited)."""

import filecmp
import os

from absl.testing import absltest

from monolith.agent_service.testdata import gen_fixtures


def _files(root):
  found = []
  for dirpath, _, names in os.walk(root):
    found.extend(os.path.relpath(os.path.join(dirpath, n), root) for n in names)
  return sorted(found)


class GenFixturesTest(absltest.TestCase):

  def test_checked_in_fixtures_match_the_generator(self):
    out = self.create_tempdir().full_path
    gen_fixtures.main(out)
    checked_in = os.path.join(os.environ['TEST_SRCDIR'], os.environ['TEST_WORKSPACE'])
    generated = _files(out)
    self.assertLen(generated, 4 + 6 * 3)  # agent.conf, 3 inst files, 6 sub-models x 3 files
    for rel in generated:
      with self.subTest(rel):
        self.assertTrue(filecmp.cmp(os.path.join(out, rel), os.path.join(checked_in, rel),
                                    shallow=False), rel)


if __name__ == '__main__':
  absltest.main()
