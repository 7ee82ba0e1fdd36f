import t from 'tap'
import { FailureDigest } from '../../scripts/tap-failures.js'

// A TAP stream as tap 21 prints it: a file with a nested failing subtest, a failing assertion
// beside it, a TODO that must not count, and the parents' own `not ok` results.
const STREAM = `# Subtest: test/example.test.ts
    # Subtest: outer
        ok 1 - fine
        # Subtest: inner
            not ok 1 - one is two
              ---
              compare: ===
              at:
                fileName: test/example.test.ts
              stack: |
                Test.<anonymous> (test/example.test.ts:4:42)
              source: |
                t.equal(1, 2)

              diff: |
                -2
                +1
              ...
            1..1
        not ok 2 - inner # time=3ms
        not ok 3 - later # TODO not yet
        1..3
    not ok 1 - outer # time=5ms
    1..1
not ok 1 - test/example.test.ts # time=9ms
`

t.test('names each failed assertion with its subtests and keeps its diff, in any chunking', async (t) => {
  for (const size of [1, 7, STREAM.length]) {
    const digest = new FailureDigest()
    for (let at = 0; at < STREAM.length; at += size) digest.read(STREAM.slice(at, at + size))
    t.equal(digest.report(), [
      '',
      '=== failed assertions: 1 ===',
      'not ok: test/example.test.ts > outer > inner > one is two',
      '    compare: ===',
      '    stack: |',
      '      Test.<anonymous> (test/example.test.ts:4:42)',
      '    diff: |',
      '      -2',
      '      +1',
    ].join('\n'), `chunks of ${size}`)
  }
})

t.test('a passing stream reports nothing', async (t) => {
  const digest = new FailureDigest()
  digest.read('# Subtest: a\n    ok 1 - fine\n    1..1\nok 1 - a\n')
  t.equal(digest.report(), '')
})
