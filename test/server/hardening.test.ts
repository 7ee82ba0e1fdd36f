/**
 * Findings of the security review (issue 14), each against the real standalone
 * server process: required issuer and audience, bounded slow and endless
 * requests, request-id rules, development mode with a real secret, and
 * configuration that must refuse to start.
 */
import { once } from 'node:events'
import { ObjectId } from 'mongodb'
import { createHmac } from 'node:crypto'
import net from 'node:net'
import t from 'tap'
import { createTestDatabase, uriForDatabase } from '../helper-database.js'
import { spawnStandalone, startStandalone, type StandaloneServer } from './helper-server.js'
import { createSigner, seedFixture } from '../helper.js'

// Three server processes, one of them on an embedded database it starts itself.
t.setTimeout(180_000)

const SECRET = 'hardening-secret-0123456789-abcdefghij-KLMNOP'
const ISSUER = 'https://id.example'
const AUDIENCE = 'phone-api'

/** An HS256 token with exactly these claims (the signer would add its own exp). */
function hs256 (payload: Record<string, unknown>): string {
  const encode = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url')
  const unsigned = `${encode({ alg: 'HS256', typ: 'JWT' })}.${encode(payload)}`
  return `${unsigned}.${createHmac('sha256', SECRET).update(unsigned).digest('base64url')}`
}

async function stop (server: StandaloneServer): Promise<void> {
  if (server.child.exitCode !== null) return
  const gone = once(server.child, 'close')
  server.child.kill('SIGTERM')
  await gone
}

interface RawExchange {
  /** Everything the server sent. */
  received: string
  /** Milliseconds from the first byte sent until the server closed the socket (undefined: still open at the deadline). */
  closedAfterMs: number | undefined
  /** Body bytes the client managed to hand to the socket after the response began. */
  bytesAfterResponse: number
}

/**
 * Sends `head` over a raw socket, then (if `bodyChunk` is given) keeps writing
 * it until the server closes the socket, `maxBodyBytes` is reached, or
 * `deadlineMs` passes.
 */
async function rawExchange (port: number, head: string, options: { bodyChunk?: Buffer, maxBodyBytes?: number, deadlineMs: number }): Promise<RawExchange> {
  const socket = net.connect(port, '127.0.0.1')
  await once(socket, 'connect')
  const started = performance.now()
  let received = ''
  const state: { closedAfterMs: number | undefined } = { closedAfterMs: undefined }
  let responseStarted = false
  let bytesAfterResponse = 0
  socket.on('data', (chunk: Buffer) => {
    received += chunk.toString('latin1')
    responseStarted = true
  })
  socket.on('error', () => {})
  const closed = new Promise<void>((resolve) => socket.once('close', () => {
    state.closedAfterMs = performance.now() - started
    resolve()
  }))
  // events.once() would reject on the EPIPE a closed socket raises; this only waits.
  const drained = (): Promise<void> => new Promise((resolve) => {
    socket.once('drain', resolve)
    socket.once('error', () => resolve())
  })
  socket.write(head)
  const deadline = started + options.deadlineMs
  let sent = 0
  while (options.bodyChunk !== undefined && state.closedAfterMs === undefined && !socket.destroyed && sent < (options.maxBodyBytes ?? Infinity) && performance.now() < deadline) {
    const flushed = socket.write(options.bodyChunk)
    sent += options.bodyChunk.length
    if (responseStarted) bytesAfterResponse += options.bodyChunk.length
    if (!flushed) await Promise.race([drained(), closed, new Promise((resolve) => setTimeout(resolve, Math.max(0, deadline - performance.now())))])
  }
  await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, Math.max(0, deadline - performance.now())))])
  socket.destroy()
  return { received, closedAfterMs: state.closedAfterMs, bytesAfterResponse }
}

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

t.test('a real JWT_SECRET without MONGODB_URI does not fall back to development mode', async (t) => {
  const { child, stderr } = spawnStandalone({ MONGODB_URI: undefined, JWT_SECRET: SECRET, PORT: '0' })
  const [code] = await once(child, 'close')
  t.equal(code, 1, 'refuses to start')
  t.match(stderr.join(''), /MONGODB_URI is not set, but JWT_SECRET is/)
  t.notMatch(stderr.join(''), /export TOKEN=/, 'no token printed')
})

t.test('DEVELOPMENT_MODE=true with an operator secret runs the embedded database and prints no token', async (t) => {
  const server = await startStandalone({ MONGODB_URI: undefined, JWT_SECRET: SECRET, DEVELOPMENT_MODE: 'true', LOG_LEVEL: 'warn' }, { startTimeoutMs: 180_000 })
  // The banner comes after listen; give it a moment.
  const deadline = Date.now() + 10_000
  while (!/Development mode/.test(server.stderr.join('')) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100))
  await stop(server)
  const printed = server.output()
  t.match(printed, /No token is printed/, 'says why there is no token')
  t.notMatch(printed, /export TOKEN=|eyJ[\w-]+\.eyJ/, 'no token anywhere in the output')
})

t.test('configuration that must not start: every problem listed, no stack trace', async (t) => {
  const { child, stderr } = spawnStandalone({
    MONGODB_URI: 'mongodb://127.0.0.1:1/bad%E0%A4%Aname',
    JWT_SECRET: 'a'.repeat(32),
    PORT: '0x10',
    BODY_LIMIT: '1e3',
    PHONE_NUMBERS_FIELD: 'role',
    MONGODB_DATABASE: 'with.dot'
  })
  const [code] = await once(child, 'close')
  const printed = stderr.join('')
  t.equal(code, 1)
  t.match(printed, /^Invalid configuration:/m)
  t.match(printed, /MONGODB_URI has a broken %-escape/)
  t.match(printed, /JWT_SECRET looks guessable/)
  t.match(printed, /PORT=0x10 must be an integer/)
  t.match(printed, /BODY_LIMIT=1e3 must be an integer/)
  t.match(printed, /PHONE_NUMBERS_FIELD=role would overwrite a user field/)
  t.match(printed, /MONGODB_DATABASE=with\.dot must not contain/)
  t.notMatch(printed, /\n\s+at /, 'no stack trace')

  const spaces = spawnStandalone({ MONGODB_URI: 'mongodb://127.0.0.1:1/ok', JWT_SECRET: ' '.repeat(40), PORT: '0' })
  await once(spaces.child, 'close')
  t.match(spaces.stderr.join(''), /JWT_SECRET must not start or end with white space|JWT_SECRET looks guessable/, '40 spaces are refused')
  const dotted = spawnStandalone({ MONGODB_URI: 'mongodb://127.0.0.1:1/a.b', JWT_SECRET: SECRET, PORT: '0' })
  await once(dotted.child, 'close')
  t.match(dotted.stderr.join(''), /MONGODB_URI names the database "a\.b"/, 'a database name with a dot in the URI is refused')
})
