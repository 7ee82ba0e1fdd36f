/**
 * POST /api/organizations/{organizationId}/phone-numbers/transfer through the
 * real standalone server process, over HTTP, checked against the stored user
 * documents and claims: the move, every refusal (nothing written), and the
 * target-side inbound rule.
 */
import { ObjectId } from 'mongodb'
import t from 'tap'
import { entry, RULE_1, RULE_2, startHarness } from './ownership-helper.js'

t.setTimeout(240_000)

const h = await startHarness(t)

t.test('transfer moves the assignment and its inbound route; the answer is exactly the contract body', async (t) => {
  const f = await h.fixture()
  const n = h.number()
  const other = h.number()
  t.equal((await h.assign(f.orgA, { targetUserId: f.a1, provider: 'twilio', phoneNumber: n, label: 'Front desk' })).status, 200, 'a1: inbound, default, labelled')
  t.equal((await h.assign(f.orgA, { targetUserId: f.a2, provider: 'twilio', phoneNumber: other })).status, 200, 'a2: its own default twilio number')
  t.equal((await h.lookup(encodeURIComponent(n))).body['userId'], f.a1, 'routed to a1 before')

  const moved = await h.transfer(f.orgA, { phoneNumber: n, provider: 'twilio', fromUserId: f.a1, toUserId: f.a2 })
  t.equal(moved.status, 200)
  const a2Numbers = await h.numbersOf(f.a2) as Array<Record<string, unknown>>
  const target = a2Numbers.find((e) => e['phoneNumber'] === n)
  t.ok(target, 'a2 holds it')
  t.strictSame(moved.body, {
    success: true,
    message: 'twilio phone number transferred',
    assignment: {
      userId: f.a2,
      provider: 'twilio',
      phoneNumber: n,
      isDefault: true,
      isInboundEnabled: true,
      label: 'Front desk',
      createdAt: (target?.['createdAt'] as Date).toISOString(),
      updatedAt: (target?.['updatedAt'] as Date).toISOString()
    }
  }, 'exactly the contract body, with the stored times')
  t.same(await h.numbersOf(f.a1), [], "the source's entry is gone")
  t.match(target, { provider: 'twilio', phoneNumber: n, isDefault: true, isInboundEnabled: true, label: 'Front desk' }, 'isDefault and label from the source')
  t.match(a2Numbers.find((e) => e['phoneNumber'] === other), { isDefault: false }, "the target's other twilio default was cleared")
  t.equal(a2Numbers.length, 2)

  const route = await h.lookup(encodeURIComponent(n))
  t.strictSame(route, { status: 200, body: { phoneNumber: n, provider: 'twilio', organizationId: f.orgA, userId: f.a2, label: 'Front desk' } }, 'lookup answers the target')
  const claim = await h.claim(n)
  t.equal(claim?.['transfer'], undefined, "the claim's transfer record is cleared")
  t.equal(String(claim?.['organizationId']), f.orgA)
  t.same({ userId: String(claim?.['inbound']?.userId), provider: claim?.['inbound']?.provider }, { userId: f.a2, provider: 'twilio' }, 'claim routes to a2')
})

t.test('transfer keeps an outbound-only flag; isDefault and label are overridden when given', async (t) => {
  const f = await h.fixture()
  const n = h.number()
  const inboundElsewhere = h.number()
  t.equal((await h.assign(f.orgA, { targetUserId: f.a1, provider: 'sinch', phoneNumber: n, isInboundEnabled: false, isDefault: true, label: 'Old' })).status, 200)
  t.equal((await h.assign(f.orgA, { targetUserId: f.a1, provider: 'sinch', phoneNumber: inboundElsewhere, isDefault: false })).status, 200, 'a1 has another number, untouched by the move')
  const moved = await h.transfer(f.orgA, { phoneNumber: n, provider: 'sinch', fromUserId: f.a1, toUserId: f.a3, isDefault: false, label: 'New' })
  t.equal(moved.status, 200)
  t.equal(moved.body['message'], 'sinch phone number transferred')
  t.match(moved.body['assignment'], { userId: f.a3, provider: 'sinch', phoneNumber: n, isDefault: false, isInboundEnabled: false, label: 'New' })
  t.match(await h.numbersOf(f.a3), [{ provider: 'sinch', phoneNumber: n, isDefault: false, isInboundEnabled: false, label: 'New' }])
  t.match(await h.numbersOf(f.a1), [{ phoneNumber: inboundElsewhere, isDefault: false }])
  t.equal((await h.numbersOf(f.a1) as unknown[]).length, 1, 'only the moved entry left a1')
  t.strictSame(await h.lookup(encodeURIComponent(n)), { status: 404, body: { error: 'No inbound route', details: `No assignment routes inbound calls for ${n}` } }, 'still no inbound route')
})

t.test('transfer 404s: unknown organization, source or target outside the organization, source without the number; nothing written', async (t) => {
  const f = await h.fixture()
  const n = h.number()
  const neverAssigned = h.number()
  t.equal((await h.assign(f.orgA, { targetUserId: f.a1, provider: 'twilio', phoneNumber: n })).status, 200)
  const users = await h.allUsers()
  const claims = await h.claimRoutes()
  const base = { phoneNumber: n, provider: 'twilio', fromUserId: f.a1, toUserId: f.a2 }
  const cases: Array<[string, string, Record<string, unknown>, string]> = [
    ['unknown organization', new ObjectId().toHexString(), base, 'Organization not found'],
    ['source is a user of another organization', f.orgA, { ...base, fromUserId: f.b1 }, 'Source user not found in organization'],
    ['source does not exist', f.orgA, { ...base, fromUserId: new ObjectId().toHexString() }, 'Source user not found in organization'],
    ['target is a user of another organization', f.orgA, { ...base, toUserId: f.b1 }, 'Target user not found in organization'],
    ['target does not exist', f.orgA, { ...base, toUserId: new ObjectId().toHexString() }, 'Target user not found in organization'],
    ['source does not hold it (other user)', f.orgA, { ...base, fromUserId: f.a3 }, 'Phone number not found'],
    ['source holds it with another provider only', f.orgA, { ...base, provider: 'sinch' }, 'Phone number not found'],
    ['nobody holds the number', f.orgA, { ...base, phoneNumber: neverAssigned }, 'Phone number not found'],
    ["organization B moving A's number", f.orgB, base, 'Source user not found in organization']
  ]
  for (const [name, organizationId, body, title] of cases) {
    const answer = await h.transfer(organizationId, body)
    t.equal(answer.status, 404, `${name}: 404`)
    t.equal(answer.body['error'], title, `${name}: ${title}`)
    t.type(answer.body['details'], 'string', `${name}: details`)
    t.same(await h.allUsers(), users, `${name}: no user written`)
    t.same(await h.claimRoutes(), claims, `${name}: claims keep their organization and route`)
  }
  t.equal(await h.claim(neverAssigned), null, 'no claim left for a number nobody holds')
})

t.test('transfer 409: the target already holds the number', async (t) => {
  const f = await h.fixture()
  const n = h.number()
  t.equal((await h.assign(f.orgA, { targetUserId: f.a1, provider: 'twilio', phoneNumber: n })).status, 200)
  t.equal((await h.assign(f.orgA, { targetUserId: f.a2, provider: 'twilio', phoneNumber: n, isInboundEnabled: false })).status, 200)
  const users = await h.allUsers()
  const refused = await h.transfer(f.orgA, { phoneNumber: n, provider: 'twilio', fromUserId: f.a1, toUserId: f.a2 })
  t.equal(refused.status, 409)
  t.equal(refused.body['error'], 'Target user already holds this phone number')
  t.same(await h.allUsers(), users, 'nothing written')
  t.equal((await h.lookup(encodeURIComponent(n))).body['userId'], f.a1, 'still routed to a1')
  t.equal((await h.claim(n))?.['transfer'], undefined, 'no transfer recorded')
})

t.test('transfer 409 "Inbound route held": the moved inbound entry when another assignment already routes the number (pre-existing data)', async (t) => {
  const beside = h.number()
  const third = h.number()
  const control = h.number()
  // Rule 2 makes these states unreachable through the API: written straight to the users.
  const f = await h.fixture({
    a1: { phoneNumbers: [entry('twilio', beside), entry('twilio', third)] },
    a2: { phoneNumbers: [entry('sinch', beside)] },
    a3: { phoneNumbers: [entry('textgrid', third), entry('twilio', control)] }
  })
  const users = await h.allUsers()

  const toOwnOtherProvider = await h.transfer(f.orgA, { phoneNumber: beside, provider: 'twilio', fromUserId: f.a1, toUserId: f.a2 })
  t.equal(toOwnOtherProvider.status, 409, "the target's own other-provider entry routes it")
  t.equal(toOwnOtherProvider.body['error'], RULE_2)
  t.match(String(toOwnOtherProvider.body['details']), `user ${f.a2} (sinch`, 'names the target\'s sinch entry')
  t.same(await h.allUsers(), users, 'nothing written')

  const besideThirdUser = await h.transfer(f.orgA, { phoneNumber: third, provider: 'twilio', fromUserId: f.a1, toUserId: f.a2 })
  t.equal(besideThirdUser.status, 409, 'a third user routes it')
  t.equal(besideThirdUser.body['error'], RULE_2)
  t.match(String(besideThirdUser.body['details']), `user ${f.a3} (textgrid`, 'names the third user')
  t.notOk(String(besideThirdUser.body['details']).includes(f.a2), 'not the target, which holds nothing of it')
  t.same(await h.allUsers(), users, 'nothing written')
  for (const n of [beside, third]) t.equal((await h.claim(n))?.['transfer'], undefined, `${n}: no transfer recorded`)

  const moved = await h.transfer(f.orgA, { phoneNumber: control, provider: 'twilio', fromUserId: f.a3, toUserId: f.a2 })
  t.equal(moved.status, 200, 'control: a number routed only by its source moves')
  t.match(await h.numbersOf(f.a2), [{ provider: 'sinch', phoneNumber: beside }, { provider: 'twilio', phoneNumber: control, isInboundEnabled: true }])
  t.match(await h.numbersOf(f.a3), [{ provider: 'textgrid', phoneNumber: third }])
  t.equal((await h.numbersOf(f.a3) as unknown[]).length, 1)
})

t.test('transfer of an outbound-only entry is allowed while a third user routes the number', async (t) => {
  const f = await h.fixture()
  const n = h.number()
  t.equal((await h.assign(f.orgA, { targetUserId: f.a3, provider: 'twilio', phoneNumber: n })).status, 200, 'a3 routes it')
  t.equal((await h.assign(f.orgA, { targetUserId: f.a1, provider: 'sinch', phoneNumber: n, isInboundEnabled: false })).status, 200, 'a1 outbound only')
  const moved = await h.transfer(f.orgA, { phoneNumber: n, provider: 'sinch', fromUserId: f.a1, toUserId: f.a2 })
  t.equal(moved.status, 200)
  t.same((await h.entriesOf(n)).map((e) => [e.userId, e.entry['provider'], e.entry['isInboundEnabled']]).sort(), [[f.a2, 'sinch', false], [f.a3, 'twilio', true]].sort())
  t.equal((await h.lookup(encodeURIComponent(n))).body['userId'], f.a3, 'the route stays with a3')
})

t.test('transfer never crosses organizations: rule 1 still holds on the target side', async (t) => {
  const f = await h.fixture()
  const n = h.number()
  // Pre-existing data: the number is held in both organizations.
  await h.db.collection('users').updateOne({ _id: new ObjectId(f.b1) }, { $set: { phoneNumbers: [entry('twilio', n, { isInboundEnabled: false })] } })
  await h.db.collection('users').updateOne({ _id: new ObjectId(f.a1) }, { $set: { phoneNumbers: [entry('sinch', n, { isInboundEnabled: false })] } })
  const users = await h.allUsers()
  const refused = await h.transfer(f.orgA, { phoneNumber: n, provider: 'sinch', fromUserId: f.a1, toUserId: f.a2 })
  t.equal(refused.status, 409)
  t.equal(refused.body['error'], RULE_1)
  t.notOk(String(refused.body['details']).includes(f.b1) || String(refused.body['details']).includes(f.orgB), "no leak of B's ids")
  t.same(await h.allUsers(), users, 'nothing written')
})

t.test('transfer 400s answer { error, details } and write nothing', async (t) => {
  const f = await h.fixture()
  const n = h.number()
  t.equal((await h.assign(f.orgA, { targetUserId: f.a1, provider: 'twilio', phoneNumber: n })).status, 200)
  const users = await h.allUsers()
  const claims = await h.claimRoutes()
  const base = { phoneNumber: n, provider: 'twilio', fromUserId: f.a1, toUserId: f.a2 }
  const without = (key: keyof typeof base): Record<string, unknown> => Object.fromEntries(Object.entries(base).filter(([k]) => k !== key))
  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    ['fromUserId equals toUserId', { ...base, toUserId: f.a1 }, /two different users/],
    ['fromUserId equals toUserId in another letter case', { ...base, toUserId: f.a1.toUpperCase() }, /two different users/],
    ['missing provider', without('provider'), /provider/],
    ['missing phoneNumber', without('phoneNumber'), /phoneNumber/],
    ['missing fromUserId', without('fromUserId'), /fromUserId/],
    ['missing toUserId', without('toUserId'), /toUserId/],
    ['number without +', { ...base, phoneNumber: n.slice(1) }, /phoneNumber/],
    ['number with a leading zero', { ...base, phoneNumber: '+04165550102' }, /phoneNumber/],
    ['number too long', { ...base, phoneNumber: '+1416555010299999' }, /phoneNumber/],
    ['unknown provider', { ...base, provider: 'skype' }, /provider/],
    ['fromUserId not an ObjectId', { ...base, fromUserId: 'a1' }, /fromUserId/],
    ['isDefault not a boolean', { ...base, isDefault: 'true' }, /isDefault/]
  ]
  for (const [name, body, details] of cases) {
    const answer = await h.transfer(f.orgA, body)
    t.equal(answer.status, 400, `${name}: 400`)
    t.same(Object.keys(answer.body).sort(), ['details', 'error'], `${name}: { error, details }`)
    t.equal(answer.body['error'], 'Validation error', `${name}: title`)
    t.match(String(answer.body['details']), details, `${name}: details say what is wrong`)
  }
  t.same(await h.allUsers(), users, 'no user written')
  t.same(await h.claimRoutes(), claims, 'claims unchanged')
  t.equal((await h.claim(n))?.['transfer'], undefined, 'no transfer recorded')
})
