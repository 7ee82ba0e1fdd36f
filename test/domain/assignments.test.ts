/**
 * Unit tests for the pure assignment-list rules in src/domain/assignments.ts.
 * No database, no Fastify: every input list is deep-frozen, so any mutation of
 * the caller's data throws (ES modules run in strict mode) and fails the test.
 */
import t from 'tap'
import {
  readAssignments,
  removeAssignment,
  upsertAssignment,
  type AssignmentInput,
  type Provider,
  type StoredAssignment
} from '../../src/domain/assignments.js'

const CREATED = new Date('2024-01-01T00:00:00.000Z')
const UPDATED = new Date('2024-02-01T00:00:00.000Z')
const NOW = new Date('2024-03-01T00:00:00.000Z')

function stored (provider: Provider, phoneNumber: string, extra: Partial<StoredAssignment> = {}): StoredAssignment {
  return {
    provider,
    phoneNumber,
    isDefault: false,
    isInboundEnabled: true,
    createdAt: new Date(CREATED),
    updatedAt: new Date(UPDATED),
    ...extra
  }
}

/** Freezes arrays and plain objects all the way down (Dates are left alone: freezing does not stop setTime). */
function deepFreeze<T> (value: T): T {
  if (value !== null && typeof value === 'object' && !(value instanceof Date)) {
    for (const child of Object.values(value)) deepFreeze(child)
    Object.freeze(value)
  }
  return value
}

/** A frozen list, plus a structured clone of it taken before the call, to prove it is unchanged afterwards. */
function frozenList (entries: unknown[]): { list: readonly StoredAssignment[], snapshot: unknown[] } {
  const snapshot = structuredClone(entries)
  return { list: deepFreeze(entries) as readonly StoredAssignment[], snapshot }
}

/** Entries another program may have written into the same array; ours to keep, not to read or rewrite. */
function foreign (value: unknown): StoredAssignment {
  return value as StoredAssignment
}

function entryAt (list: readonly StoredAssignment[] | undefined, index: number): StoredAssignment {
  const entry = list?.[index]
  if (entry === undefined) throw new Error(`no entry at ${index}`)
  return entry
}

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
