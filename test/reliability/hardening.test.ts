/**
 * Findings of the security review (issue 14), each against the real standalone
 * server process: required issuer and audience, bounded slow and endless
 * requests, request-id rules, development mode with a real secret, and
 * configuration that must refuse to start.
 */
import { once } from 'node:events'
import net from 'node:net'
import t from 'tap'
import { createTestDatabase, uriForDatabase } from '../helper-database.js'
import { spawnStandalone, startStandalone, type StandaloneServer } from '../helper-server.js'
import { createSigner, seedFixture } from '../helper.js'

// Three server processes, one of them on an embedded database it starts itself.
t.setTimeout(180_000)

const SECRET = 'hardening-secret-0123456789-abcdefghij-KLMNOP'
const ISSUER = 'https://id.example'
const AUDIENCE = 'phone-api'

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
    HEADERS_TIMEOUT_MS: '1000'
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
