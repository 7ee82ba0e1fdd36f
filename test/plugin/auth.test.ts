import jwt from '@fastify/jwt'
import Fastify, { type FastifyInstance } from 'fastify'
import { createHmac, generateKeyPairSync } from 'node:crypto'
import t, { type Test } from 'tap'
import { build, phoneNumbersUrl, TEST_SECRET } from '../helper.js'

const base64url = (value: unknown): string => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url')
const nowSeconds = (): number => Math.floor(Date.now() / 1000)

function hs256 (header: Record<string, unknown>, payload: Record<string, unknown>, key: string | Buffer = TEST_SECRET): string {
  const unsigned = `${base64url(header)}.${base64url(payload)}`
  return `${unsigned}.${createHmac('sha256', key).update(unsigned).digest('base64url')}`
}

/** An identity provider signing with a key pair, closed at teardown. */
async function keyPairIssuer (t: Test, algorithm: 'RS256' | 'ES256', privateKey: string, publicKey: string): Promise<FastifyInstance> {
  const issuer = Fastify({ logger: false })
  await issuer.register(jwt, { secret: { private: privateKey, public: publicKey }, sign: { algorithm, expiresIn: '1h' } })
  await issuer.ready()
  t.teardown(() => issuer.close())
  return issuer
}

t.test('every token problem is 401 { error, details }, nothing runs further', async (t) => {
  const { app, fixture, sign, userDocument } = await build(t)
  const before = await userDocument(fixture.userId)
  const url = phoneNumbersUrl(fixture.organizationId)
  const claims = { sub: fixture.adminId, role: 'SUPERADMIN' }
  const valid = sign(claims)
  const [header, payload] = valid.split('.') as [string, string, string]

  const cases: Array<[string, Record<string, string>]> = [
    ['no Authorization header', {}],
    ['empty bearer', { authorization: 'Bearer ' }],
    ['not a bearer scheme', { authorization: `Basic ${Buffer.from('a:b').toString('base64')}` }],
    ['garbage token', { authorization: 'Bearer not.a.jwt' }],
    ['expired', { authorization: `Bearer ${hs256({ alg: 'HS256', typ: 'JWT' }, { ...claims, exp: nowSeconds() - 60 })}` }],
    ['no exp claim', { authorization: `Bearer ${hs256({ alg: 'HS256', typ: 'JWT' }, claims)}` }],
    ['not yet valid (nbf in the future)', { authorization: `Bearer ${hs256({ alg: 'HS256', typ: 'JWT' }, { ...claims, exp: nowSeconds() + 600, nbf: nowSeconds() + 300 })}` }],
    ['wrong secret', { authorization: `Bearer ${hs256({ alg: 'HS256', typ: 'JWT' }, { ...claims, exp: nowSeconds() + 600 }, 'another-secret-another-secret-another')}` }],
    ['alg none', { authorization: `Bearer ${base64url({ alg: 'none', typ: 'JWT' })}.${base64url({ ...claims, exp: nowSeconds() + 600 })}.` }],
    ['HS512 when only HS256 is allowed', { authorization: `Bearer ${(() => { const u = `${base64url({ alg: 'HS512', typ: 'JWT' })}.${base64url({ ...claims, exp: nowSeconds() + 600 })}`; return `${u}.${createHmac('sha512', TEST_SECRET).update(u).digest('base64url')}` })()}` }],
    ['tampered payload', { authorization: `Bearer ${header}.${base64url({ ...claims, role: 'SUPERADMIN', sub: 'someone-else', exp: nowSeconds() + 600 })}.${valid.split('.')[2]}` }],
    ['8 KiB token', { authorization: `Bearer ${hs256({ alg: 'HS256', typ: 'JWT' }, { ...claims, exp: nowSeconds() + 600, pad: 'x'.repeat(8192) }, 'wrong-key-wrong-key-wrong-key-wrong-key')}` }]
  ]
  t.ok(payload.length > 0)

  for (const [name, authHeaders] of cases) {
    const response = await app.inject({
      method: 'POST',
      url,
      headers: { ...authHeaders, 'content-type': 'application/json' },
      payload: { targetUserId: fixture.userId, provider: 'twilio', phoneNumber: '+14165550102' }
    })
    t.equal(response.statusCode, 401, name)
    t.equal(response.json().error, 'Unauthorized', name)
    t.type(response.json().details, 'string', name)
  }

  const inQuery = await app.inject({ method: 'GET', url: `${url}?access_token=${valid}&token=${valid}` })
  t.equal(inQuery.statusCode, 401, 'a token in the query string is not accepted')
  const inCookie = await app.inject({ method: 'GET', url, headers: { cookie: `token=${valid}; access_token=${valid}` } })
  t.equal(inCookie.statusCode, 401, 'a token in a cookie is not accepted')

  t.same(await userDocument(fixture.userId), before, 'nothing written')
})

t.test('a scheme other than Bearer is named as the problem', async (t) => {
  const { app, fixture } = await build(t)
  for (const authorization of [`Basic ${Buffer.from('a:b').toString('base64')}`, 'Basic abc', 'Token abc', 'abc']) {
    const response = await app.inject({ method: 'GET', url: phoneNumbersUrl(fixture.organizationId), headers: { authorization } })
    t.equal(response.statusCode, 401, authorization)
    t.same(response.json(), { error: 'Unauthorized', details: 'The Authorization header must use the Bearer scheme: Authorization: Bearer <token>' }, authorization)
  }
  const missing = await app.inject({ method: 'GET', url: phoneNumbersUrl(fixture.organizationId) })
  t.same(missing.json(), { error: 'Unauthorized', details: 'No Authorization was found in request.headers' }, 'a missing header keeps its own message')
})

t.test('401 comes before validation: an unauthenticated caller learns nothing about the schema', async (t) => {
  const { app, fixture } = await build(t)
  const response = await app.inject({ method: 'POST', url: phoneNumbersUrl('not-an-id'), headers: { 'content-type': 'text/plain' }, payload: 'x' })
  t.equal(response.statusCode, 401)
  t.notMatch(response.json().details, /body|params|pattern/)
  t.ok(fixture)
})

t.test('a valid token without the SUPERADMIN role is 403', async (t) => {
  const { app, fixture, sign, userDocument } = await build(t)
  const before = await userDocument(fixture.userId)
  for (const claims of [{ sub: fixture.userId, role: 'ADMIN' }, { sub: fixture.userId }, { sub: fixture.userId, role: 'superadmin' }, { sub: fixture.userId, roles: ['SUPERADMIN'] }]) {
    for (const method of ['POST', 'DELETE', 'GET'] as const) {
      const response = await app.inject({
        method,
        url: phoneNumbersUrl(fixture.organizationId),
        headers: { authorization: `Bearer ${sign(claims)}`, 'content-type': 'application/json' },
        ...(method === 'GET' ? {} : { payload: { targetUserId: fixture.userId, provider: 'twilio', phoneNumber: '+14165550102' } })
      })
      t.equal(response.statusCode, 403, `${method} ${JSON.stringify(claims)}`)
      t.same(response.json(), { error: 'Forbidden', details: 'This operation requires the SUPERADMIN role' })
    }
  }
  t.same(await userDocument(fixture.userId), before)
})

t.test('isSuperAdmin option replaces the role predicate', async (t) => {
  const { app, fixture, sign } = await build(t, { isSuperAdmin: (claims) => Array.isArray(claims['roles']) && claims['roles'].includes('root') })
  const allowed = await app.inject({ method: 'GET', url: phoneNumbersUrl(fixture.organizationId), headers: { authorization: `Bearer ${sign({ sub: fixture.adminId, roles: ['root'] })}` } })
  t.equal(allowed.statusCode, 200)
  const denied = await app.inject({ method: 'GET', url: phoneNumbersUrl(fixture.organizationId), headers: { authorization: `Bearer ${sign({ sub: fixture.adminId, role: 'SUPERADMIN' })}` } })
  t.equal(denied.statusCode, 403)
})

t.test('verifyRoleInDatabase re-checks the caller in the users collection', async (t) => {
  const { app, fixture, sign, db } = await build(t, { verifyRoleInDatabase: true })
  const url = phoneNumbersUrl(fixture.organizationId)
  const asAdmin = { authorization: `Bearer ${sign({ sub: fixture.adminId, role: 'SUPERADMIN' })}` }
  t.equal((await app.inject({ method: 'GET', url, headers: asAdmin })).statusCode, 200)

  const demotedUser = { authorization: `Bearer ${sign({ sub: fixture.userId, role: 'SUPERADMIN' })}` }
  t.equal((await app.inject({ method: 'GET', url, headers: demotedUser })).statusCode, 403, 'token says SUPERADMIN, database says AGENT')

  const unknownCaller = { authorization: `Bearer ${sign({ sub: 'not-an-object-id', role: 'SUPERADMIN' })}` }
  t.equal((await app.inject({ method: 'GET', url, headers: unknownCaller })).statusCode, 403)

  await db.collection('users').updateOne({ role: 'SUPERADMIN' }, { $set: { role: 'AGENT' } })
  t.equal((await app.inject({ method: 'GET', url, headers: asAdmin })).statusCode, 403, 'demotion takes effect on the next request')
})

t.test('verifyRoleInDatabase: isSuperAdmin sees the stored user, status fields included, never the numbers', async (t) => {
  const seen: Array<Record<string, unknown>> = []
  const isSuperAdmin = (claims: Record<string, unknown>): boolean => {
    seen.push(claims)
    return claims['role'] === 'SUPERADMIN' && claims['status'] !== 'disabled'
  }
  const { app, fixture, sign, db } = await build(t, { verifyRoleInDatabase: true, isSuperAdmin })
  const url = phoneNumbersUrl(fixture.organizationId)
  const asAdmin = { authorization: `Bearer ${sign({ sub: fixture.adminId, role: 'SUPERADMIN' })}` }
  const admins = db.collection('users')
  await admins.updateOne({ role: 'SUPERADMIN' }, { $set: { status: 'active', phoneNumbers: [{ provider: 'twilio', phoneNumber: '+15550000001' }] } })
  t.equal((await app.inject({ method: 'GET', url, headers: asAdmin })).statusCode, 200)
  const stored = seen.at(-1)
  t.match(stored, { role: 'SUPERADMIN', status: 'active', name: 'Root' }, 'the predicate sees the stored document')
  t.notOk(stored !== undefined && 'phoneNumbers' in stored, 'but not the numbers array')

  await admins.updateOne({ role: 'SUPERADMIN' }, { $set: { status: 'disabled' } })
  t.equal((await app.inject({ method: 'GET', url, headers: asAdmin })).statusCode, 403, 'a disabled account is refused on its next request')
})

t.test('RS256 with a public key: algorithm confusion (HS256 signed with the public key) is refused', async (t) => {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } })
  const { app, fixture } = await build(t, { auth: { publicKey, algorithms: ['RS256'], issuer: 'https://id.example', audience: 'phone-api' } })
  const issuer = await keyPairIssuer(t, 'RS256', privateKey, publicKey)
  const url = phoneNumbersUrl(fixture.organizationId)
  const claims = { sub: fixture.adminId, role: 'SUPERADMIN' }

  const good = issuer.jwt.sign({ ...claims, iss: 'https://id.example', aud: 'phone-api' })
  t.equal((await app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${good}` } })).statusCode, 200)

  const confused = hs256({ alg: 'HS256', typ: 'JWT' }, { ...claims, iss: 'https://id.example', aud: 'phone-api', exp: nowSeconds() + 600 }, publicKey)
  t.equal((await app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${confused}` } })).statusCode, 401, 'HS256 signed with the public key')

  const wrongIssuer = issuer.jwt.sign({ ...claims, iss: 'https://evil.example', aud: 'phone-api' })
  t.equal((await app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${wrongIssuer}` } })).statusCode, 401, 'wrong iss')
  const wrongAudience = issuer.jwt.sign({ ...claims, iss: 'https://id.example', aud: 'other-api' })
  t.equal((await app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${wrongAudience}` } })).statusCode, 401, 'wrong aud')
  const kidTrick = issuer.jwt.sign({ ...claims, iss: 'https://id.example', aud: 'phone-api' }, { kid: '../../../../dev/null' })
  t.equal((await app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${kidTrick}` } })).statusCode, 200, 'kid is ignored with a static key: still the same key, still valid')
  const kidForged = hs256({ alg: 'HS256', typ: 'JWT', kid: '../../../../dev/null' }, { ...claims, iss: 'https://id.example', aud: 'phone-api', exp: nowSeconds() + 600 }, '')
  t.equal((await app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${kidForged}` } })).statusCode, 401, 'kid path trick with an empty key')
})

t.test('getKey resolves the key per token (JWKS style) and is never asked for alg none', async (t) => {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256', publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } })
  const requestedKids: Array<string | undefined> = []
  const { app, fixture } = await build(t, {
    auth: {
      algorithms: ['ES256'],
      getKey: async ({ header }) => {
        requestedKids.push(header.kid)
        if (header.kid !== 'key-1') throw new Error(`unknown kid ${String(header.kid)}`)
        return publicKey
      }
    }
  })
  const issuer = await keyPairIssuer(t, 'ES256', privateKey, publicKey)
  const url = phoneNumbersUrl(fixture.organizationId)
  const claims = { sub: fixture.adminId, role: 'SUPERADMIN' }
  t.equal((await app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${issuer.jwt.sign(claims, { kid: 'key-1' })}` } })).statusCode, 200)
  const unknownKid = await app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${issuer.jwt.sign(claims, { kid: 'key-2' })}` } })
  t.equal(unknownKid.statusCode, 401)
  t.same(unknownKid.json(), { error: 'Unauthorized', details: 'No key was found to verify the token' }, 'the resolver\'s own message is not sent to the caller')
  t.same(requestedKids, ['key-1', 'key-2'])
})
