/**
 * Defects a host trial of the packed tarball found, each checked through the
 * plugin on a real database (and, for labels, through the client's TypeBox).
 */
import { TypeCompiler } from '@sinclair/typebox/compiler'
import { Value } from '@sinclair/typebox/value'
import { ObjectId } from 'mongodb'
import t from 'tap'
import { checkIntegrity } from '../../tools/integrity/index.js'
import { OrgAssignPhoneNumberRequest } from '../../schemas/index.js'
import { build, phoneNumbersUrl } from '../helper.js'

t.test('409 Ambiguous inbound route points at checkIntegrity, which the package exports, not at a script it does not ship', async (t) => {
  const { app, db, fixture, headers } = await build(t)
  const phoneNumber = '+14165550177'
  const entry = { provider: 'twilio', phoneNumber, isDefault: true, isInboundEnabled: true, createdAt: new Date(), updatedAt: new Date() }
  // Two inbound routes can only come from data other code wrote: write them straight into the users.
  for (const userId of [fixture.userId, fixture.otherUserId]) {
    await db.collection('users').updateOne({ _id: new ObjectId(userId) }, { $set: { phoneNumbers: [entry] } })
  }
  const response = await app.inject({ method: 'GET', url: `/api/phone-numbers/${encodeURIComponent(phoneNumber)}/inbound-route`, headers })
  t.equal(response.statusCode, 409)
  const { error, details } = response.json<{ error: string, details: string }>()
  t.equal(error, 'Ambiguous inbound route')
  t.notMatch(details, /npm run/, 'no npm script: a host installed the package, it has none of ours')
  t.match(details, /checkIntegrity/, 'names the exported function')

  // What the message points at is there and finds this number.
  const report = await checkIntegrity(db)
  t.equal(report.ok, false)
  t.ok(report.doubleInboundRoutes.some((violation) => violation.phoneNumber === phoneNumber), 'checkIntegrity reports the number with two inbound routes')
})

t.test('an enum error names the allowed values, in the body and in the query string', async (t) => {
  const { app, fixture, headers } = await build(t)
  const url = phoneNumbersUrl(fixture.organizationId)
  const body = await app.inject({ method: 'POST', url, headers, payload: { targetUserId: fixture.userId, provider: 'vonage', phoneNumber: '+14165550102' } })
  t.equal(body.statusCode, 400)
  t.same(body.json(), { error: 'Validation error', details: 'body/provider must be one of: twilio, sinch, textgrid' })
  const query = await app.inject({ method: 'GET', url: `${url}?provider=vonage`, headers })
  t.equal(query.statusCode, 400)
  t.same(query.json(), { error: 'Validation error', details: 'querystring/provider must be one of: twilio, sinch, textgrid' })
})

t.test('label length: the server and the client TypeBox schema count the same UTF-16 units', async (t) => {
  const { app, fixture, headers, phoneNumbersOf } = await build(t)
  const url = phoneNumbersUrl(fixture.organizationId)
  const emoji = '\u{1F4DE}' // 📞, outside the BMP: two UTF-16 units, one code point
  const checkAssign = TypeCompiler.Compile(OrgAssignPhoneNumberRequest)
  const cases: Array<[string, string, boolean]> = [
    ['64 emoji (128 units)', emoji.repeat(64), false],
    ['65 emoji (130 units)', emoji.repeat(65), false],
    ['32 emoji (64 units)', emoji.repeat(32), true],
    ['32 emoji and a letter (65 units)', `${emoji.repeat(32)}x`, false],
    ['64 letters', 'x'.repeat(64), true]
  ]
  for (const [name, label, accepted] of cases) {
    const body = { targetUserId: fixture.userId, provider: 'twilio', phoneNumber: '+14165550150', label }
    t.equal(checkAssign.Check(body), accepted, `${name}: TypeCompiler ${accepted ? 'accepts' : 'refuses'}`)
    t.equal(Value.Check(OrgAssignPhoneNumberRequest, body), accepted, `${name}: Value.Check agrees`)
    const response = await app.inject({ method: 'POST', url, headers, payload: body })
    t.equal(response.statusCode, accepted ? 200 : 400, `${name}: the server ${accepted ? 'accepts' : 'refuses'}`)
    if (!accepted) t.equal(response.json().details, 'body/label must NOT have more than 64 characters', `${name}: details`)
    const stored = await phoneNumbersOf(fixture.userId)
    t.equal(stored.some((entry) => (entry as { label?: unknown }).label === label), accepted, `${name}: ${accepted ? 'stored' : 'not stored'}`)
  }
})
