/**
 * Injection corpus: operator objects and `$`/dotted keys in every field, in the
 * path and in the query; prototype-pollution keys at the top level and nested;
 * deeply nested JSON; huge arrays. Each hostile request is refused (400, or 413
 * over the body limit) with the contract's `{ error, details }` and nothing is
 * written (users and organizations compared whole, before and after), and
 * `Object.prototype` is untouched afterwards.
 *
 * The contract's request bodies allow additional properties
 * (`additionalProperties: true`), so a *valid* body that also carries hostile
 * extra keys is accepted: those cases expect 200 and check that only the
 * assignment's own fields were stored.
 */
import type { LightMyRequestResponse } from 'fastify'
import { ObjectId } from 'mongodb'
import t, { type Test } from 'tap'
import { build, phoneNumbersUrl, settledSnapshot } from '../helper.js'

const snapshot = settledSnapshot

function prototypesClean (): boolean {
  const probe: Record<string, unknown> = {}
  return Object.getOwnPropertyNames(Object.prototype).every((name) => !['polluted', 'isAdmin', '$ne', 'role'].includes(name)) &&
    probe['polluted'] === undefined && probe['isAdmin'] === undefined && probe['role'] === undefined &&
    ([] as unknown as Record<string, unknown>)['polluted'] === undefined
}

function assertRefused (t: Test, response: LightMyRequestResponse, name: string, allowed: readonly number[] = [400]): void {
  t.ok(allowed.includes(response.statusCode), `${name}: status ${response.statusCode} is one of ${allowed.join('/')}`)
  let body: unknown
  try { body = response.json() } catch { body = response.body }
  const shaped = typeof body === 'object' && body !== null &&
    typeof (body as Record<string, unknown>)['error'] === 'string' &&
    typeof (body as Record<string, unknown>)['details'] === 'string'
  t.ok(shaped, `${name}: { error, details } body`)
}

/** Hostile values for one field. */
const OPERATOR_VALUES: Array<[string, unknown]> = [
  ['$ne null', { $ne: null }],
  ['$gt empty', { $gt: '' }],
  ['$regex', { $regex: '.*' }],
  ['$where', { $where: 'sleep(1000) || true' }],
  ['$in', { $in: ['+14165550102', null] }],
  ['$exists', { $exists: true }],
  ['$expr', { $expr: { $eq: [1, 1] } }],
  ['$function', { $function: { body: 'function () { return true }', args: [], lang: 'js' } }],
  ['dotted key object', { 'phoneNumbers.0.isDefault': true }],
  ['array with operator', [{ $ne: null }]],
  ['__proto__ own key (built, not parsed)', JSON.parse('{"$ne":1}')],
  ['Extended JSON $oid', { $oid: '5f7b1c2e8a1d4e0012c3b4a6' }],
  ['number', 1],
  ['null', null]
]

const FIELDS = ['targetUserId', 'provider', 'phoneNumber', 'isDefault', 'isInboundEnabled', 'label'] as const

t.test('operator objects, $-keys and dotted keys in every body field: 400, nothing written', async (t) => {
  const { app, db, fixture, headers } = await build(t)
  const before = await snapshot(db)
  const url = phoneNumbersUrl(fixture.organizationId)
  const valid: Record<string, unknown> = { targetUserId: fixture.userId, provider: 'twilio', phoneNumber: '+14165550102', isDefault: true, isInboundEnabled: true, label: 'Main' }
  let tried = 0
  for (const method of ['POST', 'DELETE'] as const) {
    for (const field of FIELDS) {
      if (method === 'DELETE' && !['targetUserId', 'provider', 'phoneNumber'].includes(field)) continue
      for (const [name, value] of OPERATOR_VALUES) {
        // null and booleans are legal for none of the fields; a number only for none either.
        const response = await app.inject({ method, url, headers, payload: JSON.stringify({ ...valid, [field]: value }) })
        assertRefused(t, response, `${method} ${field} = ${name}`)
        tried++
      }
    }
  }
  t.same(await snapshot(db), before, `nothing written after ${tried} requests`)
  t.ok(prototypesClean(), 'Object.prototype clean')
})

t.test('prototype-pollution keys, top level and nested, in bodies: 400, nothing written', async (t) => {
  const { app, db, fixture, headers } = await build(t)
  const before = await snapshot(db)
  const url = phoneNumbersUrl(fixture.organizationId)
  const base = `"targetUserId":"${fixture.userId}","provider":"twilio","phoneNumber":"+14165550102"`
  const bodies: Array<[string, string]> = [
    ['top-level __proto__', `{${base},"__proto__":{"polluted":true,"role":"SUPERADMIN"}}`],
    ['top-level __proto__ first', `{"__proto__":{"isAdmin":true},${base}}`],
    ['top-level constructor.prototype', `{${base},"constructor":{"prototype":{"polluted":true}}}`],
    ['nested __proto__ in label', `{${base},"label":{"__proto__":{"polluted":true}}}`],
    ['nested __proto__ in an extra field', `{${base},"meta":{"a":{"b":{"__proto__":{"polluted":true}}}}}`],
    ['nested constructor.prototype in an extra field', `{${base},"meta":[{"constructor":{"prototype":{"polluted":true}}}]}`],
    ['__proto__ in targetUserId', '{"targetUserId":{"__proto__":{"polluted":true}},"provider":"twilio","phoneNumber":"+14165550102"}'],
    ['escaped \\u005f\\u005fproto\\u005f\\u005f', `{${base},"\\u005f\\u005fproto\\u005f\\u005f":{"polluted":true}}`],
    ['escaped constructor', `{${base},"\\u0063onstructor":{"prototype":{"polluted":true}}}`]
  ]
  for (const method of ['POST', 'DELETE'] as const) {
    for (const [name, payload] of bodies) {
      const response = await app.inject({ method, url, headers, payload })
      assertRefused(t, response, `${method} ${name}`)
    }
  }
  t.same(await snapshot(db), before, 'nothing written')
  t.ok(prototypesClean(), 'Object.prototype clean')
})

t.test('a valid body with hostile extra keys: accepted (additionalProperties: true), only the assignment\'s fields stored', async (t) => {
  const { app, db, fixture, headers, phoneNumbersOf } = await build(t)
  const url = phoneNumbersUrl(fixture.organizationId)
  const extras: Array<[string, Record<string, unknown>]> = [
    ['$set', { $set: { role: 'SUPERADMIN' } }],
    ['$where', { $where: 'true' }],
    ['$unset', { $unset: { organizationId: '' } }],
    ['dotted', { 'phoneNumbers.0.isDefault': false, 'organizationId.$': 1, role: 'SUPERADMIN' }],
    ['phoneNumbersRevision', { phoneNumbersRevision: { $gt: 0 }, phoneNumbers: [] }],
    ['_id and organizationId', { _id: fixture.otherUserId, organizationId: fixture.otherOrganizationId, userId: fixture.otherUserId }]
  ]
  const others = (await snapshot(db)).users.filter((user) => String((user as { _id: ObjectId })._id) !== fixture.userId)
  for (const [name, extra] of extras) {
    const response = await app.inject({ method: 'POST', url, headers, payload: JSON.stringify({ ...extra, targetUserId: fixture.userId, provider: 'sinch', phoneNumber: '+14165550177' }) })
    t.equal(response.statusCode, 200, name)
  }
  const stored = await phoneNumbersOf(fixture.userId)
  t.equal(stored.length, 1, 'one assignment')
  t.same(Object.keys(stored[0] as object).sort(), ['createdAt', 'isDefault', 'isInboundEnabled', 'phoneNumber', 'provider', 'updatedAt'], 'only the assignment\'s own fields')
  const user = await db.collection('users').findOne({ _id: new ObjectId(fixture.userId) })
  t.equal(user?.['role'], 'AGENT', 'role untouched')
  t.same(user?.['organizationId'], new ObjectId(fixture.organizationId), 'organizationId untouched')
  t.same((await snapshot(db)).users.filter((doc) => String((doc as { _id: ObjectId })._id) !== fixture.userId), others, 'no other user changed')

  // Operator-looking *strings* are data: stored and listed verbatim, never interpreted.
  const label = '{"$where":"sleep(1000)"} $ne .__proto__'
  const labelled = await app.inject({ method: 'POST', url, headers, payload: JSON.stringify({ targetUserId: fixture.userId, provider: 'sinch', phoneNumber: '+14165550177', label }) })
  t.equal(labelled.statusCode, 200)
  const listed = await app.inject({ method: 'GET', url: `${url}?targetUserId=${fixture.userId}`, headers })
  t.equal(listed.json().phoneNumbers[0].label, label, 'label round-trips verbatim')
  t.ok(prototypesClean(), 'Object.prototype clean')
})

t.test('hostile path parameters and query strings: 400 (or a plain 404 for another route), nothing written', async (t) => {
  const { app, db, fixture, headers } = await build(t)
  const before = await snapshot(db)
  const org = fixture.organizationId
  const body = JSON.stringify({ targetUserId: fixture.userId, provider: 'twilio', phoneNumber: '+14165550102' })
  const paths = [
    encodeURIComponent('{"$ne":null}'), '$ne', '%24ne', '$where', `${org}$`, `${org}.x`, `${org.slice(0, 23)}.`,
    '__proto__', 'constructor', 'prototype', encodeURIComponent('{"$gt":""}'), `${org}%00`, `${org}%0a`, '..%2f..%2f', `${org};$ne`
  ]
  let tried = 0
  for (const segment of paths) {
    for (const method of ['POST', 'DELETE', 'GET'] as const) {
      const response = await app.inject({ method, url: `/api/organizations/${segment}/phone-numbers`, headers, ...(method === 'GET' ? {} : { payload: body }) })
      t.ok([400, 404].includes(response.statusCode), `${method} path ${segment}: ${response.statusCode}`)
      if (response.statusCode === 400) assertRefused(t, response, `${method} path ${segment}`)
      tried++
    }
  }

  const url = phoneNumbersUrl(org)
  const refusedQueries = [
    `targetUserId=${encodeURIComponent('{"$ne":null}')}`, 'targetUserId=$ne', `targetUserId=${fixture.userId}.x`,
    'provider=$ne', `provider=${encodeURIComponent('{"$in":["twilio"]}')}`, 'provider=twilio&provider=sinch',
    `targetUserId=${fixture.userId}&targetUserId[$ne]=x&targetUserId=${fixture.otherUserId}`
  ]
  for (const query of refusedQueries) {
    const response = await app.inject({ method: 'GET', url: `${url}?${query}`, headers })
    assertRefused(t, response, `query ${query}`)
    tried++
  }
  // Unknown keys (bracket syntax is not parsed into objects) are ignored: the plain list.
  const ignoredQueries = ['$where=1', 'targetUserId[$ne]=x', '__proto__[polluted]=1', 'constructor[prototype][polluted]=1', '__proto__=x', 'phoneNumbers.provider[$ne]=x']
  for (const query of ignoredQueries) {
    const response = await app.inject({ method: 'GET', url: `${url}?${query}`, headers })
    t.ok([200, 400].includes(response.statusCode), `query ${query}: ${response.statusCode}`)
    if (response.statusCode === 200) t.same(response.json(), { phoneNumbers: [], nextCursor: null }, `query ${query} lists the (empty) organization, unfiltered`)
    tried++
  }
  t.same(await snapshot(db), before, `nothing written after ${tried} requests`)
  t.ok(prototypesClean(), 'Object.prototype clean')
})

t.test('deeply nested JSON and huge arrays: 400 or 413, the process keeps serving', async (t) => {
  const small = await build(t)
  const large = await build(t, { bodyLimit: 1_048_576 })
  const nest = (depth: number, inner = '1'): string => '['.repeat(depth) + inner + ']'.repeat(depth)
  const nestObjects = (depth: number): string => '{"a":'.repeat(depth) + '1' + '}'.repeat(depth)
  for (const { app, db, fixture, headers } of [small, large]) {
    const before = await snapshot(db)
    const url = phoneNumbersUrl(fixture.organizationId)
    const base = `"targetUserId":"${fixture.userId}","provider":"twilio","phoneNumber":"+14165550102"`
    const limit = app === small.app ? 'default 16 KiB limit' : '1 MiB limit'
    const cases: Array<[string, string, number[]]> = [
      ['5,000-level array as the body', nest(5000), [400]],
      ['5,000-level array in targetUserId', `{"targetUserId":${nest(5000, '"x"')},"provider":"twilio","phoneNumber":"+14165550102"}`, [400, 413]],
      ['5,000-level object in label', `{${base},"label":${nestObjects(5000)}}`, [400, 413]],
      ['50,000-level array as the body', nest(50_000), [400, 413]],
      ['50,000-level array in provider', `{"targetUserId":"${fixture.userId}","provider":${nest(50_000)},"phoneNumber":"+14165550102"}`, [400, 413]],
      ['50,000-level object with __proto__ at the bottom', `{${base},"label":${'{"a":'.repeat(50_000)}{"__proto__":{"polluted":1}}${'}'.repeat(50_000)}}`, [400, 413]],
      ['100,000-element array as targetUserId', `{"targetUserId":[${Array.from({ length: 100_000 }, () => '0').join(',')}],"provider":"twilio","phoneNumber":"+14165550102"}`, [400, 413]],
      ['4,000-element array as the body', `[${Array.from({ length: 4000 }, () => `{${base}}`).join(',').slice(0, 15_000).replace(/,[^,]*$/, '')}]`, [400, 413]],
      ['20,000 keys with an invalid provider', `{${Array.from({ length: 20_000 }, (_, i) => `"k${i}":${i}`).join(',')},"targetUserId":"${fixture.userId}","provider":"nexmo","phoneNumber":"+14165550102"}`, [400, 413]]
    ]
    for (const [name, payload, allowed] of cases) {
      for (const method of ['POST', 'DELETE'] as const) {
        // DELETE's body has no label: next to a valid key the extra field is ignored (404, nothing to remove).
        const expected = method === 'DELETE' && name === '5,000-level object in label' ? [404] : allowed
        const started = Date.now()
        const response = await app.inject({ method, url, headers, payload })
        assertRefused(t, response, `${method} ${name} (${limit}, ${payload.length} bytes)`, payload.length > (app === small.app ? 16_384 : 1_048_576) ? [413] : expected)
        t.ok(Date.now() - started < 5000, `${method} ${name}: answered in ${Date.now() - started} ms`)
      }
    }
    const list = await app.inject({ method: 'GET', url, headers })
    t.equal(list.statusCode, 200, `still serving (${limit})`)
    t.same(await snapshot(db), before, `nothing written (${limit})`)
  }
  t.ok(prototypesClean(), 'Object.prototype clean')
})
