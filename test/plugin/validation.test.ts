import t from 'tap'
import { build, phoneNumbersUrl } from '../helper.js'

const valid = { provider: 'twilio', phoneNumber: '+14165550102' }

t.test('bad input gets 400 { error, details } naming the field, and nothing is written', async (t) => {
  const { app, fixture, headers, userDocument } = await build(t)
  const before = await userDocument(fixture.userId)
  const cases: Array<[string, unknown, RegExp]> = [
    ['targetUserId not an ObjectId', { ...valid, targetUserId: 'not-an-id' }, /body\/targetUserId must match pattern/],
    ['targetUserId operator object', { ...valid, targetUserId: { $ne: null } }, /body\/targetUserId must be string/],
    ['targetUserId missing', valid, /must have required property 'targetUserId'/],
    ['unknown provider', { ...valid, targetUserId: fixture.userId, provider: 'nexmo' }, /body\/provider must be one of: twilio, sinch, textgrid/],
    ['provider operator object', { ...valid, targetUserId: fixture.userId, provider: { $gt: '' } }, /body\/provider must be string/],
    ['phoneNumber not E.164', { ...valid, targetUserId: fixture.userId, phoneNumber: '416-555-0102' }, /body\/phoneNumber must match pattern/],
    ['phoneNumber with leading zero', { ...valid, targetUserId: fixture.userId, phoneNumber: '+0123' }, /body\/phoneNumber must match pattern/],
    ['phoneNumber too long', { ...valid, targetUserId: fixture.userId, phoneNumber: '+1234567890123456' }, /body\/phoneNumber must match pattern/],
    ['isDefault as the string "true" (no coercion)', { ...valid, targetUserId: fixture.userId, isDefault: 'true' }, /body\/isDefault must be boolean/],
    ['isInboundEnabled as 1', { ...valid, targetUserId: fixture.userId, isInboundEnabled: 1 }, /body\/isInboundEnabled must be boolean/],
    ['label longer than 64', { ...valid, targetUserId: fixture.userId, label: 'x'.repeat(65) }, /body\/label must NOT have more than 64 characters/],
    ['label not a string', { ...valid, targetUserId: fixture.userId, label: ['a'] }, /body\/label must be string/],
    ['body is an array', [{ ...valid, targetUserId: fixture.userId }], /body must be object/],
    ['body is a string', 'hello', /body must be object/],
    ['body is null', null, /body must be object/]
  ]
  for (const [name, body, details] of cases) {
    const response = await app.inject({ method: 'POST', url: phoneNumbersUrl(fixture.organizationId), headers, payload: JSON.stringify(body) })
    t.equal(response.statusCode, 400, name)
    const answer = response.json()
    t.equal(answer.error, 'Validation error', name)
    t.match(answer.details, details, name)
  }

  const badOrg = await app.inject({ method: 'POST', url: phoneNumbersUrl('xyz'), headers, payload: { ...valid, targetUserId: fixture.userId } })
  t.equal(badOrg.statusCode, 400)
  t.match(badOrg.json().details, /params\/organizationId must match pattern/)

  t.same(await userDocument(fixture.userId), before, 'user document untouched')
})

t.test('wrong content type is 415, malformed JSON 400, oversized body 413, prototype poisoning 400', async (t) => {
  const { app, fixture, headers, userDocument } = await build(t, { bodyLimit: 1024 })
  const before = await userDocument(fixture.userId)
  const url = phoneNumbersUrl(fixture.organizationId)

  const text = await app.inject({ method: 'POST', url, headers: { ...headers, 'content-type': 'text/plain' }, payload: 'hello' })
  t.equal(text.statusCode, 415)
  t.equal(text.json().error, 'Unsupported media type')
  t.type(text.json().details, 'string')

  const form = await app.inject({ method: 'POST', url, headers: { ...headers, 'content-type': 'application/x-www-form-urlencoded' }, payload: 'a=b' })
  t.equal(form.statusCode, 415)

  const malformed = await app.inject({ method: 'POST', url, headers, payload: '{"targetUserId":' })
  t.equal(malformed.statusCode, 400)
  t.equal(malformed.json().error, 'Validation error')

  const empty = await app.inject({ method: 'POST', url, headers, payload: '' })
  t.equal(empty.statusCode, 400)

  const huge = await app.inject({ method: 'POST', url, headers, payload: JSON.stringify({ ...valid, targetUserId: fixture.userId, label: 'x'.repeat(2000) }) })
  t.equal(huge.statusCode, 413)
  t.equal(huge.json().error, 'Payload too large')

  const poisoned = await app.inject({ method: 'POST', url, headers, payload: `{"targetUserId":"${fixture.userId}","provider":"twilio","phoneNumber":"+14165550102","__proto__":{"polluted":true}}` })
  t.equal(poisoned.statusCode, 400)
  const constructorPoisoned = await app.inject({ method: 'POST', url, headers, payload: `{"targetUserId":"${fixture.userId}","provider":"twilio","phoneNumber":"+14165550102","constructor":{"prototype":{"polluted":true}}}` })
  t.equal(constructorPoisoned.statusCode, 400)
  t.equal(({} as Record<string, unknown>)['polluted'], undefined, 'Object.prototype clean')

  t.same(await userDocument(fixture.userId), before, 'nothing written')
})

t.test('query strings are validated too, without coercion surprises', async (t) => {
  const { app, fixture, headers } = await build(t)
  const url = phoneNumbersUrl(fixture.organizationId)
  const badProvider = await app.inject({ method: 'GET', url: `${url}?provider=nexmo`, headers })
  t.equal(badProvider.statusCode, 400)
  t.match(badProvider.json().details, /querystring\/provider must be one of: twilio, sinch, textgrid/)
  const repeated = await app.inject({ method: 'GET', url: `${url}?targetUserId=${fixture.userId}&targetUserId=${fixture.otherUserId}`, headers })
  t.equal(repeated.statusCode, 400, 'a repeated parameter is an array, not a string')
  // Bracket syntax is not parsed into objects: the key is unknown and ignored.
  const bracket = await app.inject({ method: 'GET', url: `${url}?targetUserId[$ne]=x`, headers })
  t.equal(bracket.statusCode, 200)
  t.same(bracket.json(), { phoneNumbers: [], nextCursor: null })
})
