/**
 * Unit tests for the pure assignment-list rules in src/domain/assignments.ts: upsertAssignment
 * appending, flags, label and updating in place.
 * No database, no Fastify: every input list is deep-frozen, so any mutation of
 * the caller's data throws (ES modules run in strict mode) and fails the test.
 */
import t from 'tap'
import { upsertAssignment } from '../../src/domain/assignments.js'
import { deepFreeze, entryAt, frozenList, NOW, stored } from './assignments-helper.js'

t.test('upsertAssignment: a new (provider, phoneNumber) is appended', async (t) => {
  const { list, snapshot } = frozenList([
    stored('twilio', '+15550000001', { isDefault: true }),
    stored('sinch', '+15550000002', { isDefault: true })
  ])
  const input = deepFreeze({ provider: 'textgrid' as const, phoneNumber: '+15550000003' })
  const { next, assignment } = upsertAssignment(list, input, NOW)

  t.strictSame(assignment, {
    provider: 'textgrid',
    phoneNumber: '+15550000003',
    isDefault: true,
    isInboundEnabled: true,
    createdAt: NOW,
    updatedAt: NOW
  }, 'createdAt and updatedAt are both now')
  t.strictSame(next, [...snapshot, assignment], 'appended at the end, the others unchanged')
  t.strictSame(list, snapshot, 'input list not mutated')
})

t.test('upsertAssignment: the same number with another provider is another entry', async (t) => {
  const { list, snapshot } = frozenList([stored('twilio', '+15550000001', { isDefault: true })])
  const { next, assignment } = upsertAssignment(list, { provider: 'sinch', phoneNumber: '+15550000001' }, NOW)
  t.equal(next?.length, 2)
  t.strictSame(entryAt(next, 0), snapshot[0], 'the twilio entry (and its default) stays')
  t.equal(entryAt(next, 1), assignment)
  t.equal(assignment.provider, 'sinch')
})

t.test('upsertAssignment: flags', async (t) => {
  t.test('omitted flags default to true', async (t) => {
    const { assignment } = upsertAssignment(deepFreeze([]), { provider: 'twilio', phoneNumber: '+15550000001' }, NOW)
    t.equal(assignment.isDefault, true)
    t.equal(assignment.isInboundEnabled, true)
  })

  t.test('flags given as undefined also default to true', async (t) => {
    const { assignment } = upsertAssignment(deepFreeze([]), {
      provider: 'twilio', phoneNumber: '+15550000001', isDefault: undefined, isInboundEnabled: undefined
    }, NOW)
    t.equal(assignment.isDefault, true)
    t.equal(assignment.isInboundEnabled, true)
  })

  t.test('explicit false is kept', async (t) => {
    const { next, assignment } = upsertAssignment(deepFreeze([]), {
      provider: 'twilio', phoneNumber: '+15550000001', isDefault: false, isInboundEnabled: false
    }, NOW)
    t.equal(assignment.isDefault, false)
    t.equal(assignment.isInboundEnabled, false)
    t.strictSame(next, [assignment])
  })

  t.test('an update with omitted flags sets them back to true', async (t) => {
    const { list } = frozenList([stored('twilio', '+15550000001', { isDefault: false, isInboundEnabled: false })])
    const { next, assignment } = upsertAssignment(list, { provider: 'twilio', phoneNumber: '+15550000001' }, NOW)
    t.not(next, undefined, 'a change, so a write')
    t.equal(assignment.isDefault, true)
    t.equal(assignment.isInboundEnabled, true)
  })
})

t.test('upsertAssignment: label', async (t) => {
  t.test('a label given is stored', async (t) => {
    const { assignment } = upsertAssignment(deepFreeze([]), { provider: 'twilio', phoneNumber: '+15550000001', label: 'Front desk' }, NOW)
    t.equal(assignment.label, 'Front desk')
  })

  t.test('an omitted label means none: no label property at all', async (t) => {
    const { next, assignment } = upsertAssignment(deepFreeze([]), { provider: 'twilio', phoneNumber: '+15550000001' }, NOW)
    t.equal(Object.hasOwn(assignment, 'label'), false, 'no label key (not even label: undefined)')
    t.equal(Object.hasOwn(entryAt(next, 0), 'label'), false)
  })

  t.test('a label given as undefined also means none', async (t) => {
    const { assignment } = upsertAssignment(deepFreeze([]), { provider: 'twilio', phoneNumber: '+15550000001', label: undefined }, NOW)
    t.equal(Object.hasOwn(assignment, 'label'), false)
  })

  t.test('an update without a label removes the stored label', async (t) => {
    const { list, snapshot } = frozenList([stored('twilio', '+15550000001', { isDefault: true, label: 'Front desk' })])
    const { next, assignment } = upsertAssignment(list, { provider: 'twilio', phoneNumber: '+15550000001' }, NOW)
    t.not(next, undefined, 'removing the label is a change')
    t.equal(Object.hasOwn(assignment, 'label'), false)
    t.equal(Object.hasOwn(entryAt(next, 0), 'label'), false)
    t.strictSame(list, snapshot, 'the stored entry (with its label) is not mutated')
  })

  t.test('an update with another label replaces it', async (t) => {
    const { list } = frozenList([stored('twilio', '+15550000001', { isDefault: true, label: 'Front desk' })])
    const { next, assignment } = upsertAssignment(list, { provider: 'twilio', phoneNumber: '+15550000001', label: 'Back office' }, NOW)
    t.not(next, undefined)
    t.equal(assignment.label, 'Back office')
  })
})

t.test('upsertAssignment: an existing entry is updated in place', async (t) => {
  const { list, snapshot } = frozenList([
    stored('twilio', '+15550000001'),
    stored('twilio', '+15550000002', { label: 'Old', createdAt: new Date('2023-06-01T00:00:00.000Z') }),
    stored('sinch', '+15550000003')
  ])
  const { next, assignment } = upsertAssignment(list, {
    provider: 'twilio', phoneNumber: '+15550000002', isDefault: false, isInboundEnabled: false, label: 'New'
  }, NOW)

  t.strictSame(assignment, {
    provider: 'twilio',
    phoneNumber: '+15550000002',
    isDefault: false,
    isInboundEnabled: false,
    label: 'New',
    createdAt: new Date('2023-06-01T00:00:00.000Z'),
    updatedAt: NOW
  }, 'createdAt kept, updatedAt = now')
  t.equal(next?.length, 3, 'no entry added')
  t.equal(entryAt(next, 1), assignment, 'same position')
  t.strictSame(entryAt(next, 0), snapshot[0], 'neighbours unchanged')
  t.strictSame(entryAt(next, 2), snapshot[2], 'neighbours unchanged')
  t.strictSame(list, snapshot, 'input list not mutated')
})
