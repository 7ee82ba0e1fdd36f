/**
 * Unit tests for the pure assignment-list rules in src/domain/assignments.ts: readAssignments,
 * removeAssignment, and entries of another shape kept in place.
 * No database, no Fastify: every input list is deep-frozen, so any mutation of
 * the caller's data throws (ES modules run in strict mode) and fails the test.
 */
import t from 'tap'
import {
  readAssignments,
  removeAssignment,
  upsertAssignment
} from '../../src/domain/assignments.js'
import { deepFreeze, entryAt, foreign, frozenList, NOW, stored } from './assignments-helper.js'

t.test('readAssignments', async (t) => {
  t.test('a missing or non-array field reads as an empty list', async (t) => {
    for (const raw of [undefined, null, {}, { 0: stored('twilio', '+15550000001') }, 'text', 42, true]) {
      t.strictSame(readAssignments(raw), [], `raw ${JSON.stringify(raw)}`)
    }
  })

  t.test('an array is returned with every entry in place, foreign shapes included', async (t) => {
    const ours = stored('twilio', '+15550000001')
    const raw = deepFreeze([{ foo: 1 }, ours, 'text', null])
    const read = readAssignments(raw)
    t.equal(read.length, 4)
    t.strictSame(read, [{ foo: 1 }, ours, 'text', null])
  })
})

t.test('entries of another shape are kept in place, untouched', async (t) => {
  const shapes = [{ foo: 1 }, 'a string', 42, { provider: 'other', phoneNumber: '+15550000001', isDefault: true }]

  t.test('upsert appending a new default', async (t) => {
    const { list, snapshot } = frozenList([
      shapes[0],
      stored('twilio', '+15550000001', { isDefault: true }),
      shapes[1],
      shapes[2],
      shapes[3]
    ])
    const { next, assignment } = upsertAssignment(list, { provider: 'twilio', phoneNumber: '+15550000002' }, NOW)
    t.equal(next?.length, 6)
    for (const index of [0, 2, 3, 4]) {
      t.equal(next?.[index], list[index], `foreign entry at ${index} is the same value`)
      t.strictSame(next?.[index], snapshot[index], `foreign entry at ${index} unchanged`)
    }
    t.equal(entryAt(next, 1).isDefault, false, 'our old twilio default is cleared')
    t.equal(entryAt(next, 5), assignment)
    t.strictSame(list, snapshot)
  })

  t.test('upsert updating an entry that sits between foreign ones', async (t) => {
    const { list, snapshot } = frozenList([shapes[0], stored('sinch', '+15550000001'), shapes[1]])
    const { next } = upsertAssignment(list, { provider: 'sinch', phoneNumber: '+15550000001', label: 'x' }, NOW)
    t.equal(next?.length, 3)
    t.strictSame(next?.[0], snapshot[0])
    t.equal(entryAt(next, 1).label, 'x')
    t.strictSame(next?.[2], snapshot[2])
  })

  t.test('remove', async (t) => {
    const { list, snapshot } = frozenList([shapes[0], stored('twilio', '+15550000001'), shapes[1], shapes[2], shapes[3]])
    const next = removeAssignment(list, { provider: 'twilio', phoneNumber: '+15550000001' })
    t.strictSame(next, [snapshot[0], snapshot[2], snapshot[3], snapshot[4]])
    t.equal(removeAssignment(list, { provider: 'twilio', phoneNumber: '+15550000009' }), undefined, 'a foreign entry never matches')
    t.strictSame(list, snapshot)
  })

  t.test('null entries', async (t) => {
    const ours = stored('twilio', '+15550000001', { isDefault: true })
    const withNullFirst = deepFreeze([null, ours].map(foreign))
    const withNullLast = deepFreeze([ours, null].map(foreign))
    const added = upsertAssignment(withNullFirst, { provider: 'twilio', phoneNumber: '+15550000002' }, NOW)
    t.equal(added.next?.[0], null, 'upsert of a new key keeps a null entry in place')
    t.equal(added.next?.length, 3)
    const relabelled = upsertAssignment(withNullLast, { provider: 'twilio', phoneNumber: '+15550000001', label: 'x' }, NOW)
    t.equal(relabelled.next?.[1], null, 'upsert of a default keeps a null entry in place')
    t.strictSame(removeAssignment(withNullFirst, { provider: 'twilio', phoneNumber: '+15550000001' }), [null], 'remove keeps a null entry in place')
  })
})

t.test('removeAssignment', async (t) => {
  t.test('a key that is not held gives undefined', async (t) => {
    const { list, snapshot } = frozenList([stored('twilio', '+15550000001'), stored('sinch', '+15550000002')])
    t.equal(removeAssignment(list, { provider: 'twilio', phoneNumber: '+15550000009' }), undefined, 'unknown number')
    t.equal(removeAssignment(list, { provider: 'sinch', phoneNumber: '+15550000001' }), undefined, 'number held with another provider')
    t.equal(removeAssignment(deepFreeze([]), { provider: 'twilio', phoneNumber: '+15550000001' }), undefined, 'empty list')
    t.strictSame(list, snapshot)
  })

  t.test('a held key gives the list without that entry, the others untouched and in order', async (t) => {
    const { list, snapshot } = frozenList([
      stored('twilio', '+15550000001', { isDefault: true }),
      stored('sinch', '+15550000001', { isDefault: true }),
      stored('twilio', '+15550000002')
    ])
    const next = removeAssignment(list, { provider: 'twilio', phoneNumber: '+15550000001' })
    t.strictSame(next, [snapshot[1], snapshot[2]], 'no default is reassigned, no updatedAt bumped')
    t.not(next, list, 'a new array')
    t.strictSame(list, snapshot, 'input list not mutated')
  })

  t.test('the key object may carry other fields', async (t) => {
    const { list } = frozenList([stored('textgrid', '+15550000001')])
    const key = deepFreeze(stored('textgrid', '+15550000001', { isDefault: true, label: 'irrelevant' }))
    t.strictSame(removeAssignment(list, key), [])
  })
})
