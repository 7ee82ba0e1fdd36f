/**
 * Unit tests for the pure assignment-list rules in src/domain/assignments.ts: upsertAssignment's
 * one default per provider, and no write when nothing changes.
 * No database, no Fastify: every input list is deep-frozen, so any mutation of
 * the caller's data throws (ES modules run in strict mode) and fails the test.
 */
import t from 'tap'
import {
  upsertAssignment,
  type AssignmentInput,
  type StoredAssignment
} from '../../src/domain/assignments.js'
import { CREATED, deepFreeze, entryAt, frozenList, NOW, stored, UPDATED } from './assignments-helper.js'

t.test('upsertAssignment: one default per provider', async (t) => {
  t.test('making an entry the default clears the other defaults of the same provider only', async (t) => {
    const { list, snapshot } = frozenList([
      stored('twilio', '+15550000001', { isDefault: true, label: 'Main', isInboundEnabled: false }),
      stored('sinch', '+15550000002', { isDefault: true }),
      stored('twilio', '+15550000003'),
      stored('textgrid', '+15550000004', { isDefault: true })
    ])
    const { next, assignment } = upsertAssignment(list, { provider: 'twilio', phoneNumber: '+15550000003' }, NOW)

    t.equal(assignment.isDefault, true)
    t.strictSame(next, [
      { ...snapshot[0] as StoredAssignment, isDefault: false, updatedAt: NOW },
      snapshot[1],
      assignment,
      snapshot[3]
    ], 'the old twilio default is cleared (other fields kept, updatedAt = now); sinch and textgrid defaults untouched')
    t.strictSame(list, snapshot, 'input list not mutated')
  })

  t.test('every other default of the provider is cleared, each with updatedAt = now', async (t) => {
    const { list } = frozenList([
      stored('sinch', '+15550000001', { isDefault: true }),
      stored('sinch', '+15550000002', { isDefault: true }),
      stored('twilio', '+15550000003', { isDefault: true })
    ])
    const { next } = upsertAssignment(list, { provider: 'sinch', phoneNumber: '+15550000009' }, NOW)
    t.equal(next?.length, 4)
    for (const index of [0, 1]) {
      t.equal(entryAt(next, index).isDefault, false, `sinch entry ${index} cleared`)
      t.strictSame(entryAt(next, index).updatedAt, NOW, `sinch entry ${index} updatedAt = now`)
    }
    t.equal(entryAt(next, 2).isDefault, true, 'twilio default stays')
    t.strictSame(entryAt(next, 2).updatedAt, UPDATED, 'twilio updatedAt untouched')
    t.equal(entryAt(next, 3).isDefault, true, 'the new sinch entry is the default')
    t.equal(next?.filter((entry) => entry.provider === 'sinch' && entry.isDefault).length, 1, 'exactly one sinch default')
  })

  t.test('an entry that is not made the default leaves the existing default alone', async (t) => {
    const { list, snapshot } = frozenList([stored('twilio', '+15550000001', { isDefault: true })])
    const { next, assignment } = upsertAssignment(list, { provider: 'twilio', phoneNumber: '+15550000002', isDefault: false }, NOW)
    t.equal(assignment.isDefault, false)
    t.strictSame(entryAt(next, 0), snapshot[0], 'the default stays, updatedAt untouched')
  })

  t.test('non-default entries of the provider are not touched when another becomes the default', async (t) => {
    const { list, snapshot } = frozenList([
      stored('twilio', '+15550000001', { isDefault: false }),
      stored('twilio', '+15550000002', { isDefault: true })
    ])
    const { next } = upsertAssignment(list, { provider: 'twilio', phoneNumber: '+15550000003' }, NOW)
    t.strictSame(entryAt(next, 0), snapshot[0], 'updatedAt not bumped on an entry that did not change')
    t.equal(entryAt(next, 1).isDefault, false)
  })
})

t.test('upsertAssignment: no change, no write', async (t) => {
  t.test('repeating the same request returns next: undefined and the stored entry', async (t) => {
    const { list, snapshot } = frozenList([
      stored('twilio', '+15550000001', { isDefault: true, label: 'Main' }),
      stored('sinch', '+15550000002', { isDefault: true })
    ])
    const { next, assignment } = upsertAssignment(list, { provider: 'twilio', phoneNumber: '+15550000001', label: 'Main' }, NOW)
    t.equal(next, undefined, 'nothing to write')
    t.equal(assignment, list[0], 'the stored entry itself')
    t.strictSame(assignment.updatedAt, UPDATED, 'updatedAt untouched')
    t.strictSame(list, snapshot)
  })

  t.test('a second identical upsert on the result of the first is a no-op', async (t) => {
    const input = deepFreeze({ provider: 'twilio' as const, phoneNumber: '+15550000001', isInboundEnabled: false })
    const first = upsertAssignment(deepFreeze([stored('twilio', '+15550000002', { isDefault: true })]), input, NOW)
    t.not(first.next, undefined)
    const later = new Date('2024-04-01T00:00:00.000Z')
    const second = upsertAssignment(deepFreeze(first.next ?? []), input, later)
    t.equal(second.next, undefined)
    t.strictSame(second.assignment.updatedAt, NOW, 'updatedAt stays at the first write')
  })

  t.test('explicit values equal to the stored ones are a no-op too', async (t) => {
    const { list } = frozenList([stored('twilio', '+15550000001', { isDefault: false, isInboundEnabled: false })])
    const { next, assignment } = upsertAssignment(list, {
      provider: 'twilio', phoneNumber: '+15550000001', isDefault: false, isInboundEnabled: false
    }, NOW)
    t.equal(next, undefined)
    t.equal(assignment, list[0])
  })

  t.test('a non-default repeat is a no-op even when the provider has a default', async (t) => {
    const { list } = frozenList([
      stored('twilio', '+15550000001', { isDefault: true }),
      stored('twilio', '+15550000002', { isDefault: false })
    ])
    const { next } = upsertAssignment(list, { provider: 'twilio', phoneNumber: '+15550000002', isDefault: false }, NOW)
    t.equal(next, undefined)
  })

  t.test('each single difference is a change, with updatedAt = now', async (t) => {
    const list = deepFreeze([stored('twilio', '+15550000001', { isDefault: true, isInboundEnabled: true, label: 'Main' })])
    const key = { provider: 'twilio', phoneNumber: '+15550000001' } as const
    const cases: Array<[string, AssignmentInput]> = [
      ['isDefault false', { ...key, label: 'Main', isDefault: false }],
      ['isInboundEnabled false', { ...key, label: 'Main', isInboundEnabled: false }],
      ['another label', { ...key, label: 'Other' }],
      ['label omitted (removes it)', { ...key }]
    ]
    for (const [name, input] of cases) {
      const { next, assignment } = upsertAssignment(list, input, NOW)
      t.not(next, undefined, name)
      t.strictSame(assignment.updatedAt, NOW, `${name}: updatedAt = now`)
      t.strictSame(assignment.createdAt, CREATED, `${name}: createdAt kept`)
    }
  })

  t.test('a repeat that still has to clear another default is not a no-op', async (t) => {
    // Two twilio defaults (e.g. written by other code or an older version)
    const { list, snapshot } = frozenList([
      stored('twilio', '+15550000001', { isDefault: true }),
      stored('twilio', '+15550000002', { isDefault: true }),
      stored('sinch', '+15550000003', { isDefault: true })
    ])
    const { next, assignment } = upsertAssignment(list, { provider: 'twilio', phoneNumber: '+15550000001' }, NOW)
    t.not(next, undefined, 'must write to clear the second default')
    t.equal(assignment.isDefault, true)
    t.equal(entryAt(next, 0).isDefault, true)
    t.strictSame(entryAt(next, 0).createdAt, CREATED, 'createdAt kept')
    t.strictSame(entryAt(next, 1), { ...snapshot[1] as StoredAssignment, isDefault: false, updatedAt: NOW })
    t.strictSame(entryAt(next, 2), snapshot[2], 'the sinch default is not touched')
    t.strictSame(list, snapshot)
  })
})
