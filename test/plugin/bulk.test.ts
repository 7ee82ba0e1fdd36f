/**
 * POST /phone-numbers/bulk through the real plugin on a real database: each
 * item answers what the single assign answers for it (checked against the
 * single route itself), items for one user or one number keep their order,
 * invalid or repeating bodies write nothing, 1,000 items are all stored, and
 * the Idempotency-Key replays a bulk answer.
 */
import t from 'tap'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { ObjectId } from 'mongodb'
import type { PhoneNumberEvent } from '../../plugins/phone-numbers/index.js'
import { build, phoneNumbersUrl, settledSnapshot, type Built } from '../helper.js'

// FerretDB 1.24 applies about 10 assigns a second: the 1,000-item request alone takes it 100 s on a quiet machine, over 200 s on a busy one.
t.setTimeout(600_000)

const VISIBILITY_MS = 200

function bulkUrl (organizationId: string): string {
  return `${phoneNumbersUrl(organizationId)}/bulk`
}

/** The organization's whole change log, read through the API a page at a time. */
async function organizationEvents (built: Built): Promise<PhoneNumberEvent[]> {
  await built.app.orgPhoneNumbers.eventsFlushed()
  await new Promise((resolve) => setTimeout(resolve, VISIBILITY_MS + 50))
  const events: PhoneNumberEvent[] = []
  for (let after: string | null | undefined; after !== null;) {
    const response = await built.app.inject({ method: 'GET', url: `${phoneNumbersUrl(built.fixture.organizationId)}/events?limit=1000${after === undefined ? '' : `&after=${after}`}`, headers: built.headers })
    if (response.statusCode !== 200) throw new Error(`events answered ${response.statusCode}: ${response.body}`)
    const page = response.json() as { events: PhoneNumberEvent[], nextCursor: string | null }
    events.push(...page.events)
    after = page.nextCursor
  }
  return events
}

/** Users added to the fixture's organization, for more numbers than the per-user limit allows one user. */
async function addUsers (built: Built, count: number): Promise<string[]> {
  const ids = Array.from({ length: count }, () => new ObjectId())
  await built.db.collection('users').insertMany(ids.map((_id, n) => ({ _id, organizationId: new ObjectId(built.fixture.organizationId), name: `Bulk ${n}`, role: 'AGENT' })))
  return ids.map((id) => id.toHexString())
}

t.test('each item answers what the single assign answers, in order, and is stored as such', async (t) => {
  const built = await build(t, { eventVisibilityDelayMs: VISIBILITY_MS })
  const { app, fixture, headers } = built
  // A number held in the other organization.
  t.equal((await app.inject({ method: 'POST', url: phoneNumbersUrl(fixture.otherOrganizationId), headers, payload: { targetUserId: fixture.foreignUserId, provider: 'twilio', phoneNumber: '+14165550900' } })).statusCode, 200)
  const foreignBefore = await built.userDocument(fixture.foreignUserId)

  const assignments = [
    { targetUserId: fixture.userId, provider: 'twilio', phoneNumber: '+14165550101', label: 'Desk' },
    { targetUserId: fixture.userId, provider: 'twilio', phoneNumber: '+14165550900' },
    { targetUserId: fixture.foreignUserId, provider: 'sinch', phoneNumber: '+14165550102' },
    // The number of item 0 under another provider: its inbound route is item 0's, so refused (item 0 runs first).
    { targetUserId: fixture.userId, provider: 'textgrid', phoneNumber: '+14165550101' },
    // A later default of the same provider for the same user: it wins over item 0.
    { targetUserId: fixture.userId, provider: 'twilio', phoneNumber: '+14165550103', isInboundEnabled: false },
    { targetUserId: fixture.otherUserId, provider: 'sinch', phoneNumber: '+14165550104', isDefault: false, unknownField: 'ignored' }
  ]
  const response = await app.inject({ method: 'POST', url: bulkUrl(fixture.organizationId), headers, payload: { assignments } })
  t.equal(response.statusCode, 200)
  const { results } = response.json() as { results: Array<Record<string, unknown>> }
  t.same(results.map((result) => [result['index'], result['status']]), [[0, 200], [1, 409], [2, 404], [3, 409], [4, 200], [5, 200]])

  const [desk, , , , second, other] = results
  t.same(desk, {
    index: 0,
    status: 200,
    assignment: { userId: fixture.userId, provider: 'twilio', phoneNumber: '+14165550101', isDefault: true, isInboundEnabled: true, label: 'Desk', createdAt: (desk?.['assignment'] as Record<string, string>)['createdAt'], updatedAt: (desk?.['assignment'] as Record<string, string>)['createdAt'] }
  })
  t.match(second, { index: 4, status: 200, assignment: { userId: fixture.userId, provider: 'twilio', phoneNumber: '+14165550103', isDefault: true, isInboundEnabled: false } })
  t.match(other, { index: 5, status: 200, assignment: { userId: fixture.otherUserId, provider: 'sinch', phoneNumber: '+14165550104', isDefault: false } })
  t.notOk('error' in (desk ?? {}), 'a success carries no error')

  // The refused items answer, field for field, what the single route answers for them (it writes nothing on a refusal).
  for (const index of [1, 2, 3]) {
    const single = await app.inject({ method: 'POST', url: phoneNumbersUrl(fixture.organizationId), headers, payload: assignments[index]! })
    t.same(results[index], { index, status: single.statusCode, ...single.json() }, `item ${index} as the single route answers it: ${single.body}`)
  }
  t.match(results[1], { error: 'Phone number belongs to another organization' })
  t.match(results[2], { error: 'Target user not found in organization' })
  t.match(results[3], { error: 'Inbound route held by another assignment' })

  const stored = await built.phoneNumbersOf(fixture.userId) as Array<Record<string, unknown>>
  t.same(stored.map((entry) => [entry['provider'], entry['phoneNumber'], entry['isDefault'], entry['isInboundEnabled'], entry['label']]), [
    ['twilio', '+14165550101', false, true, 'Desk'],
    ['twilio', '+14165550103', true, false, undefined]
  ], 'item 0 stored, then made non-default by item 4; items 1 and 3 wrote nothing')
  const otherStored = await built.phoneNumbersOf(fixture.otherUserId) as Array<Record<string, unknown>>
  t.same(otherStored.map((entry) => Object.keys(entry).sort()), [['createdAt', 'isDefault', 'isInboundEnabled', 'phoneNumber', 'provider', 'updatedAt']], 'the unknown field was not stored')
  t.same(await built.userDocument(fixture.foreignUserId), foreignBefore, 'the other organization\'s user untouched')

  const events = await organizationEvents(built)
  // Items on disjoint users and numbers overlap, so only each number's own events have an order.
  t.same(events.map((event) => `${event.phoneNumber} ${event.type}`).sort(), [
    '+14165550101 assigned',
    '+14165550101 updated',
    '+14165550103 assigned',
    '+14165550104 assigned'
  ], 'the events of the stored items, with the default cleared by item 4')
  t.same(events.filter((event) => event.phoneNumber === '+14165550101').map((event) => event.type), ['assigned', 'updated'])
  t.ok(events.every((event) => event.requestId === events[0]?.requestId && event.actor.sub === fixture.adminId), 'all recorded for the one request and caller')
})

t.test('items of one user keep their order: the per-user limit stops the later ones', async (t) => {
  const built = await build(t, { maxNumbersPerUser: 2 })
  const { app, fixture, headers } = built
  const assignments = ['+14165550201', '+14165550202', '+14165550203', '+14165550204'].map((phoneNumber) => ({ targetUserId: fixture.userId, provider: 'sinch', phoneNumber }))
  const response = await app.inject({ method: 'POST', url: bulkUrl(fixture.organizationId), headers, payload: { assignments } })
  t.equal(response.statusCode, 200)
  const { results } = response.json() as { results: Array<Record<string, unknown>> }
  t.same(results.map((result) => result['status']), [200, 200, 409, 409])
  t.same(results[2], { index: 2, status: 409, error: 'Phone number limit reached', details: 'The user already holds 2 or more numbers, the most allowed per user; remove one before assigning another' })
  t.same((await built.phoneNumbersOf(fixture.userId) as Array<Record<string, unknown>>).map((entry) => entry['phoneNumber']), ['+14165550201', '+14165550202'])
})

t.test('two items for the same user, provider and number answer 400 and write nothing', async (t) => {
  const built = await build(t)
  const { app, fixture, headers } = built
  const before = await settledSnapshot(built.db)
  const response = await app.inject({
    method: 'POST',
    url: bulkUrl(fixture.organizationId),
    headers,
    payload: {
      assignments: [
        { targetUserId: fixture.userId, provider: 'twilio', phoneNumber: '+14165550301' },
        { targetUserId: fixture.otherUserId, provider: 'twilio', phoneNumber: '+14165550302' },
        // The same user (its id in upper case), provider and number as item 0.
        { targetUserId: fixture.userId.toUpperCase(), provider: 'twilio', phoneNumber: '+14165550301', label: 'again' }
      ]
    }
  })
  t.equal(response.statusCode, 400)
  t.same(response.json(), { error: 'Validation error', details: 'body/assignments/2 names the same targetUserId, provider and phoneNumber as body/assignments/0; nothing was written' })
  t.same(await settledSnapshot(built.db), before, 'nothing was written')
  t.equal(await built.db.collection('phoneNumberEvents').countDocuments(), 0, 'no event')
})

t.test('a body that fails the schema answers 400 and writes nothing', async (t) => {
  const built = await build(t)
  const { app, fixture, headers } = built
  const before = await settledSnapshot(built.db)
  const valid = { targetUserId: fixture.userId, provider: 'twilio', phoneNumber: '+14165550401' }
  const cases: Array<[string, unknown, RegExp]> = [
    ['one bad item among good ones', { assignments: [valid, { ...valid, phoneNumber: '+14165550402' }, { ...valid, phoneNumber: '416-555-0403' }] }, /^body\/assignments\/2\/phoneNumber must match pattern/],
    ['no items', { assignments: [] }, /^body\/assignments must NOT have fewer than 1 items/],
    ['1,001 items', { assignments: Array.from({ length: 1001 }, (_, n) => ({ ...valid, phoneNumber: `+1416556${String(n).padStart(4, '0')}` })) }, /^body\/assignments must NOT have more than 1000 items/],
    ['no assignments field', { items: [valid] }, /^body must have required property 'assignments'/],
    ['an item of the wrong type', { assignments: [valid, 'x'] }, /^body\/assignments\/1 must be object/]
  ]
  for (const [name, payload, details] of cases) {
    const response = await app.inject({ method: 'POST', url: bulkUrl(fixture.organizationId), headers, payload: payload as Record<string, unknown> })
    t.equal(response.statusCode, 400, name)
    t.equal(response.json().error, 'Validation error', name)
    t.match(response.json().details, details, name)
  }
  t.same(await settledSnapshot(built.db), before, 'nothing was written')
  t.equal(await built.db.collection('phoneNumberEvents').countDocuments(), 0, 'no event')
})

t.test('only a SUPERADMIN may call it; its body limit is its own', async (t) => {
  const built = await build(t)
  const { app, fixture, sign } = built
  const agent = { authorization: `Bearer ${sign({ sub: fixture.userId, role: 'AGENT' })}`, 'content-type': 'application/json' }
  const refused = await app.inject({ method: 'POST', url: bulkUrl(fixture.organizationId), headers: agent, payload: { assignments: [{ targetUserId: fixture.userId, provider: 'twilio', phoneNumber: '+14165550501' }] } })
  t.equal(refused.statusCode, 403)
  t.equal(refused.json().error, 'Forbidden')
  const tooLarge = await app.inject({ method: 'POST', url: bulkUrl(fixture.organizationId), headers: built.headers, payload: { assignments: [{ targetUserId: fixture.userId, provider: 'twilio', phoneNumber: '+14165550501' }], padding: 'x'.repeat(262_144) } })
  t.equal(tooLarge.statusCode, 413)
  t.same(await built.phoneNumbersOf(fixture.userId), [])
})

t.test('1,000 items in one request: every one stored, 1,000 results in order', async (t) => {
  const built = await build(t, { eventVisibilityDelayMs: VISIBILITY_MS })
  const { app, fixture, headers } = built
  const users = await addUsers(built, 10)
  const assignments = Array.from({ length: 1000 }, (_, n) => ({
    targetUserId: users[n % users.length]!,
    provider: n % 2 === 0 ? 'twilio' : 'sinch',
    phoneNumber: `+1647555${String(n).padStart(4, '0')}`,
    isDefault: n < users.length * 2,
    label: `Bulk line ${n}`
  }))
  const payload = JSON.stringify({ assignments })
  t.ok(payload.length > 16_384, `the body (${payload.length} bytes) is over the plugin's default body limit`)

  const delay = monitorEventLoopDelay({ resolution: 1 })
  delay.enable()
  const started = performance.now()
  const response = await app.inject({ method: 'POST', url: bulkUrl(fixture.organizationId), headers, payload })
  const elapsed = performance.now() - started
  delay.disable()
  // Reported, not asserted: a shared two-core machine makes timings noisy.
  t.comment(`1,000-item bulk assign: ${elapsed.toFixed(0)} ms; event-loop delay max ${(delay.max / 1e6).toFixed(1)} ms, p99 ${(delay.percentile(99) / 1e6).toFixed(1)} ms`)

  t.equal(response.statusCode, 200)
  const { results } = response.json() as { results: Array<{ index: number, status: number, assignment?: { phoneNumber: string, userId: string } }> }
  t.equal(results.length, 1000)
  const unlike = results.filter((result, n) => !(result.index === n && result.status === 200 && result.assignment?.phoneNumber === assignments[n]!.phoneNumber && result.assignment.userId === assignments[n]!.targetUserId))
  t.same(unlike.slice(0, 5), [], `each result is its item's, assigned (${unlike.length} are not)`)
  for (const [u, userId] of users.entries()) {
    const stored = await built.phoneNumbersOf(userId) as Array<Record<string, unknown>>
    const expected = assignments.filter((_, n) => n % users.length === u)
    t.same(stored.map((entry) => [entry['phoneNumber'], entry['provider'], entry['label']]), expected.map((item) => [item.phoneNumber, item.provider, item.label]), `user ${u} holds its 100 numbers, in item order`)
  }
  const events = await organizationEvents(built)
  t.equal(events.filter((event) => event.type === 'assigned').length, 1000, 'one assigned event per item')
})

t.test('an Idempotency-Key replays a bulk answer', async (t) => {
  const built = await build(t)
  const { app, fixture } = built
  const request = {
    method: 'POST' as const,
    url: bulkUrl(fixture.organizationId),
    headers: { ...built.headers, 'idempotency-key': 'bulk-1' },
    payload: { assignments: [{ targetUserId: fixture.userId, provider: 'twilio', phoneNumber: '+14165550601' }, { targetUserId: fixture.otherUserId, provider: 'twilio', phoneNumber: '+14165550602' }] }
  }
  const first = await app.inject(request)
  t.equal(first.statusCode, 200)
  const stored = await settledSnapshot(built.db)
  const second = await app.inject(request)
  t.equal(second.statusCode, 200)
  t.equal(second.headers['idempotent-replayed'], 'true')
  t.equal(second.body, first.body)
  t.same(await settledSnapshot(built.db), stored, 'the replay wrote nothing')
  const other = await app.inject({ ...request, payload: { assignments: [request.payload.assignments[0]!] } })
  t.equal(other.statusCode, 422)
})

t.test('an item that fails on the server answers its 5xx, and the bulk answer is not replayed', async (t) => {
  let failures = 1
  const onStep = async (step: string): Promise<void> => {
    if (step === 'assign:claimed' && failures-- > 0) throw new Error('simulated database failure')
  }
  // The store's crash-test hook, handed over through the plugin's options (as test/server/metrics.test.ts does).
  const built = await build(t, { onStep } as Parameters<typeof build>[1])
  const { app, fixture } = built
  const request = {
    method: 'POST' as const,
    url: bulkUrl(fixture.organizationId),
    headers: { ...built.headers, 'idempotency-key': 'bulk-flaky' },
    payload: { assignments: [{ targetUserId: fixture.userId, provider: 'twilio', phoneNumber: '+14165550701' }] }
  }
  const first = await app.inject(request)
  t.equal(first.statusCode, 200)
  const [result] = (first.json() as { results: Array<Record<string, unknown>> }).results
  t.match(result, { index: 0, status: 500, error: 'Internal server error', details: /^The request could not be completed \(request id / })
  t.same(await built.db.collection('phoneNumberIdempotency').countDocuments(), 0, 'the answer was not kept')

  const retried = await app.inject(request)
  t.equal(retried.headers['idempotent-replayed'], undefined, 'the retry ran')
  t.match(retried.json(), { results: [{ index: 0, status: 200 }] })
  t.equal((await built.phoneNumbersOf(fixture.userId)).length, 1)
  t.equal((await app.inject(request)).headers['idempotent-replayed'], 'true', 'and its answer is kept')
})
