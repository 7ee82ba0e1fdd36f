/**
 * JWT corpus beyond test/auth.test.ts: `alg` spellings, `crit` (refused by fast-jwt), key-location
 * headers (jku/x5u/jwk/x5c) that must be ignored, odd payload types and
 * claim types, malformed shapes, scheme spelling and whitespace, the verified
 * token cache against expiry, and (over a real socket, where Node's own header
 * handling applies) duplicate Authorization headers and header injection.
 *
 * Every hostile token is 401 (`{ error, details }`); the only 200s are tokens
 * that are genuinely valid (properly signed with the configured secret,
 * unexpired), whatever else their header says. Nothing is written by any of
 * them (whole collections compared).
 */
import { createHmac } from 'node:crypto'
import { connect } from 'node:net'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { build, phoneNumbersUrl, eventsSettled, settledSnapshot, TEST_SECRET } from '../helper.js'

const b64 = (value: unknown): string => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url')
const now = (): number => Math.floor(Date.now() / 1000)

function signRaw (header: unknown, payload: unknown, key: string | Buffer = TEST_SECRET, hash = 'sha256'): string {
  const unsigned = `${b64(header)}.${b64(payload)}`
  return `${unsigned}.${createHmac(hash, key).update(unsigned).digest('base64url')}`
}

const snapshot = settledSnapshot

/** Sends raw bytes over a socket and returns the status line's code (0 when the connection closed without one). */
async function rawStatus (port: number, request: string): Promise<number> {
  return await new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    let received = ''
    socket.setTimeout(5000, () => { socket.destroy(); reject(new Error('raw request timed out')) })
    socket.on('data', (chunk) => { received += chunk.toString('latin1') })
    socket.on('error', () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(received)?.[1] ?? 0)))
    socket.on('close', () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(received)?.[1] ?? 0)))
    // Not end(): a half-closed socket may be dropped before a slow answer; Connection: close ends it.
    socket.write(request)
  })
}

t.test('hostile tokens: 401; tokens that are genuinely valid despite odd headers: 200; nothing written', async (t) => {
  const { app, db, fixture } = await build(t)
  const before = await snapshot(db)
  const url = phoneNumbersUrl(fixture.organizationId)
  const claims = { sub: fixture.adminId, role: 'SUPERADMIN', exp: now() + 600 }
  const hs = { alg: 'HS256', typ: 'JWT' }
  const unsignedNone = (alg: string): string => `${b64({ alg, typ: 'JWT' })}.${b64(claims)}.`

  // [name, Authorization header value, expected status]
  const cases: Array<[string, string, number]> = [
    ['alg None', `Bearer ${unsignedNone('None')}`, 401],
    ['alg nOnE', `Bearer ${unsignedNone('nOnE')}`, 401],
    ['alg NONE', `Bearer ${unsignedNone('NONE')}`, 401],
    ['alg none with an HMAC signature attached', `Bearer ${signRaw({ alg: 'none', typ: 'JWT' }, claims)}`, 401],
    ['alg hs256 (lower case) correctly signed', `Bearer ${signRaw({ alg: 'hs256', typ: 'JWT' }, claims)}`, 401],
    ['alg "HS256 " (trailing space)', `Bearer ${signRaw({ alg: 'HS256 ', typ: 'JWT' }, claims)}`, 401],
    ['alg missing', `Bearer ${signRaw({ typ: 'JWT' }, claims)}`, 401],
    ['alg null', `Bearer ${signRaw({ alg: null, typ: 'JWT' }, claims)}`, 401],
    ['alg as an array', `Bearer ${signRaw({ alg: ['HS256'], typ: 'JWT' }, claims)}`, 401],
    ['alg HS384 signed with the secret', `Bearer ${signRaw({ alg: 'HS384', typ: 'JWT' }, claims, TEST_SECRET, 'sha384')}`, 401],
    ['alg RS256 with an HMAC signature', `Bearer ${signRaw({ alg: 'RS256', typ: 'JWT' }, claims)}`, 401],
    ['crit naming an unknown extension, properly signed (RFC 7515 §4.1.11)', `Bearer ${signRaw({ ...hs, crit: ['x-unknown'], 'x-unknown': true }, claims)}`, 401],
    ['crit naming b64 (RFC 7797), properly signed', `Bearer ${signRaw({ ...hs, crit: ['b64'], b64: false }, claims)}`, 401],
    ['jku pointing elsewhere, signed with an attacker key', `Bearer ${signRaw({ ...hs, jku: 'http://127.0.0.1:1/jwks.json' }, claims, 'attacker-key-attacker-key-attacker-key')}`, 401],
    ['x5u pointing elsewhere, signed with an attacker key', `Bearer ${signRaw({ ...hs, x5u: 'http://127.0.0.1:1/cert.pem' }, claims, 'attacker-key-attacker-key-attacker-key')}`, 401],
    ['embedded jwk (symmetric) with the matching attacker key', `Bearer ${signRaw({ ...hs, jwk: { kty: 'oct', k: b64('attacker-key-attacker-key-attacker-key') } }, claims, 'attacker-key-attacker-key-attacker-key')}`, 401],
    ['x5c with junk, attacker key', `Bearer ${signRaw({ ...hs, x5c: ['MIIB'] }, claims, 'attacker-key-attacker-key-attacker-key')}`, 401],
    ['jku/x5u/jwk headers, properly signed with the secret (headers ignored: genuinely valid)', `Bearer ${signRaw({ ...hs, jku: 'http://127.0.0.1:1/jwks.json', x5u: 'http://127.0.0.1:1/c.pem', jwk: { kty: 'oct', k: 'AA' } }, claims)}`, 200],
    ['payload is a JSON array', `Bearer ${signRaw(hs, [claims])}`, 401],
    ['payload is a JSON string', `Bearer ${signRaw(hs, JSON.stringify(JSON.stringify(claims)))}`, 401],
    ['payload is a number', `Bearer ${signRaw(hs, '12345')}`, 401],
    ['payload is null', `Bearer ${signRaw(hs, 'null')}`, 401],
    ['payload is not JSON', `Bearer ${signRaw(hs, 'role=SUPERADMIN')}`, 401],
    ['header is a JSON array', `Bearer ${signRaw([hs], claims)}`, 401],
    ['exp as a string', `Bearer ${signRaw(hs, { ...claims, exp: String(now() + 600) })}`, 401],
    ['exp as an object', `Bearer ${signRaw(hs, { ...claims, exp: { $gt: 0 } })}`, 401],
    ['exp null', `Bearer ${signRaw(hs, { ...claims, exp: null })}`, 401],
    ['exp negative', `Bearer ${signRaw(hs, { ...claims, exp: -1 })}`, 401],
    ['nbf as a string in the future', `Bearer ${signRaw(hs, { ...claims, nbf: String(now() + 3600) })}`, 401],
    ['two segments', `Bearer ${b64(hs)}.${b64(claims)}`, 401],
    ['four segments', `Bearer ${signRaw(hs, claims)}.x`, 401],
    ['JWE-shaped (five segments)', `Bearer ${b64({ alg: 'dir', enc: 'A256GCM' })}..${b64('iv')}.${b64('ct')}.${b64('tag')}`, 401],
    ['signature in standard base64 with padding', `Bearer ${signRaw(hs, claims).replace(/\.([^.]*)$/, (_, sig: string) => `.${Buffer.from(sig, 'base64url').toString('base64')}`)}`, 401],
    ['empty signature', `Bearer ${b64(hs)}.${b64(claims)}.`, 401],
    ['valid token twice, comma-joined', `Bearer ${signRaw(hs, claims)},Bearer ${signRaw(hs, claims)}`, 401],
    ['valid token followed by a second word', `Bearer ${signRaw(hs, claims)} extra`, 401],
    ['space inside the token', `Bearer ${signRaw(hs, claims).replace('.', '. ')}`, 401],
    ['no space after the scheme', `Bearer${signRaw(hs, claims)}`, 401],
    ['scheme Token', `Token ${signRaw(hs, claims)}`, 401],
    ['scheme JWT', `JWT ${signRaw(hs, claims)}`, 401]
  ]
  for (const [name, authorization, expected] of cases) {
    const response = await app.inject({
      method: 'POST',
      url,
      headers: { authorization, 'content-type': 'application/json' },
      payload: { targetUserId: fixture.userId, provider: 'twilio', phoneNumber: '+14165550102', isDefault: false }
    })
    t.equal(response.statusCode, expected, name)
    if (expected === 401) {
      t.equal(response.json().error, 'Unauthorized', `${name}: error`)
      t.type(response.json().details, 'string', `${name}: details`)
    }
  }
  // The one genuinely valid case wrote exactly one assignment; undo it and compare everything.
  await eventsSettled(db)
  await db.collection('users').updateMany({ phoneNumbers: { $exists: true } }, { $unset: { phoneNumbers: '', phoneNumbersRevision: '', phoneNumbersOutbox: '' } })
  t.same(await snapshot(db), before, `nothing else written (${cases.length} tokens)`)
})

t.test('scheme spelling and whitespace: RFC 7235 makes the scheme case-insensitive', async (t) => {
  const { app, fixture } = await build(t)
  const url = phoneNumbersUrl(fixture.organizationId)
  const token = signRaw({ alg: 'HS256', typ: 'JWT' }, { sub: fixture.adminId, role: 'SUPERADMIN', exp: now() + 600 })
  const statuses: Record<string, number> = {}
  for (const [name, authorization] of [
    ['lowercase bearer', `bearer ${token}`],
    ['uppercase BEARER', `BEARER ${token}`],
    ['two spaces', `Bearer  ${token}`],
    ['tab separator', `Bearer\t${token}`],
    ['trailing space', `Bearer ${token} `]
  ] as const) {
    const response = await app.inject({ method: 'GET', url, headers: { authorization } })
    statuses[name] = response.statusCode
    t.ok([200, 401].includes(response.statusCode), `${name}: ${response.statusCode} (200: same valid token; 401: refused)`)
  }
  // The valid token itself is never refused because of the scheme's case (RFC 7235 §2.1).
  t.equal(statuses['lowercase bearer'], 200, 'lowercase bearer carries the same valid token')
  t.equal(statuses['uppercase BEARER'], 200, 'BEARER carries the same valid token')
})

t.test('the verified-token cache honours exp: a token that passed once is refused once expired', async (t) => {
  const { app, fixture } = await build(t)
  const url = phoneNumbersUrl(fixture.organizationId)
  const exp = now() + 2
  const token = signRaw({ alg: 'HS256', typ: 'JWT' }, { sub: fixture.adminId, role: 'SUPERADMIN', exp })
  t.equal((await app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${token}` } })).statusCode, 200, 'fresh: 200 (and cached)')
  await new Promise((resolve) => setTimeout(resolve, (exp + 1) * 1000 - Date.now() + 100))
  t.equal((await app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${token}` } })).statusCode, 401, 'expired: 401 despite the cache')
})

t.test('over a real socket: duplicate Authorization headers, header injection, oversized header', async (t) => {
  const { app, db, fixture } = await build(t)
  const before = await snapshot(db)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as AddressInfo
  const url = phoneNumbersUrl(fixture.organizationId)
  const valid = signRaw({ alg: 'HS256', typ: 'JWT' }, { sub: fixture.adminId, role: 'SUPERADMIN', exp: now() + 600 })
  const forged = signRaw({ alg: 'HS256', typ: 'JWT' }, { sub: fixture.adminId, role: 'SUPERADMIN', exp: now() + 600 }, 'attacker-key-attacker-key-attacker-key')
  const body = JSON.stringify({ targetUserId: fixture.userId, provider: 'twilio', phoneNumber: '+14165550102' })
  const request = (authLines: string): string =>
    `POST ${url} HTTP/1.1\r\nHost: 127.0.0.1\r\n${authLines}Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`

  // Node keeps the first Authorization header and drops the others; either way a forged one never wins.
  const forgedFirst = await rawStatus(port, request(`Authorization: Bearer ${forged}\r\nAuthorization: Bearer ${valid}\r\n`))
  t.equal(forgedFirst, 401, 'forged first, valid second: 401')
  const garbageFirst = await rawStatus(port, request(`Authorization: Bearer x\r\nAuthorization: Bearer ${valid}\r\n`))
  t.equal(garbageFirst, 401, 'garbage first, valid second: 401')
  const validFirst = await rawStatus(port, request(`Authorization: Bearer ${valid}\r\nAuthorization: Bearer ${forged}\r\n`))
  t.ok([200, 400, 401].includes(validFirst), `valid first, forged second: ${validFirst} (200 only because the first header is genuinely valid)`)
  if (validFirst !== 401) {
    await eventsSettled(db)
    await db.collection('users').updateMany({}, { $unset: { phoneNumbers: '', phoneNumbersRevision: '', phoneNumbersOutbox: '' } })
  }

  // Bytes that would split or fold the header are stopped by Node's HTTP parser (400, connection closed) before any route runs.
  for (const [name, line] of [
    ['obs-fold continuation', `Authorization: Bearer x\r\n ${valid}\r\n`],
    ['bare LF inside the value', `Authorization: Bearer ${forged}\nX-Injected: 1\r\n`],
    ['NUL in the value', `Authorization: Bearer ${valid}\u0000\r\n`],
    ['CR inside the value', `Authorization: Bearer ${forged}\rAuthorization: Bearer ${valid}\r\n`]
  ] as const) {
    const status = await rawStatus(port, request(line))
    t.ok([400, 401].includes(status), `${name}: ${status}`)
  }
  const oversized = await rawStatus(port, request(`Authorization: Bearer ${'a'.repeat(70_000)}\r\n`))
  t.ok([401, 431].includes(oversized), `70 kB Authorization header: ${oversized}`)

  t.same(await snapshot(db), before, 'nothing written')
})
