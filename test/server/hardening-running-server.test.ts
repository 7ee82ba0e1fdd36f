/**
 * Findings of the security review (issue 14), against the running standalone
 * server process: required issuer and audience, labels, the numbers cap,
 * stored entries of other shapes, bounded slow and endless requests and
 * request-id rules. Configuration that must refuse to start:
 * hardening-startup.test.ts.
 */
import { once } from 'node:events'
import { ObjectId } from 'mongodb'
import net from 'node:net'
import t from 'tap'
import { createTestDatabase, uriForDatabase } from '../helper-database.js'
import { startStandalone } from './helper-server.js'
import { createSigner, seedFixture } from '../helper.js'
import { AUDIENCE, hs256, ISSUER, rawExchange, SECRET, stop } from './hardening-helper.js'

// One server process, on a test database.
t.setTimeout(180_000)

t.test('the running server', async (t) => {
  const { db, dbName } = await createTestDatabase(t)
  const fixture = await seedFixture(db)
  const server = await startStandalone({
    MONGODB_URI: uriForDatabase(dbName),
    JWT_SECRET: SECRET,
    JWT_ISSUER: ISSUER,
    JWT_AUDIENCE: AUDIENCE,
    LOG_LEVEL: 'info',
    REQUEST_LOGGING: 'true',
    REQUEST_TIMEOUT_MS: '2000',
    HEADERS_TIMEOUT_MS: '1000',
    MAX_NUMBERS_PER_USER: '3',
    JWT_MAX_LIFETIME_S: '3600'
  })
  t.teardown(() => stop(server))
  const signer = await createSigner(SECRET)
  t.teardown(() => signer.close())
  const url = `${server.base}/api/organizations/${fixture.organizationId}/phone-numbers`
  const admin = { sub: fixture.adminId, role: 'SUPERADMIN' }
  const bearer = (claims: Record<string, unknown>): string => `Bearer ${signer.sign(claims)}`

  t.test('a configured issuer and audience are required, not only checked when present', async (t) => {
    const cases: Array<[string, Record<string, unknown>, number]> = [
      ['neither iss nor aud', admin, 401],
      ['iss only', { ...admin, iss: ISSUER }, 401],
      ['aud only', { ...admin, aud: AUDIENCE }, 401],
      ['wrong iss', { ...admin, iss: 'https://evil.example', aud: AUDIENCE }, 401],
      ['both, right', { ...admin, iss: ISSUER, aud: AUDIENCE }, 200]
    ]
    for (const [name, claims, status] of cases) {
      const response = await fetch(url, { headers: { authorization: bearer(claims) } })
      t.equal(response.status, status, name)
      if (status === 401) t.equal((await response.json() as { error: string }).error, 'Unauthorized', `${name}: contract body`)
    }
  })

  const goodClaims = { ...admin, iss: ISSUER, aud: AUDIENCE }
  const assign = async (body: Record<string, unknown>, headers: Record<string, string> = {}): Promise<Response> => await fetch(url, {
    method: 'POST',
    headers: { authorization: bearer(goodClaims), 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body)
  })
  const users = db.collection('users')
  const stored = async (userId: string): Promise<unknown[]> => ((await users.findOne({ _id: new ObjectId(userId) }))?.['phoneNumbers'] ?? []) as unknown[]

  t.test('labels hold letters, digits, punctuation, symbols and spaces; control and invisible characters are refused', async (t) => {
    const before = await stored(fixture.userId)
    const refused: Array<[string, string]> = [
      ['NUL', 'a\u0000b'], ['ANSI escape', '\u001b[31mred'], ['right-to-left override', 'abc\u202Etxt.exe'],
      ['zero-width space', 'a\u200Bb'], ['byte order mark', '\uFEFFx'], ['lone surrogate', 'x\uD800y'], ['C1 control', 'a\u0085b']
    ]
    for (const [name, label] of refused) {
      const response = await assign({ targetUserId: fixture.userId, provider: 'twilio', phoneNumber: '+14165550150', label })
      t.equal(response.status, 400, name)
      t.match(await response.json(), { error: 'Validation error', details: /body\/label must match pattern/ }, `${name}: says which field`)
    }
    t.same(await stored(fixture.userId), before, 'nothing written')

    const label = 'Bureau – Montréal 📞 本社'
    const first = await assign({ targetUserId: fixture.userId, provider: 'twilio', phoneNumber: '+14165550150', label })
    t.equal(first.status, 200, 'accents, symbols, emoji and CJK are labels')
    const repeat = await assign({ targetUserId: fixture.userId, provider: 'twilio', phoneNumber: '+14165550150', label })
    const [a, b] = [await first.json(), await repeat.json()] as Array<{ assignment: { updatedAt: string, label: string } }>
    t.equal(b?.assignment.label, label, 'stored as sent')
    t.equal(b?.assignment.updatedAt, a?.assignment.updatedAt, 'a repeat writes nothing (idempotent)')
  })

  t.test('a user may hold at most MAX_NUMBERS_PER_USER numbers; one already above it keeps working', async (t) => {
    for (const n of [1, 2, 3]) t.equal((await assign({ targetUserId: fixture.otherUserId, provider: 'sinch', phoneNumber: `+1416555020${n}` })).status, 200, `number ${n}`)
    const fourth = await assign({ targetUserId: fixture.otherUserId, provider: 'sinch', phoneNumber: '+14165550204' })
    t.equal(fourth.status, 409)
    t.match(await fourth.json(), { error: 'Phone number limit reached', details: /3 or more numbers/ })
    t.equal((await stored(fixture.otherUserId)).length, 3, 'nothing added')
    t.equal((await assign({ targetUserId: fixture.otherUserId, provider: 'sinch', phoneNumber: '+14165550201', label: 'still editable' })).status, 200, 'an existing number can still be updated')

    const crowded = new ObjectId()
    const now = new Date()
    const entries = [1, 2, 3, 4, 5].map((n) => ({ provider: 'twilio', phoneNumber: `+1416555030${n}`, isDefault: n === 1, isInboundEnabled: false, createdAt: now, updatedAt: now }))
    await users.insertOne({ _id: crowded, organizationId: new ObjectId(fixture.organizationId), phoneNumbers: entries })
    t.equal((await assign({ targetUserId: crowded.toHexString(), provider: 'twilio', phoneNumber: '+14165550302', label: 'x' })).status, 200, 'above the cap: update works')
    t.equal((await fetch(url, { method: 'DELETE', headers: { authorization: bearer(goodClaims), 'content-type': 'application/json' }, body: JSON.stringify({ targetUserId: crowded.toHexString(), provider: 'twilio', phoneNumber: '+14165550305' }) })).status, 200, 'above the cap: remove works')
    t.equal((await assign({ targetUserId: crowded.toHexString(), provider: 'twilio', phoneNumber: '+14165550309' })).status, 409, 'above the cap: no new number')
    t.equal((await stored(crowded.toHexString())).length, 4, 'nothing dropped but the removed one')
  })

  t.test('entries other code stored in another shape never make a write answer 500', async (t) => {
    const legacy = new ObjectId()
    await users.insertOne({
      _id: legacy,
      organizationId: new ObjectId(fixture.organizationId),
      phoneNumbers: [
        null,
        { provider: 'twilio', phoneNumber: '+14165550401', isDefault: false, isInboundEnabled: true, createdAt: '2024-01-02T03:04:05Z', updatedAt: 'yesterday' },
        'a note'
      ]
    })
    const relabel = await assign({ targetUserId: legacy.toHexString(), provider: 'twilio', phoneNumber: '+14165550401', isDefault: false, label: 'relabelled' })
    t.equal(relabel.status, 200, 'a string createdAt does not turn a stored write into a 500')
    t.match(await relabel.json(), { assignment: { createdAt: '2024-01-02T03:04:05.000Z', label: 'relabelled' } }, 'the stored date is kept, as a date')
    const after = await stored(legacy.toHexString())
    t.equal(after[0], null, 'the null entry stays in place')
    t.equal(after[2], 'a note', 'so does the string')
    t.ok((after[1] as { createdAt: unknown }).createdAt instanceof Date, 'createdAt is stored as a Date now')

    const listed = await fetch(`${url}?targetUserId=${legacy.toHexString()}`, { headers: { authorization: bearer(goodClaims) } })
    t.equal(listed.status, 200, 'the list skips what it cannot show')
    t.same(((await listed.json()) as { phoneNumbers: Array<{ phoneNumber: string }> }).phoneNumbers.map((entry) => entry.phoneNumber), ['+14165550401'])
  })

  t.test('a numbers field that is not an array is never overwritten: 409, the document must be fixed', async (t) => {
    const organizationId = new ObjectId(fixture.organizationId)
    const odd = [new ObjectId(), new ObjectId()] as const
    await users.insertMany([
      { _id: odd[0], organizationId, phoneNumbers: 'see the CRM' },
      { _id: odd[1], organizationId, phoneNumbers: { main: '+14165550501' } }
    ])
    const body = (userId: ObjectId): Record<string, unknown> => ({ targetUserId: userId.toHexString(), provider: 'twilio', phoneNumber: '+14165550501' })
    for (const userId of odd) {
      const before = await users.findOne({ _id: userId })
      const assigned = await assign(body(userId))
      t.equal(assigned.status, 409, 'assign')
      t.match(await assigned.json(), { error: 'Malformed user document', details: /phoneNumbers field is not an array/ })
      const removed = await fetch(url, { method: 'DELETE', headers: { authorization: bearer(goodClaims), 'content-type': 'application/json' }, body: JSON.stringify(body(userId)) })
      t.equal(removed.status, 409, 'remove')
      t.same(await users.findOne({ _id: userId }), before, 'the document is exactly as other code left it')
      const listed = await fetch(`${url}?targetUserId=${userId.toHexString()}`, { headers: { authorization: bearer(goodClaims) } })
      t.same(await listed.json(), { phoneNumbers: [], nextCursor: null }, 'listing shows nothing for it, and does not fail')
    }
    const empty = new ObjectId()
    await users.insertOne({ _id: empty, organizationId, phoneNumbers: null })
    t.equal((await assign(body(empty))).status, 200, 'null means no numbers yet')
    t.equal((await stored(empty.toHexString())).length, 1)
  })

  t.test('smaller items: token lifetime, no-store, charset', async (t) => {
    const now = Math.floor(Date.now() / 1000)
    const sign = (claims: Record<string, unknown>): string => signer.sign(claims, { expiresIn: '5m' })
    const farExp = await fetch(url, { headers: { authorization: `Bearer ${hs256({ ...goodClaims, iat: now, exp: 1e300 })}` } })
    t.equal(farExp.status, 401, 'exp beyond JWT_MAX_LIFETIME_S is refused')
    const futureIat = await fetch(url, { headers: { authorization: `Bearer ${sign({ ...goodClaims, iat: now + 3600 })}` } })
    t.equal(futureIat.status, 401, 'an iat in the future is refused')
    const fine = await fetch(url, { headers: { authorization: `Bearer ${sign(goodClaims)}` } })
    t.equal(fine.status, 200)
    t.equal(fine.headers.get('cache-control'), 'no-store', 'a list is never cached')
    t.equal(farExp.headers.get('cache-control'), 'no-store', 'neither is an error')
    const utf16 = await assign({ targetUserId: fixture.userId, provider: 'twilio', phoneNumber: '+14165550150' }, { 'content-type': 'application/json; charset=utf-16' })
    t.equal(utf16.status, 415, 'a non-UTF-8 charset is refused, not decoded as UTF-8')
    t.match(await utf16.json(), { error: 'Unsupported media type', details: /UTF-8/ })
    t.equal((await assign({ targetUserId: fixture.userId, provider: 'twilio', phoneNumber: '+14165550150' }, { 'content-type': 'application/json; charset=UTF-8' })).status, 200, 'UTF-8 spelt any way is fine')
  })

  t.test('x-request-id is used only when short and plain; anything else gets a generated id', async (t) => {
    const authorization = bearer({ ...admin, iss: ISSUER, aud: AUDIENCE })
    const given = ['plain-id_1.2', 'Contact support at +1-900-555-0100', 'x'.repeat(65), 'req-1']
    for (const id of given) await fetch(url, { headers: { authorization, 'x-request-id': id } })
    await new Promise((resolve) => setTimeout(resolve, 200))
    const reqIds = new Set(server.logs.map((line) => line['reqId']).filter((id) => typeof id === 'string'))
    t.ok(reqIds.has('plain-id_1.2'), 'a short plain id is kept')
    t.ok(reqIds.has('req-1'), 'a plain id of the server\'s old shape is just an id')
    t.notOk(reqIds.has('Contact support at +1-900-555-0100'), 'text meant for a reader is not an id')
    t.notOk(reqIds.has('x'.repeat(65)), 'an id over 64 characters is not used')
    const generated = [...reqIds].filter((id) => /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(id as string))
    t.ok(generated.length >= 2, `the refused ids were replaced by generated UUIDs (${generated.length})`)
  })

  t.test('an early rejection with an endless body closes the connection instead of draining it', async (t) => {
    const head = `POST /api/organizations/${fixture.organizationId}/phone-numbers HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n`
    const exchange = await rawExchange(server.port, head, { bodyChunk: Buffer.alloc(64 * 1024, 0x20), maxBodyBytes: 512 * 1024 * 1024, deadlineMs: 10_000 })
    t.match(exchange.received, /^HTTP\/1\.1 401 /, 'answered 401')
    // The server discards at most 8 MiB (or 2 s) after its answer, then closes; the rest is socket buffers.
    t.ok(exchange.closedAfterMs !== undefined && exchange.closedAfterMs < 4000, `socket closed by the server (${Math.round(exchange.closedAfterMs ?? -1)} ms)`)
    t.ok(exchange.bytesAfterResponse < 40 * 1024 * 1024, `a bounded amount was taken after the 401 (${(exchange.bytesAfterResponse / 1048576).toFixed(1)} MiB)`)
  })

  t.test('a rejected request whose body does arrive leaves its keep-alive connection open', async (t) => {
    const socket = net.connect(server.port, '127.0.0.1')
    await once(socket, 'connect')
    let received = ''
    socket.on('data', (chunk: Buffer) => { received += chunk.toString('latin1') })
    const state: { closed: boolean } = { closed: false }
    socket.once('close', () => { state.closed = true })
    const body = '{"targetUserId":"x"}'
    socket.write(`POST /api/organizations/${fixture.organizationId}/phone-numbers HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`)
    await new Promise((resolve) => setTimeout(resolve, 100))
    socket.write(body)
    // Past the 2 s the server would linger for an unfinished body.
    await new Promise((resolve) => setTimeout(resolve, 2500))
    t.notOk(state.closed, 'the connection is still open')
    socket.write('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
    await new Promise((resolve) => setTimeout(resolve, 300))
    socket.destroy()
    t.match(received, /^HTTP\/1\.1 401 [\s\S]*HTTP\/1\.1 200 /, 'the 401, then the next request on the same connection answered')
  })

  t.test('an authenticated request whose body never arrives is closed after the request timeout', async (t) => {
    const head = `POST /api/organizations/${fixture.organizationId}/phone-numbers HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ${bearer({ ...admin, iss: ISSUER, aud: AUDIENCE })}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n`
    const exchange = await rawExchange(server.port, head, { deadlineMs: 8000 })
    t.ok(exchange.closedAfterMs !== undefined && exchange.closedAfterMs < 2000 + 2500, `closed within REQUEST_TIMEOUT_MS plus the check interval (${Math.round(exchange.closedAfterMs ?? -1)} ms)`)
    t.match(exchange.received, /^HTTP\/1\.1 408 /, 'answered 408 Request Timeout')
  })

  t.test('headers trickled one byte at a time are cut off by the headers timeout', async (t) => {
    const socket = net.connect(server.port, '127.0.0.1')
    await once(socket, 'connect')
    socket.on('error', () => {})
    const started = performance.now()
    let closedAfterMs: number | undefined
    socket.once('close', () => { closedAfterMs = performance.now() - started })
    const head = 'GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ' + 'a'.repeat(100)
    for (const character of head) {
      if (closedAfterMs !== undefined || performance.now() - started > 6000) break
      socket.write(character)
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    socket.destroy()
    t.ok(closedAfterMs !== undefined && closedAfterMs < 1000 + 2500, `closed within HEADERS_TIMEOUT_MS plus the check interval (${Math.round(closedAfterMs ?? -1)} ms)`)
  })
})
