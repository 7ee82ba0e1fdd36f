/**
 * GET /api/phone-numbers/{phoneNumber}/inbound-route through the real
 * standalone server process, over HTTP: the answer's exact shape, provider
 * narrowing, numbers written straight into the users by other code, ambiguous
 * pre-existing data, and who may call it (ROUTE_LOOKUP_ROLES).
 */
import { ObjectId } from 'mongodb'
import t from 'tap'
import { startStandalone } from './helper-server.js'
import { entry, SECRET, startHarness, stopServer } from './ownership-helper.js'

t.setTimeout(240_000)

const h = await startHarness(t)

function noRoute (phoneNumber: string): { status: number, body: Record<string, unknown> } {
  return { status: 404, body: { error: 'No inbound route', details: `No assignment routes inbound calls for ${phoneNumber}` } }
}

t.test('the route of an assigned number, exactly { phoneNumber, provider, organizationId, userId, label }', async (t) => {
  const f = await h.fixture()
  const n = '+14165550102'
  const assigned = await h.assign(f.orgA, { targetUserId: f.a1, provider: 'twilio', phoneNumber: n, label: 'Main line' })
  t.equal(assigned.status, 200)
  t.match(await h.numbersOf(f.a1), [{ provider: 'twilio', phoneNumber: n, isInboundEnabled: true, label: 'Main line' }], 'stored inbound')
  const route = await h.call('GET', '/api/phone-numbers/%2B14165550102/inbound-route')
  t.strictSame(route, { status: 200, body: { phoneNumber: n, provider: 'twilio', organizationId: f.orgA, userId: f.a1, label: 'Main line' } })

  const unlabelled = h.number()
  t.equal((await h.assign(f.orgA, { targetUserId: f.a2, provider: 'textgrid', phoneNumber: unlabelled })).status, 200)
  t.notOk('label' in (await h.numbersOf(f.a2) as Array<Record<string, unknown>>)[0]!, 'stored without a label')
  t.strictSame(await h.lookup(encodeURIComponent(unlabelled)), { status: 200, body: { phoneNumber: unlabelled, provider: 'textgrid', organizationId: f.orgA, userId: f.a2 } }, 'no label key when none is stored')
})

t.test('?provider= narrows the lookup to that provider', async (t) => {
  const f = await h.fixture()
  const n = h.number()
  t.equal((await h.assign(f.orgA, { targetUserId: f.a1, provider: 'twilio', phoneNumber: n })).status, 200, 'twilio routes it')
  t.equal((await h.assign(f.orgA, { targetUserId: f.a2, provider: 'sinch', phoneNumber: n, isInboundEnabled: false })).status, 200, 'a sinch copy, outbound only')
  t.match(await h.numbersOf(f.a2), [{ provider: 'sinch', phoneNumber: n, isInboundEnabled: false }])
  const encoded = encodeURIComponent(n)
  t.strictSame(await h.lookup(encoded, '?provider=twilio'), { status: 200, body: { phoneNumber: n, provider: 'twilio', organizationId: f.orgA, userId: f.a1 } })
  t.strictSame(await h.lookup(encoded, '?provider=sinch'), noRoute(n), 'sinch holds it but does not route it')
  t.strictSame(await h.lookup(encoded, '?provider=textgrid'), noRoute(n), 'nobody holds it on textgrid')
  const bad = await h.lookup(encoded, '?provider=skype')
  t.equal(bad.status, 400, 'an unknown provider is a validation error')
  t.equal(bad.body['error'], 'Validation error')
  t.match(String(bad.body['details']), /provider/)
})

t.test('404 "No inbound route" for an unknown number and for a number held only outbound', async (t) => {
  const f = await h.fixture()
  const unknown = h.number()
  const outbound = h.number()
  t.equal((await h.assign(f.orgA, { targetUserId: f.a1, provider: 'twilio', phoneNumber: outbound, isInboundEnabled: false })).status, 200)
  t.equal((await h.assign(f.orgA, { targetUserId: f.a2, provider: 'sinch', phoneNumber: outbound, isInboundEnabled: false })).status, 200)
  t.same((await h.entriesOf(outbound)).map((e) => e.entry['isInboundEnabled']), [false, false], 'two outbound-only copies stored')
  t.same(await h.entriesOf(unknown), [], 'nobody holds the unknown number')
  t.strictSame(await h.lookup(encodeURIComponent(unknown)), noRoute(unknown))
  t.strictSame(await h.lookup(encodeURIComponent(outbound)), noRoute(outbound))
  t.equal(await h.claim(unknown), null, 'a lookup creates no claim')
})

t.test('400 { error, details } for a path that is not an encoded E.164 number', async (t) => {
  const f = await h.fixture()
  t.equal((await h.assign(f.orgA, { targetUserId: f.a1, provider: 'twilio', phoneNumber: '+12345' })).status, 200, '+12345 is held, so only the missing + makes 12345 wrong')
  const users = await h.allUsers()
  for (const path of ['12345', 'abc', '14165550102', '%2B04165550102', '%2B1416555010299999', '%2B1%20416', '%E0%A4%A', '%ZZ', '%2B%2B14165550102']) {
    const answer = await h.call('GET', `/api/phone-numbers/${path}/inbound-route`)
    t.equal(answer.status, 400, `${path}: 400`)
    t.same(Object.keys(answer.body).sort(), ['details', 'error'], `${path}: { error, details }`)
    t.type(answer.body['details'], 'string', `${path}: details`)
  }
  t.same(await h.allUsers(), users, 'nothing written')
})

t.test('numbers written straight into the users by other code (no claims) route on the first request', async (t) => {
  const routed = h.number()
  const foreign = h.number()
  const outboundOnly = h.number()
  const f = await h.fixture({
    a1: { phoneNumbers: [entry('sinch', outboundOnly, { isInboundEnabled: false }), entry('twilio', routed, { label: 'Legacy' })] },
    b1: { phoneNumbers: [entry('textgrid', foreign)] }
  })
  for (const n of [routed, foreign, outboundOnly]) t.equal(await h.claim(n), null, `${n}: no claim at all (pre-upgrade data)`)
  t.strictSame(await h.lookup(encodeURIComponent(routed)), { status: 200, body: { phoneNumber: routed, provider: 'twilio', organizationId: f.orgA, userId: f.a1, label: 'Legacy' } })
  t.strictSame(await h.lookup(encodeURIComponent(foreign)), { status: 200, body: { phoneNumber: foreign, provider: 'textgrid', organizationId: f.orgB, userId: f.b1 } })
  t.strictSame(await h.lookup(encodeURIComponent(outboundOnly)), noRoute(outboundOnly))
  for (const n of [routed, foreign, outboundOnly]) t.equal(await h.claim(n), null, `${n}: lookups read the users only, still no claim`)

  // The seeded numbers obey the rules on the next write, too.
  const b1Before = await h.userJson(f.b1)
  const refused = await h.assign(f.orgB, { targetUserId: f.b1, provider: 'twilio', phoneNumber: routed, isInboundEnabled: false })
  t.equal(refused.status, 409, "org B cannot take org A's seeded number")
  t.equal(refused.body['error'], 'Phone number belongs to another organization')
  t.same(await h.userJson(f.b1), b1Before)
})

t.test('two inbound routes in pre-existing data: 409 "Ambiguous inbound route" naming both', async (t) => {
  const acrossOrgs = h.number()
  const sameOrg = h.number()
  const f = await h.fixture({
    a1: { phoneNumbers: [entry('twilio', acrossOrgs), entry('twilio', sameOrg)] },
    a2: { phoneNumbers: [entry('twilio', sameOrg)] },
    b1: { phoneNumbers: [entry('sinch', acrossOrgs)] }
  })
  const users = await h.allUsers()

  const across = await h.lookup(encodeURIComponent(acrossOrgs))
  t.equal(across.status, 409)
  t.equal(across.body['error'], 'Ambiguous inbound route')
  for (const id of [f.a1, f.b1, f.orgA, f.orgB]) t.match(String(across.body['details']), id, `details name ${id}`)
  t.strictSame(await h.lookup(encodeURIComponent(acrossOrgs), '?provider=twilio'), { status: 200, body: { phoneNumber: acrossOrgs, provider: 'twilio', organizationId: f.orgA, userId: f.a1 } }, 'one route per provider: ?provider picks it')

  const same = await h.lookup(encodeURIComponent(sameOrg))
  t.equal(same.status, 409)
  t.equal(same.body['error'], 'Ambiguous inbound route')
  for (const id of [f.a1, f.a2]) t.match(String(same.body['details']), id, `details name ${id}`)
  t.equal((await h.lookup(encodeURIComponent(sameOrg), '?provider=twilio')).status, 409, 'still two twilio routes')
  t.same(await h.allUsers(), users, 'a lookup never repairs the data')
})

t.test('who may look up: 401 without a token, 403 for an AGENT', async (t) => {
  const f = await h.fixture()
  const n = h.number()
  t.equal((await h.assign(f.orgA, { targetUserId: f.a1, provider: 'twilio', phoneNumber: n })).status, 200)
  t.match(await h.numbersOf(f.a1), [{ phoneNumber: n, isInboundEnabled: true }])
  const anonymous = await h.lookup(encodeURIComponent(n), '', null)
  t.equal(anonymous.status, 401)
  t.equal(anonymous.body['error'], 'Unauthorized')
  t.type(anonymous.body['details'], 'string')
  t.notOk(JSON.stringify(anonymous.body).includes(f.a1), 'no route leaks')
  const agent = await h.lookup(encodeURIComponent(n), '', h.sign({ sub: f.a1, role: 'AGENT' }))
  t.strictSame(agent, { status: 403, body: { error: 'Forbidden', details: 'This caller may not look up inbound routes' } })
  const gateway = await h.lookup(encodeURIComponent(n), '', h.sign({ sub: new ObjectId().toHexString(), role: 'TELEPHONY_GATEWAY' }))
  t.strictSame(gateway, agent, 'a gateway role is refused unless ROUTE_LOOKUP_ROLES names it')
})

t.test('ROUTE_LOOKUP_ROLES=SUPERADMIN,TELEPHONY_GATEWAY: the gateway may look up, not assign', async (t) => {
  const f = await h.fixture()
  const n = h.number()
  t.equal((await h.assign(f.orgA, { targetUserId: f.a1, provider: 'sinch', phoneNumber: n, label: 'Support' })).status, 200)
  const second = await startStandalone({ MONGODB_URI: h.uri, JWT_SECRET: SECRET, LOG_LEVEL: 'warn', REQUEST_LOGGING: 'false', ROUTE_LOOKUP_ROLES: 'SUPERADMIN,TELEPHONY_GATEWAY' })
  t.teardown(async () => await stopServer(second))
  const gateway = `Bearer ${h.sign({ sub: new ObjectId().toHexString(), role: 'TELEPHONY_GATEWAY' })}`
  const admin = `Bearer ${h.admin}`
  const get = async (authorization: string): Promise<{ status: number, body: unknown }> => {
    const response = await fetch(`${second.base}/api/phone-numbers/${encodeURIComponent(n)}/inbound-route`, { headers: { authorization } })
    return { status: response.status, body: await response.json() }
  }
  const expected = { status: 200, body: { phoneNumber: n, provider: 'sinch', organizationId: f.orgA, userId: f.a1, label: 'Support' } }
  t.strictSame(await get(gateway), expected, 'the gateway looks the route up')
  t.strictSame(await get(admin), expected, 'SUPERADMIN still may')

  const users = await h.allUsers()
  const writes: Array<[string, string, Record<string, unknown>]> = [
    ['POST', `/api/organizations/${f.orgA}/phone-numbers`, { targetUserId: f.a2, provider: 'twilio', phoneNumber: h.number() }],
    ['DELETE', `/api/organizations/${f.orgA}/phone-numbers`, { targetUserId: f.a1, provider: 'sinch', phoneNumber: n }],
    ['POST', `/api/organizations/${f.orgA}/phone-numbers/transfer`, { provider: 'sinch', phoneNumber: n, fromUserId: f.a1, toUserId: f.a2 }]
  ]
  for (const [method, path, body] of writes) {
    const response = await fetch(`${second.base}${path}`, { method, headers: { authorization: gateway, 'content-type': 'application/json' }, body: JSON.stringify(body) })
    t.strictSame({ status: response.status, body: await response.json() }, { status: 403, body: { error: 'Forbidden', details: 'This operation requires the SUPERADMIN role' } }, `${method} ${path}: 403`)
  }
  const list = await fetch(`${second.base}/api/organizations/${f.orgA}/phone-numbers`, { headers: { authorization: gateway } })
  t.equal(list.status, 403, 'nor list')
  t.same(await h.allUsers(), users, 'nothing written')
})
