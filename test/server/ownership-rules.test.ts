/**
 * Rules 1 (one organization per number) and 2 (one inbound route per number)
 * through the real standalone server process, over HTTP, checked against the
 * stored user documents and claims; and rule 5 (data other code wrote into the
 * users: odd array entries, a numbers field that is not an array).
 */
import t from 'tap'
import { canonical, entry, MALFORMED, RULE_1, RULE_2, startHarness } from './ownership-helper.js'

t.setTimeout(240_000)

const h = await startHarness(t)

t.test('rule 1: a number assigned in one organization is refused to another, whatever the flags or provider', async (t) => {
  const f = await h.fixture({ b1: { phoneNumbers: [] } })
  const n = h.number()
  const held = await h.assign(f.orgA, { targetUserId: f.a1, provider: 'twilio', phoneNumber: n })
  t.equal(held.status, 200, 'assigned in A')
  const b1Before = await h.userJson(f.b1)
  const attempts: Array<[string, Record<string, unknown>]> = [
    ['same provider, default flags', { provider: 'twilio' }],
    ['isInboundEnabled false', { provider: 'twilio', isInboundEnabled: false }],
    ['another provider', { provider: 'sinch' }],
    ['another provider, outbound only, not default', { provider: 'textgrid', isInboundEnabled: false, isDefault: false }]
  ]
  for (const [name, fields] of attempts) {
    const refused = await h.assign(f.orgB, { targetUserId: f.b1, phoneNumber: n, ...fields })
    t.equal(refused.status, 409, `${name}: 409`)
    t.equal(refused.body['error'], RULE_1, `${name}: title`)
    const details = String(refused.body['details'])
    t.match(details, n, `${name}: details name the number`)
    for (const secret of [f.orgA, f.a1]) t.notOk(details.toLowerCase().includes(secret.toLowerCase()), `${name}: details do not leak ${secret === f.orgA ? "org A's id" : "A's user id"}`)
    t.same(await h.userJson(f.b1), b1Before, `${name}: B's user document unchanged`)
  }
  const entries = await h.entriesOf(n)
  t.same(entries.map((e) => [e.userId, e.entry['provider'], e.entry['isInboundEnabled']]), [[f.a1, 'twilio', true]], 'only A holds the number')
  t.equal(String((await h.claim(n))?.['organizationId']), f.orgA, 'the claim names organization A')
})

t.test('rule 1: the number is free for another organization only once the last holder in A removed it', async (t) => {
  const f = await h.fixture()
  const n = h.number()
  t.equal((await h.assign(f.orgA, { targetUserId: f.a1, provider: 'twilio', phoneNumber: n })).status, 200, 'a1 holds it (inbound)')
  t.equal((await h.assign(f.orgA, { targetUserId: f.a2, provider: 'sinch', phoneNumber: n, isInboundEnabled: false })).status, 200, 'a2 holds it (outbound only, other provider)')

  t.equal((await h.remove(f.orgA, { targetUserId: f.a1, provider: 'twilio', phoneNumber: n })).status, 200, 'first holder removes it')
  t.same(await h.numbersOf(f.a1), [], 'a1 holds nothing')
  const b1Before = await h.userJson(f.b1)
  const stillRefused = await h.assign(f.orgB, { targetUserId: f.b1, provider: 'twilio', phoneNumber: n })
  t.equal(stillRefused.status, 409, 'still refused while a2 holds it')
  t.equal(stillRefused.body['error'], RULE_1)
  t.notOk(String(stillRefused.body['details']).includes(f.a2), 'details do not name the remaining holder')
  t.same(await h.userJson(f.b1), b1Before, "B's user unchanged")
  t.equal(String((await h.claim(n))?.['organizationId']), f.orgA, 'claim still organization A')

  t.equal((await h.remove(f.orgA, { targetUserId: f.a2, provider: 'sinch', phoneNumber: n })).status, 200, 'last holder removes it')
  t.same(await h.entriesOf(n), [], 'no user holds it')
  t.equal(await h.claim(n), null, 'claim released with the last holder')

  const taken = await h.assign(f.orgB, { targetUserId: f.b1, provider: 'sinch', phoneNumber: n, label: 'B line' })
  t.equal(taken.status, 200, 'organization B can assign it now')
  const stored = await h.entriesOf(n)
  t.same(stored.map((e) => [e.userId, e.organizationId, e.entry['provider'], e.entry['isInboundEnabled'], e.entry['label']]), [[f.b1, f.orgB, 'sinch', true, 'B line']])
  const claim = await h.claim(n)
  t.equal(String(claim?.['organizationId']), f.orgB, 'claim moved to organization B')
  t.same({ userId: String(claim?.['inbound']?.userId), provider: claim?.['inbound']?.provider }, { userId: f.b1, provider: 'sinch' }, 'claim routes to b1')

  const backToA = await h.assign(f.orgA, { targetUserId: f.a1, provider: 'twilio', phoneNumber: n, isInboundEnabled: false })
  t.equal(backToA.status, 409, 'and now A is the one refused')
  t.equal(backToA.body['error'], RULE_1)
  t.notOk(String(backToA.body['details']).includes(f.b1) || String(backToA.body['details']).includes(f.orgB), "no leak of B's ids either")
  t.same(await h.numbersOf(f.a1), [], 'a1 unchanged')
})

t.test('rule 2: a second inbound assignment in the same organization is refused and names the holder', async (t) => {
  const f = await h.fixture()
  const n = h.number()
  t.equal((await h.assign(f.orgA, { targetUserId: f.a1, provider: 'twilio', phoneNumber: n, label: 'Desk' })).status, 200, 'a1 takes the route (isInboundEnabled defaults to true)')
  const a2Before = await h.userJson(f.a2)
  for (const [name, fields] of [
    ['default flags', { provider: 'twilio' }],
    ['explicit isInboundEnabled true', { provider: 'twilio', isInboundEnabled: true }],
    ['another provider', { provider: 'sinch' }]
  ] as const) {
    const refused = await h.assign(f.orgA, { targetUserId: f.a2, phoneNumber: n, ...fields })
    t.equal(refused.status, 409, `${name}: 409`)
    t.equal(refused.body['error'], RULE_2, `${name}: title`)
    t.match(String(refused.body['details']), f.a1, `${name}: details name the holder`)
    t.same(await h.userJson(f.a2), a2Before, `${name}: a2 unchanged`)
  }
  const a1Repeat = await h.assign(f.orgA, { targetUserId: f.a1, provider: 'sinch', phoneNumber: n })
  t.equal(a1Repeat.status, 409, "the holder's other provider is another assignment too")
  t.equal(a1Repeat.body['error'], RULE_2)
  t.same((await h.entriesOf(n)).map((e) => [e.userId, e.entry['provider']]), [[f.a1, 'twilio']], 'still only a1 twilio')
})

t.test('rule 2: outbound-only copies are allowed beside the route; the holder repeats its upsert without a write', async (t) => {
  const f = await h.fixture()
  const n = h.number()
  const first = await h.assign(f.orgA, { targetUserId: f.a1, provider: 'twilio', phoneNumber: n })
  t.equal(first.status, 200)
  const second = await h.assign(f.orgA, { targetUserId: f.a2, provider: 'twilio', phoneNumber: n, isInboundEnabled: false })
  t.equal(second.status, 200, 'outbound-only copy on a2')
  t.equal((await h.assign(f.orgA, { targetUserId: f.a3, provider: 'sinch', phoneNumber: n, isInboundEnabled: false })).status, 200, 'and another on a3 (sinch)')
  const entries = await h.entriesOf(n)
  t.same(entries.map((e) => [e.userId, e.entry['provider'], e.entry['isInboundEnabled']]).sort(), [
    [f.a1, 'twilio', true], [f.a2, 'twilio', false], [f.a3, 'sinch', false]
  ].sort(), 'three stored, one inbound')
  t.equal(entries.filter((e) => e.entry['isInboundEnabled'] === true).length, 1)

  const a1Before = await h.userJson(f.a1)
  const repeat = await h.assign(f.orgA, { targetUserId: f.a1, provider: 'twilio', phoneNumber: n })
  t.equal(repeat.status, 200, "the holder's own repeat upsert")
  t.same(repeat.body['assignment'], first.body['assignment'], 'answers the same assignment (same updatedAt)')
  t.same(await h.userJson(f.a1), a1Before, 'a1 document unchanged (revision and updatedAt included)')

  const route = await h.lookup(encodeURIComponent(n))
  t.equal(route.status, 200)
  t.equal(route.body['userId'], f.a1, 'the route is a1')
})

t.test('rule 2: switching the route off, or removing the holder, frees the route for another user', async (t) => {
  const f = await h.fixture()
  const n = h.number()
  t.equal((await h.assign(f.orgA, { targetUserId: f.a1, provider: 'twilio', phoneNumber: n })).status, 200)
  t.equal((await h.assign(f.orgA, { targetUserId: f.a2, provider: 'twilio', phoneNumber: n })).status, 409, 'held by a1')

  const off = await h.assign(f.orgA, { targetUserId: f.a1, provider: 'twilio', phoneNumber: n, isInboundEnabled: false })
  t.equal(off.status, 200, 'a1 switches its route off')
  t.match(await h.numbersOf(f.a1), [{ phoneNumber: n, isInboundEnabled: false }])
  t.equal((await h.claim(n))?.['inbound'] ?? null, null, 'the claim holds no route')
  t.equal((await h.lookup(encodeURIComponent(n))).status, 404, 'nobody routes it')

  const taken = await h.assign(f.orgA, { targetUserId: f.a2, provider: 'twilio', phoneNumber: n })
  t.equal(taken.status, 200, 'a2 takes the inbound route')
  t.same((await h.entriesOf(n)).map((e) => [e.userId, e.entry['isInboundEnabled']]).sort(), [[f.a1, false], [f.a2, true]].sort())
  t.equal(String((await h.claim(n))?.['inbound']?.userId), f.a2, 'claim routes to a2')

  // Removing the holder frees it as well.
  const a3Before = await h.userJson(f.a3)
  const refused = await h.assign(f.orgA, { targetUserId: f.a3, provider: 'sinch', phoneNumber: n })
  t.equal(refused.status, 409)
  t.equal(refused.body['error'], RULE_2)
  t.match(String(refused.body['details']), f.a2, 'names a2 now')
  t.same(await h.userJson(f.a3), a3Before)
  t.equal((await h.remove(f.orgA, { targetUserId: f.a2, provider: 'twilio', phoneNumber: n })).status, 200, 'a2 removes it')
  t.same(await h.numbersOf(f.a2), [])
  const afterRemoval = await h.assign(f.orgA, { targetUserId: f.a3, provider: 'sinch', phoneNumber: n })
  t.equal(afterRemoval.status, 200, 'a3 takes the route after the removal')
  t.same((await h.entriesOf(n)).map((e) => [e.userId, e.entry['provider'], e.entry['isInboundEnabled']]).sort(), [[f.a1, 'twilio', false], [f.a3, 'sinch', true]].sort())
  const route = await h.lookup(encodeURIComponent(n))
  t.same([route.status, route.body['userId'], route.body['provider']], [200, f.a3, 'sinch'])
})

t.test('a refused assign never writes the user (rule 1 and rule 2 on a user with other numbers)', async (t) => {
  const f = await h.fixture()
  const n = h.number()
  const own = h.number()
  t.equal((await h.assign(f.orgB, { targetUserId: f.b1, provider: 'twilio', phoneNumber: own, isDefault: true })).status, 200, 'b1 has a default twilio number')
  t.equal((await h.assign(f.orgA, { targetUserId: f.a1, provider: 'twilio', phoneNumber: n })).status, 200)
  const b1Before = await h.userJson(f.b1)
  // isDefault true would clear b1's other default if it were written.
  const refused = await h.assign(f.orgB, { targetUserId: f.b1, provider: 'twilio', phoneNumber: n, isDefault: true, isInboundEnabled: false })
  t.equal(refused.status, 409)
  t.equal(refused.body['error'], RULE_1)
  t.same(await h.userJson(f.b1), b1Before, "b1's default stays, nothing written")

  t.equal((await h.assign(f.orgA, { targetUserId: f.a2, provider: 'twilio', phoneNumber: h.number(), isDefault: true })).status, 200, 'a2 has a default twilio number')
  const a2Before = await h.userJson(f.a2)
  const held = await h.assign(f.orgA, { targetUserId: f.a2, provider: 'twilio', phoneNumber: n, isDefault: true })
  t.equal(held.status, 409)
  t.equal(held.body['error'], RULE_2)
  t.same(await h.userJson(f.a2), a2Before, "a2's default stays, nothing written")
})

t.test('rule 5: entries other code wrote (null, string, number, odd objects) stay in place through assign, remove, transfer and listing', async (t) => {
  const p = h.number()
  const q = h.number()
  const incomplete = h.number()
  const n = h.number()
  const odd = {
    before: [null, 'legacy-string'],
    between: [42, { provider: 'twilio' }, { provider: 'twilio', phoneNumber: incomplete }],
    after: [{ note: 'kept', nested: { a: [1, 2] } }]
  }
  const f = await h.fixture({
    a1: { phoneNumbers: [...odd.before, entry('twilio', p, { isDefault: false, label: 'P' }), ...odd.between, entry('sinch', q, { isDefault: true }), ...odd.after] },
    a2: { phoneNumbers: ['x', null, 7] }
  })
  const [a1Seeded, a2Seeded] = [await h.numbersOf(f.a1) as unknown[], await h.numbersOf(f.a2) as unknown[]]
  const c = canonical
  const listed = async (): Promise<Array<[unknown, unknown]>> => {
    const answer = await h.list(f.orgA)
    t.equal(answer.status, 200, 'listing answers 200')
    return (answer.body['phoneNumbers'] as Array<Record<string, unknown>>).map((e) => [e['userId'], e['phoneNumber']])
  }
  t.same((await listed()).sort(), [[f.a1, p], [f.a1, q]].sort(), 'listing skips the odd entries and the incomplete one')

  const assigned = await h.assign(f.orgA, { targetUserId: f.a1, provider: 'twilio', phoneNumber: n })
  t.equal(assigned.status, 200, 'assign beside odd entries')
  const afterAssign = await h.numbersOf(f.a1) as unknown[]
  t.same(c(afterAssign.slice(0, -1)), c(a1Seeded), 'every earlier entry unchanged and in place')
  t.match(afterAssign.at(-1), { provider: 'twilio', phoneNumber: n, isDefault: true, isInboundEnabled: true }, 'ours appended')

  t.equal((await h.remove(f.orgA, { targetUserId: f.a1, provider: 'twilio', phoneNumber: p })).status, 200, 'remove beside odd entries')
  const afterRemove = await h.numbersOf(f.a1) as unknown[]
  t.same(c(afterRemove), c([...a1Seeded.filter((_, i) => i !== 2), afterAssign.at(-1)]), 'only P left the array')

  const moved = await h.transfer(f.orgA, { phoneNumber: q, provider: 'sinch', fromUserId: f.a1, toUserId: f.a2 })
  t.equal(moved.status, 200, 'transfer between users with odd entries')
  const a1Final = await h.numbersOf(f.a1) as unknown[]
  const a2Final = await h.numbersOf(f.a2) as unknown[]
  t.same(c(a1Final), c(afterRemove.filter((e) => (e as Record<string, unknown> | null)?.['phoneNumber'] !== q)), 'only Q left the source')
  t.same(c(a2Final.slice(0, -1)), c(a2Seeded), "the target's odd entries unchanged and in place")
  t.match(a2Final.at(-1), { provider: 'sinch', phoneNumber: q, isDefault: true, isInboundEnabled: true })

  t.same((await listed()).sort(), [[f.a1, n], [f.a2, q]].sort(), 'listing still skips them')
  const route = await h.lookup(encodeURIComponent(q))
  t.same([route.status, route.body['userId']], [200, f.a2], 'lookup beside odd entries')
  t.equal((await h.lookup(encodeURIComponent(incomplete))).status, 404, 'an entry without isInboundEnabled routes nothing')
  t.same((await h.remove(f.orgA, { targetUserId: f.a1, provider: 'twilio', phoneNumber: p })).status, 404, 'removing it again: 404, not 500')
  t.same(c(await h.numbersOf(f.a1)), c(a1Final), 'and nothing written')
})

t.test('rule 5: a numbers field that is not an array answers 409 "Malformed user document" and is never overwritten', async (t) => {
  const n = h.number()
  const fresh = h.number()
  const f = await h.fixture({
    a1: { phoneNumbers: 'not-an-array' },
    a2: { phoneNumbers: { provider: 'twilio', phoneNumber: n, isInboundEnabled: true } },
    b1: { phoneNumbers: 12 }
  })
  t.equal((await h.assign(f.orgA, { targetUserId: f.a3, provider: 'twilio', phoneNumber: n })).status, 200, 'a3 holds the number (the object on a2 is not an assignment)')
  const users = await h.allUsers()
  const claims = await h.claimRoutes()
  const attempts: Array<[string, () => Promise<{ status: number, body: Record<string, unknown> }>]> = [
    ['assign to a string field', async () => await h.assign(f.orgA, { targetUserId: f.a1, provider: 'twilio', phoneNumber: fresh })],
    ['assign to an object field', async () => await h.assign(f.orgA, { targetUserId: f.a2, provider: 'sinch', phoneNumber: fresh, isInboundEnabled: false })],
    ['assign to a number field', async () => await h.assign(f.orgB, { targetUserId: f.b1, provider: 'twilio', phoneNumber: fresh })],
    ['remove from a string field', async () => await h.remove(f.orgA, { targetUserId: f.a1, provider: 'twilio', phoneNumber: n })],
    ['remove from an object field', async () => await h.remove(f.orgA, { targetUserId: f.a2, provider: 'twilio', phoneNumber: n })],
    ['transfer from a malformed source', async () => await h.transfer(f.orgA, { provider: 'twilio', phoneNumber: n, fromUserId: f.a1, toUserId: f.a3 })],
    ['transfer to a malformed target', async () => await h.transfer(f.orgA, { provider: 'twilio', phoneNumber: n, fromUserId: f.a3, toUserId: f.a2 })],
    ['transfer between two malformed users', async () => await h.transfer(f.orgA, { provider: 'twilio', phoneNumber: n, fromUserId: f.a2, toUserId: f.a1 })]
  ]
  for (const [name, attempt] of attempts) {
    const answer = await attempt()
    t.equal(answer.status, 409, `${name}: 409`)
    t.equal(answer.body['error'], MALFORMED, `${name}: title`)
    t.match(String(answer.body['details']), /phoneNumbers/, `${name}: details name the field`)
    t.same(await h.allUsers(), users, `${name}: no user written`)
  }
  t.same(await h.claimRoutes(), claims, 'the claims keep their organization and route')
  t.equal(await h.claim(fresh), null, 'no claim left for the refused number')
  const list = await h.list(f.orgA)
  t.equal(list.status, 200, 'listing skips malformed users')
  t.same((list.body['phoneNumbers'] as Array<Record<string, unknown>>).map((e) => [e['userId'], e['phoneNumber']]), [[f.a3, n]])
  const route = await h.lookup(encodeURIComponent(n))
  t.same([route.status, route.body['userId']], [200, f.a3], 'the route stays with a3')
})
