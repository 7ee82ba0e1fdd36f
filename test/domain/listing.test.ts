/**
 * Pure unit tests of the listing rules (src/domain/listing.ts). No database:
 * these are functions of their arguments only. The cursor codec's are in
 * test/plugin/list-cursor.test.ts.
 */
import t from 'tap'
import { ObjectId } from 'mongodb'
import { compareEntries, escapeRegex, listableEntries, listQuery, matchesFilter, type ListFilter } from '../../src/domain/listing.js'
import type { StoredAssignment } from '../../src/domain/assignments.js'
import { seededRandom } from '../seeded-random.js'

const random = seededRandom

const METACHARACTERS = ['\\', '^', '$', '.', '*', '+', '?', '(', ')', '[', ']', '{', '}', '|', '/', '-']
const created = new Date('2024-03-01T10:00:00.000Z')

function entry (provider: StoredAssignment['provider'], phoneNumber: string, extra: Partial<StoredAssignment> = {}): StoredAssignment {
  return { provider, phoneNumber, isDefault: false, isInboundEnabled: true, createdAt: created, updatedAt: created, ...extra }
}

t.test('escapeRegex: a RegExp built from the escaped text matches exactly the literal text', async (t) => {
  for (const ch of METACHARACTERS) {
    const text = `a${ch}b`
    const exact = new RegExp(`^${escapeRegex(text)}$`)
    t.ok(exact.test(text), `${JSON.stringify(text)} matches itself`)
    for (const other of ['ab', 'aXb', `a${ch}${ch}b`, `a${ch}bb`, 'a\nb', `A${ch}B`]) {
      t.notOk(exact.test(other), `${JSON.stringify(text)} escaped does not match ${JSON.stringify(other)}`)
    }
    // Unanchored, as the label filter uses it: found inside a longer text, nowhere else.
    const inside = new RegExp(escapeRegex(ch))
    t.ok(inside.test(`left ${ch} right`), `${JSON.stringify(ch)} found in a text containing it`)
    t.notOk(inside.test('left  right, no metacharacters at all'), `${JSON.stringify(ch)} escaped is not found in a text without it`)
  }

  const all = METACHARACTERS.join('')
  t.ok(new RegExp(`^${escapeRegex(all)}$`).test(all), 'all metacharacters together match themselves')
  t.notOk(new RegExp(escapeRegex('.*'), 'i').test('anything at all'), '".*" escaped does not match any text')
  t.ok(new RegExp(escapeRegex('.*'), 'i').test('label a.*b'), '".*" escaped matches the literal ".*"')
  t.notOk(new RegExp(`^${escapeRegex('+1416')}`).test('+11416'), 'the prefix "+1416" escaped is not "one or more 1s then 416"')
  t.ok(new RegExp(`^${escapeRegex('+1416')}`).test('+14165550100'), 'the prefix "+1416" escaped matches +1416…')

  // Random texts over metacharacters, letters and digits: the anchored escaped
  // pattern matches a candidate exactly when the candidate is the same text.
  const next = random(12)
  const alphabet = [...METACHARACTERS, 'a', 'B', '1', ' ', 'é']
  const pick = (): string => {
    const length = 1 + Math.floor(next() * 8)
    return Array.from({ length }, () => alphabet[Math.floor(next() * alphabet.length)]!).join('')
  }
  const texts = Array.from({ length: 300 }, pick)
  let mismatches = 0
  for (const text of texts) {
    let pattern: RegExp
    try {
      pattern = new RegExp(`^${escapeRegex(text)}$`)
    } catch (error) {
      t.fail(`escaped ${JSON.stringify(text)} is not a valid pattern: ${String(error)}`)
      continue
    }
    for (const candidate of texts) {
      if (pattern.test(candidate) !== (candidate === text)) mismatches++
    }
  }
  t.equal(mismatches, 0, '300 random texts: each escaped pattern matches only its own text among the 300')
})

t.test('matchesFilter: each filter on its own and together, on one entry', async (t) => {
  const twilio = entry('twilio', '+14165550101', { isDefault: true, isInboundEnabled: true, label: 'Main Outbound' })
  const sinch = entry('sinch', '+19055550102', { isDefault: false, isInboundEnabled: false })

  t.ok(matchesFilter(twilio, {}), 'no filter matches')
  t.ok(matchesFilter(twilio, { provider: 'twilio' }))
  t.notOk(matchesFilter(twilio, { provider: 'sinch' }))
  t.ok(matchesFilter(twilio, { phoneNumberPrefix: '+1416' }))
  t.ok(matchesFilter(twilio, { phoneNumberPrefix: '+14165550101' }), 'the whole number is a prefix of itself')
  t.notOk(matchesFilter(twilio, { phoneNumberPrefix: '+1905' }))
  t.notOk(matchesFilter(twilio, { phoneNumberPrefix: '+141655501011' }), 'a prefix longer than the number')
  t.notOk(matchesFilter(twilio, { phoneNumberPrefix: '416' }), 'a prefix is a prefix, not a substring')
  t.ok(matchesFilter(twilio, { isDefault: true }))
  t.notOk(matchesFilter(twilio, { isDefault: false }))
  t.ok(matchesFilter(sinch, { isDefault: false }))
  t.ok(matchesFilter(twilio, { isInboundEnabled: true }))
  t.notOk(matchesFilter(twilio, { isInboundEnabled: false }))
  t.ok(matchesFilter(sinch, { isInboundEnabled: false }))
  t.ok(matchesFilter(twilio, { label: 'MAIN' }), 'label ignores case')
  t.ok(matchesFilter(twilio, { label: 'n out' }), 'label is a substring')
  t.notOk(matchesFilter(twilio, { label: 'inbound' }))
  t.notOk(matchesFilter(sinch, { label: 'a' }), 'an entry without a label never matches a label filter')
  t.notOk(matchesFilter(entry('twilio', '+1', { label: 'a.b' }), { label: '.*' }), 'label ".*" is literal')
  t.ok(matchesFilter(entry('twilio', '+1', { label: 'a.*b' }), { label: '.*' }))

  t.ok(matchesFilter(twilio, { provider: 'twilio', phoneNumberPrefix: '+1416', isDefault: true, isInboundEnabled: true, label: 'main' }), 'all filters, all met')
  t.notOk(matchesFilter(twilio, { provider: 'twilio', phoneNumberPrefix: '+1905' }), 'provider of this entry, prefix of another: no')
  t.notOk(matchesFilter(sinch, { provider: 'twilio', phoneNumberPrefix: '+1905' }), 'prefix of this entry, provider of another: no')
  // userId is the query's business, not the entry's: matchesFilter ignores it.
  t.ok(matchesFilter(twilio, { userId: new ObjectId() }))
})

t.test('listableEntries: skips other shapes, orders by phone number then provider, starts after a position', async (t) => {
  const a = entry('twilio', '+14165550100')
  const b = entry('sinch', '+14165550100')
  const c = entry('textgrid', '+14165550100')
  const d = entry('twilio', '+1416555010')
  const e = entry('sinch', '+19055550100', { label: 'Desk' })
  const raw: unknown[] = [
    a, null, 'a string', 42, ['array'], e,
    { provider: 'twilio' },
    { provider: 'whatsapp', phoneNumber: '+14160000000', isDefault: true, isInboundEnabled: true, createdAt: created, updatedAt: created },
    { provider: 'twilio', phoneNumber: '+14160000001', isDefault: 'yes', isInboundEnabled: true, createdAt: created, updatedAt: created },
    { provider: 'twilio', phoneNumber: '+14160000002', isDefault: true, isInboundEnabled: true, label: 7, createdAt: created, updatedAt: created },
    { provider: 'twilio', phoneNumber: '+14160000003', isDefault: true, isInboundEnabled: true, label: null, createdAt: created, updatedAt: created },
    { provider: 'twilio', phoneNumber: '+14160000004', isDefault: true, isInboundEnabled: true, createdAt: '2024-01-01', updatedAt: created },
    { provider: 'twilio', phoneNumber: '+14160000005', isDefault: true, isInboundEnabled: true, createdAt: new Date(Number.NaN), updatedAt: created },
    { provider: 'twilio', phoneNumber: '+14160000006', isDefault: true, isInboundEnabled: true },
    { provider: 'twilio', phoneNumber: 14160000007, isDefault: true, isInboundEnabled: true, createdAt: created, updatedAt: created },
    c, b, d
  ]
  const ordered = [d, b, c, a, e]
  t.same(listableEntries(raw, {}, undefined), ordered, 'other shapes skipped; "+1416555010" before "+14165550100"; sinch < textgrid < twilio')
  t.same(listableEntries(raw, { provider: 'twilio' }, undefined), [d, a], 'filtered per entry')
  t.same(listableEntries(raw, { label: 'desk' }, undefined), [e])
  t.same(listableEntries('not an array', {}, undefined), [])
  t.same(listableEntries(null, {}, undefined), [])
  t.same(listableEntries(undefined, {}, undefined), [])
  t.same(listableEntries({ 0: a }, {}, undefined), [], 'an object is not a list')
  t.equal(raw.length, 18, 'the input is left as it was')
  t.equal(raw[1], null)

  const userId = new ObjectId()
  for (let i = 0; i < ordered.length; i++) {
    const at = ordered[i]!
    t.same(listableEntries(raw, {}, { userId, phoneNumber: at.phoneNumber, provider: at.provider }), ordered.slice(i + 1), `after ${at.provider} ${at.phoneNumber}: the entries after it`)
  }
  // A position whose entry is gone (removed between pages): the entries after where it was.
  t.same(listableEntries(raw.filter((item) => item !== c), {}, { userId, phoneNumber: c.phoneNumber, provider: c.provider }), [a, e], 'after the removed textgrid entry: twilio of the same number, then the next number')
  t.same(listableEntries(raw, {}, { userId, phoneNumber: '+1416555010', provider: 'sinch' }), [d, b, c, a, e], 'before the first entry')
  t.same(listableEntries(raw, {}, { userId, phoneNumber: '+19999999999', provider: 'twilio' }), [], 'after the last entry')
  t.same(listableEntries(raw, {}, { userId }), ordered, 'a position after a whole user (no phone number) does not cut inside the list')
  t.same(listableEntries(raw, { provider: 'twilio' }, { userId, phoneNumber: '+1416555010', provider: 'twilio' }), [a], 'filters and position together')
})

t.test('compareEntries: phone number first, then provider, by string comparison', async (t) => {
  t.ok(compareEntries(entry('twilio', '+1416'), entry('sinch', '+14160')) < 0, 'a shorter number that is a prefix comes first, whatever the provider')
  t.ok(compareEntries(entry('sinch', '+2'), entry('twilio', '+10')) > 0, 'string order, not numeric order')
  t.ok(compareEntries(entry('sinch', '+1'), entry('textgrid', '+1')) < 0)
  t.ok(compareEntries(entry('textgrid', '+1'), entry('twilio', '+1')) < 0)
  t.equal(compareEntries(entry('twilio', '+1', { label: 'x' }), entry('twilio', '+1', { isDefault: true })), 0, 'only the key counts')
})

t.test('listQuery: organization, position and dotted prefilters, with the text escaped', async (t) => {
  const organizationId = new ObjectId()
  const userId = new ObjectId()
  t.same(listQuery(organizationId, 'phoneNumbers', {}, undefined), { organizationId }, 'no filter, no position: the organization only')
  t.same(listQuery(organizationId, 'phoneNumbers', {}, { userId }), { $and: [{ organizationId }, { _id: { $gt: userId } }] }, 'after a whole user: strictly greater ids')
  t.same(listQuery(organizationId, 'phoneNumbers', {}, { userId, phoneNumber: '+1', provider: 'twilio' }), { $and: [{ organizationId }, { _id: { $gte: userId } }] }, 'inside a user: that user again')
  const query = listQuery(organizationId, 'numbers', {
    userId, provider: 'sinch', phoneNumberPrefix: '+1416', label: 'a.*(b', isInboundEnabled: false, isDefault: true
  } satisfies ListFilter, undefined)
  t.same(query, {
    $and: [
      { organizationId },
      { _id: userId },
      { 'numbers.provider': 'sinch' },
      { 'numbers.phoneNumber': { $regex: '^\\+1416' } },
      { 'numbers.isInboundEnabled': false },
      { 'numbers.isDefault': true },
      { 'numbers.label': { $regex: 'a\\.\\*\\(b', $options: 'i' } }
    ]
  }, 'every filter on the configured field, label and prefix escaped')
})
