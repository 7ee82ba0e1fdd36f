/**
 * Event delivery, black box: the plugin with `onEvent` (a signed webhook or a
 * plain handler) on a real database, sending to a real node:http receiver on
 * 127.0.0.1. Checks signatures (recomputed here with node:crypto), bodies
 * against the log API, retries with backoff, per-number order, handlers that
 * throw or never answer, a restart with a receiver that was down, two
 * processes sharing the deliveries, and giving up after maxAttempts.
 */
import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import type { Db } from 'mongodb'
import { createHmac } from 'node:crypto'
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import orgPhoneNumbers, { createWebhookHandler, signWebhook, verifyWebhook, type EventHandler, type OrgPhoneNumbersOptions, type PhoneNumberEvent } from '../../plugins/phone-numbers/index.js'
import { createSigner, phoneNumbersUrl, seedFixture, TEST_BACKEND, TEST_SECRET, type Fixture } from '../helper.js'
import { createTestDatabase } from '../helper-database.js'

t.setTimeout(180_000)

const VISIBILITY_MS = 200
const WEBHOOK_SECRET = 'webhook-secret-for-the-delivery-tests'
const DELIVERIES = 'phoneNumberEventDeliveries'

/** A delivery as stored (the fields these tests read): pending until delivered or given up, then kept as a tombstone. */
interface DeliveryRecord {
  _id: string
  pending?: true
  deliveredAt?: Date
  attempts?: number
  lastError?: string
  failedAt?: Date
  leaseToken?: string | null
}
/** Small pauses so retries come quickly; the defaults (1 s, 1 s) would only make the tests slow. */
const FAST = { retryBaseMs: 20, pollIntervalMs: 50 } as const

// ---------------------------------------------------------------- receiver

interface ReceivedRequest {
  id: string
  /** 1 for the first request carrying this event id. */
  attempt: number
  status: number
  headers: IncomingHttpHeaders
  body: string
}

interface Receiver {
  url: string
  requests: ReceivedRequest[]
  /** Event ids answered 2xx, in the order of their first success. */
  delivered: string[]
  attemptsOf: (id: string) => number
  /** Event ids seen in flight twice at once (should stay empty). */
  overlaps: string[]
  maxInFlight: number
  close: () => Promise<void>
}

interface ReceiverOptions {
  /** Status to answer for this id's n-th request. Default 200. */
  answer?: (id: string, attempt: number) => number
  /** Keeps each request open this long before answering. */
  holdMs?: number
}

async function listen (server: Server): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  return (server.address() as AddressInfo).port
}

async function closeServer (server: Server): Promise<void> {
  await new Promise<void>((resolve) => {
    server.close(() => resolve())
    // fetch keeps connections alive; close() alone would wait for them.
    server.closeAllConnections()
  })
}

async function startReceiver (t: Test, options: ReceiverOptions = {}): Promise<Receiver> {
  const attempts = new Map<string, number>()
  const inFlight = new Set<string>()
  const receiver: Receiver = {
    url: '',
    requests: [],
    delivered: [],
    attemptsOf: (id) => attempts.get(id) ?? 0,
    overlaps: [],
    maxInFlight: 0,
    close: async () => {}
  }
  const server = createServer((request, response) => {
    const chunks: Buffer[] = []
    request.on('data', (chunk: Buffer) => chunks.push(chunk))
    request.on('end', () => {
      const header = request.headers['x-event-id']
      const id = typeof header === 'string' ? header : ''
      if (inFlight.has(id)) receiver.overlaps.push(id)
      inFlight.add(id)
      receiver.maxInFlight = Math.max(receiver.maxInFlight, inFlight.size)
      const attempt = (attempts.get(id) ?? 0) + 1
      attempts.set(id, attempt)
      const status = options.answer?.(id, attempt) ?? 200
      const reply = (): void => {
        inFlight.delete(id)
        receiver.requests.push({ id, attempt, status, headers: request.headers, body: Buffer.concat(chunks).toString('utf8') })
        if (status < 300 && !receiver.delivered.includes(id)) receiver.delivered.push(id)
        response.writeHead(status, { 'content-type': 'text/plain' }).end(String(status))
      }
      if (options.holdMs === undefined) reply()
      else setTimeout(reply, options.holdMs)
    })
  })
  const port = await listen(server)
  receiver.url = `http://127.0.0.1:${port}/hooks/phone-numbers`
  receiver.close = async () => { await closeServer(server) }
  t.teardown(receiver.close)
  return receiver
}

/** A port nothing listens on: opened, then closed, so a connection is refused. */
async function closedPort (): Promise<number> {
  const server = createServer()
  const port = await listen(server)
  await closeServer(server)
  return port
}

// ---------------------------------------------------------------- apps

interface Setup {
  db: Db
  uri: string
  dbName: string
  fixture: Fixture
  headers: Record<string, string>
}

async function setUpDatabase (t: Test): Promise<Setup> {
  const { db, uri, dbName } = await createTestDatabase(t)
  const fixture = await seedFixture(db)
  const signer = await createSigner()
  t.teardown(() => signer.close())
  const authorization = `Bearer ${signer.sign({ sub: fixture.adminId, role: 'SUPERADMIN' })}`
  return { db, uri, dbName, fixture, headers: { authorization, 'content-type': 'application/json' } }
}

/** Closes once, whether the test closed it first or the teardown does. */
interface App {
  fastify: FastifyInstance
  close: () => Promise<void>
}

async function startApp (t: Test, db: Db, options: Partial<OrgPhoneNumbersOptions>): Promise<App> {
  const fastify = Fastify({ logger: false })
  await fastify.register(orgPhoneNumbers, { db, auth: { secret: TEST_SECRET }, eventVisibilityDelayMs: VISIBILITY_MS, ...options })
  await fastify.ready()
  let closing: Promise<void> | undefined
  const app: App = { fastify, close: async () => { closing ??= fastify.close(); await closing } }
  t.teardown(app.close)
  return app
}

function webhook (receiver: Receiver | string): EventHandler {
  return createWebhookHandler({ url: typeof receiver === 'string' ? receiver : receiver.url, secret: WEBHOOK_SECRET })
}

async function send (s: Setup, app: App, method: 'POST' | 'DELETE', path: string, body: Record<string, unknown>): Promise<number> {
  const response = await app.fastify.inject({ method, url: `${phoneNumbersUrl(s.fixture.organizationId)}${path}`, headers: s.headers, payload: body })
  return response.statusCode
}

/** Every event of the organization as the log API shows it, once flushed and visible. */
async function readLog (s: Setup, app: App, query: Record<string, string> = {}): Promise<PhoneNumberEvent[]> {
  await app.fastify.orgPhoneNumbers.eventsFlushed()
  await sleep(VISIBILITY_MS + 50)
  const search = new URLSearchParams({ limit: '1000', ...query }).toString()
  const response = await app.fastify.inject({ method: 'GET', url: `${phoneNumbersUrl(s.fixture.organizationId)}/events?${search}`, headers: s.headers })
  if (response.statusCode !== 200) throw new Error(`events answered ${response.statusCode}: ${response.body}`)
  return response.json<{ events: PhoneNumberEvent[] }>().events
}

async function waitFor (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`gave up after ${timeoutMs} ms waiting for ${what}`)
    await sleep(50)
  }
}

function allDelivered (receiver: Receiver, events: readonly PhoneNumberEvent[]): () => boolean {
  return () => events.every((event) => receiver.delivered.includes(event.id))
}

function expectedSignature (timestamp: string, body: string, secret: string = WEBHOOK_SECRET): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`
}

function header (request: ReceivedRequest, name: string): string | undefined {
  const value = request.headers[name]
  return typeof value === 'string' ? value : undefined
}

// ---------------------------------------------------------------- tests

t.test('webhook: every event arrives signed, with the body the log shows', async (t) => {
  const s = await setUpDatabase(t)
  const receiver = await startReceiver(t)
  const app = await startApp(t, s.db, { onEvent: webhook(receiver), eventDelivery: FAST })
  const { userId, otherUserId } = s.fixture

  t.equal(await send(s, app, 'POST', '', { targetUserId: userId, provider: 'twilio', phoneNumber: '+14165550301', label: 'Desk' }), 200, 'assign')
  t.equal(await send(s, app, 'POST', '', { targetUserId: userId, provider: 'twilio', phoneNumber: '+14165550301', label: 'Front desk' }), 200, 'update')
  t.equal(await send(s, app, 'POST', '', { targetUserId: userId, provider: 'sinch', phoneNumber: '+14165550302', isDefault: false }), 200, 'assign another')
  t.equal(await send(s, app, 'POST', '/transfer', { fromUserId: userId, toUserId: otherUserId, provider: 'twilio', phoneNumber: '+14165550301' }), 200, 'transfer')
  t.equal(await send(s, app, 'DELETE', '', { targetUserId: userId, provider: 'sinch', phoneNumber: '+14165550302' }), 200, 'remove')

  const log = await readLog(s, app)
  t.strictSame(new Set(log.map((event) => event.type)), new Set(['assigned', 'updated', 'transferred', 'removed']), 'the log holds every kind of change')
  await waitFor('every event at the receiver', allDelivered(receiver, log))
  const byId = new Map(log.map((event) => [event.id, event]))

  for (const request of receiver.requests) {
    const timestamp = header(request, 'x-timestamp')
    const signature = header(request, 'x-signature')
    const body = JSON.parse(request.body) as PhoneNumberEvent
    t.equal(header(request, 'x-event-id'), body.id, 'X-Event-Id is the body\'s id')
    t.match(header(request, 'content-type'), /^application\/json/)
    t.strictSame(body, byId.get(body.id), `the body of ${body.id} is the logged event`)
    t.match(timestamp, /^\d+$/, 'X-Timestamp is Unix seconds')
    t.ok(Math.abs(Date.now() / 1000 - Number(timestamp)) < 300, 'signed just now')
    t.equal(signature, expectedSignature(timestamp ?? '', request.body), 'X-Signature is HMAC-SHA256 of timestamp.body with the secret')

    const check = { secret: WEBHOOK_SECRET, body: request.body, timestamp, signature }
    t.equal(verifyWebhook(check), true, 'verifyWebhook accepts it')
    t.equal(verifyWebhook({ ...check, body: request.body.replace(body.phoneNumber, '+19995550000') }), false, 'a tampered body is rejected')
    t.equal(verifyWebhook({ ...check, secret: `${WEBHOOK_SECRET}-other` }), false, 'a wrong secret is rejected')
    t.equal(verifyWebhook({ ...check, now: (Number(timestamp) + 301) * 1000 }), false, 'the same request replayed 301 s later is rejected')
    const old = String(Number(timestamp) - 600)
    t.equal(verifyWebhook({ ...check, timestamp: old, signature: expectedSignature(old, request.body) }), false, 'a correctly signed 10-minute-old timestamp is rejected')
    t.equal(signWebhook(WEBHOOK_SECRET, timestamp ?? '', request.body), signature, 'signWebhook agrees with node:crypto')
  }
  t.ok(receiver.requests.every((request) => byId.has(request.id)), 'nothing arrives that is not in the log')
  // At least once: a repeat is allowed (the receiver de-duplicates on the id); show it when it happens.
  const repeated = log.filter((event) => receiver.attemptsOf(event.id) > 1)
  if (repeated.length > 0) t.comment(`delivered more than once: ${repeated.map((event) => `${event.type} ${event.id} x${receiver.attemptsOf(event.id)}`).join(', ')}`)
  await waitFor('no pending delivery', async () => await s.db.collection<DeliveryRecord>(DELIVERIES).countDocuments({ pending: true }) === 0)
  const tombstones = await s.db.collection<DeliveryRecord>(DELIVERIES).find({}).toArray()
  t.strictSame(tombstones.map((delivery) => delivery._id).sort(), log.map((event) => event.id).sort(), 'one delivery document per event')
  t.ok(tombstones.every((delivery) => delivery.deliveredAt instanceof Date && delivery.failedAt === undefined), 'each marked delivered')
})

t.test('retries: 503 twice then 200, every event delivered, one number in the log\'s order', async (t) => {
  const s = await setUpDatabase(t)
  const receiver = await startReceiver(t, { answer: (_id, attempt) => attempt <= 2 ? 503 : 200 })
  const app = await startApp(t, s.db, { onEvent: webhook(receiver), eventDelivery: FAST })
  const { userId, otherUserId } = s.fixture
  const number = '+14165550401'

  t.equal(await send(s, app, 'POST', '', { targetUserId: userId, provider: 'twilio', phoneNumber: number, label: 'v1' }), 200)
  t.equal(await send(s, app, 'POST', '', { targetUserId: otherUserId, provider: 'sinch', phoneNumber: '+14165550402' }), 200)
  for (const label of ['v2', 'v3', 'v4']) {
    t.equal(await send(s, app, 'POST', '', { targetUserId: userId, provider: 'twilio', phoneNumber: number, label }), 200, `relabel ${label}`)
  }
  t.equal(await send(s, app, 'POST', '/transfer', { fromUserId: userId, toUserId: otherUserId, provider: 'twilio', phoneNumber: number }), 200)
  t.equal(await send(s, app, 'DELETE', '', { targetUserId: otherUserId, provider: 'twilio', phoneNumber: number }), 200)

  const log = await readLog(s, app)
  await waitFor('every event delivered despite the 503s', allDelivered(receiver, log))
  for (const event of log) {
    t.ok(receiver.attemptsOf(event.id) >= 3, `${event.type} ${event.phoneNumber}: ${receiver.attemptsOf(event.id)} attempts`)
  }
  const numberLog = (await readLog(s, app, { phoneNumber: number })).map((event) => event.id)
  t.ok(numberLog.length >= 6, 'several changes of one number')
  const numberDelivered = receiver.delivered.filter((id) => numberLog.includes(id))
  t.strictSame(numberDelivered, numberLog, 'first successful deliveries of the number come in the log\'s order')
  t.ok(receiver.requests.filter((request) => request.status === 503).every((request) => request.attempt <= 2), 'only the first two attempts were refused')
})

t.test('a throwing onEvent: requests answer, the log fills, the handler is called again', async (t) => {
  const s = await setUpDatabase(t)
  const calls = new Map<string, number[]>()
  const app = await startApp(t, s.db, {
    eventDelivery: FAST,
    onEvent: (event, { attempt }) => {
      calls.set(event.id, [...(calls.get(event.id) ?? []), attempt])
      throw new Error('handler broke')
    }
  })
  const { userId } = s.fixture
  t.equal(await send(s, app, 'POST', '', { targetUserId: userId, provider: 'twilio', phoneNumber: '+14165550501' }), 200)
  t.equal(await send(s, app, 'POST', '', { targetUserId: userId, provider: 'sinch', phoneNumber: '+14165550502', isDefault: false }), 200)
  const log = await readLog(s, app)
  t.equal(log.length, 2, 'both events are in the log')
  await waitFor('each event handled three times', () => log.every((event) => (calls.get(event.id)?.length ?? 0) >= 3))
  for (const event of log) {
    const attempts = calls.get(event.id) ?? []
    t.strictSame(attempts.slice(0, 3), [1, 2, 3], 'the attempt counter grows by one per call')
  }
  t.equal(await send(s, app, 'POST', '', { targetUserId: userId, provider: 'textgrid', phoneNumber: '+14165550503', isDefault: false }), 200, 'still answering while the handler fails')
  const pending = await s.db.collection<DeliveryRecord>(DELIVERIES).find({}).toArray()
  t.ok(pending.some((delivery) => delivery.lastError === 'handler broke'), 'the error is kept on the delivery')
})

t.test('an onEvent that never answers: requests answer, the attempt is abandoned and retried', async (t) => {
  const s = await setUpDatabase(t)
  const calls: Array<{ id: string, attempt: number, signal: AbortSignal }> = []
  const app = await startApp(t, s.db, {
    // The handler's wait ends at half the lease: keep it short so retries (and close) come soon.
    eventDelivery: { ...FAST, leaseMs: 400 },
    onEvent: async (event, { attempt, signal }) => {
      calls.push({ id: event.id, attempt, signal })
      await new Promise<never>(() => {})
    }
  })
  const { userId, otherUserId } = s.fixture
  t.equal(await send(s, app, 'POST', '', { targetUserId: userId, provider: 'twilio', phoneNumber: '+14165550601' }), 200)
  await waitFor('the handler to be called', () => calls.length > 0)
  t.equal(await send(s, app, 'POST', '', { targetUserId: otherUserId, provider: 'sinch', phoneNumber: '+14165550602' }), 200, 'a request while the handler hangs')
  t.equal(await send(s, app, 'POST', '', { targetUserId: userId, provider: 'twilio', phoneNumber: '+14165550601', label: 'x' }), 200, 'a change of the hanging number')
  const log = await readLog(s, app)
  t.equal(log.length, 3, 'every event is in the log')
  const first = log[0]!.id
  await waitFor('a second attempt of the first event', () => calls.some((call) => call.id === first && call.attempt >= 2))
  t.equal(calls.find((call) => call.id === first && call.attempt === 1)?.signal.aborted, true, 'the abandoned attempt\'s signal was aborted')
  t.notOk(calls.some((call) => call.id === log[2]!.id), 'the number\'s next event waits behind the hanging one')
  // With a long lease, closing is what ends the hanging attempt: its signal says why, and the event stays pending for the next start.
  const stuck = await setUpDatabase(t)
  const hanging: AbortSignal[] = []
  const slow = await startApp(t, stuck.db, {
    eventDelivery: { ...FAST, leaseMs: 600_000 },
    onEvent: async (_event, { signal }) => {
      hanging.push(signal)
      await new Promise<never>(() => {})
    }
  })
  t.equal(await send(stuck, slow, 'POST', '', { targetUserId: stuck.fixture.userId, provider: 'twilio', phoneNumber: '+14165550603' }), 200)
  await waitFor('the handler to be called', () => hanging.length > 0)
  await app.close()
  await slow.close()
  t.equal(hanging[0]?.aborted, true, 'closing aborts the attempt in flight')
  t.match(String((hanging[0]?.reason as Error | undefined)?.message), /shutting down/)
  const left = await stuck.db.collection<DeliveryRecord>(DELIVERIES).find({}).toArray()
  t.equal(left.length, 1)
  t.match(left[0], { pending: true, leaseToken: null, lastError: 'the server is shutting down' }, 'released for the next start, still pending')
})

t.test('survives a restart: events recorded while the receiver was down are delivered by a new app', async (t) => {
  const s = await setUpDatabase(t)
  const { userId, otherUserId } = s.fixture
  const downUrl = `http://127.0.0.1:${await closedPort()}/hooks/phone-numbers`
  const first = await startApp(t, s.db, { instanceId: 'before-restart', onEvent: webhook(downUrl), eventDelivery: { retryBaseMs: 50, pollIntervalMs: 50 } })
  t.equal(await send(s, first, 'POST', '', { targetUserId: userId, provider: 'twilio', phoneNumber: '+14165550701' }), 200)
  t.equal(await send(s, first, 'POST', '', { targetUserId: otherUserId, provider: 'sinch', phoneNumber: '+14165550702' }), 200)
  t.equal(await send(s, first, 'POST', '', { targetUserId: userId, provider: 'twilio', phoneNumber: '+14165550701', label: 'Desk' }), 200)
  const log = await readLog(s, first)
  t.equal(log.length, 3)
  const deliveries = s.db.collection<DeliveryRecord>(DELIVERIES)
  await waitFor('a failed attempt against the closed port', async () => await deliveries.countDocuments({ attempts: { $gte: 1 }, lastError: { $exists: true } }) > 0)
  await first.close()

  const stored = await deliveries.find({}).toArray()
  t.strictSame(stored.map((delivery) => delivery._id).sort(), log.map((event) => event.id).sort(), 'the deliveries collection holds every event')
  t.ok(stored.every((delivery) => delivery.pending === true && delivery.deliveredAt === undefined && delivery.failedAt === undefined && delivery.leaseToken == null), 'all pending: none delivered, given up or left leased')

  // The new process: its own connection to the same database, and a receiver that is up.
  const { db } = await createTestDatabase(t, s.dbName)
  const receiver = await startReceiver(t)
  const second = await startApp(t, db, { instanceId: 'after-restart', onEvent: webhook(receiver), eventDelivery: FAST })
  await waitFor('the events from before the restart', allDelivered(receiver, log))
  for (const request of receiver.requests) t.strictSame(JSON.parse(request.body), log.find((event) => event.id === request.id), 'the body is the logged event')
  await waitFor('no pending delivery', async () => await deliveries.countDocuments({ pending: true }) === 0)
  t.equal(await deliveries.countDocuments({ deliveredAt: { $exists: true } }), log.length, 'every event marked delivered')
  await second.close()
})

t.test('two apps on one database: every event delivered, never twice at once', {
  skip: TEST_BACKEND === 'ferretdb'
    ? 'FerretDB 1.24 applies a compare-and-swap non-atomically across connections, so several processes on one FerretDB are unsupported'
    : false
}, async (t) => {
  const s = await setUpDatabase(t)
  const { db } = await createTestDatabase(t, s.dbName)
  const receiver = await startReceiver(t, { holdMs: 30 })
  const options = { onEvent: webhook(receiver), eventDelivery: { ...FAST, concurrency: 4 } }
  const a = await startApp(t, s.db, { ...options, instanceId: 'instance-a' })
  const b = await startApp(t, db, { ...options, instanceId: 'instance-b' })
  const { userId, otherUserId } = s.fixture

  // Each app changes its own numbers (a number another process touched stays its claim for a while).
  const changes = async (app: App, targetUserId: string, base: number): Promise<number[]> => {
    const statuses: number[] = []
    for (let i = 0; i < 6; i++) {
      const phoneNumber = `+1416555${String(base + i).padStart(4, '0')}`
      statuses.push(await send(s, app, 'POST', '', { targetUserId, provider: 'sinch', phoneNumber, isDefault: false }))
      if (i % 2 === 0) statuses.push(await send(s, app, 'POST', '', { targetUserId, provider: 'sinch', phoneNumber, isDefault: false, label: 'relabelled' }))
    }
    return statuses
  }
  const statuses = (await Promise.all([changes(a, userId, 800), changes(b, otherUserId, 900)])).flat()
  t.ok(statuses.every((status) => status === 200), 'every change answered 200')

  const log = await readLog(s, a)
  t.equal(log.length, 18)
  await waitFor('every event delivered', allDelivered(receiver, log))
  t.strictSame(receiver.overlaps, [], 'no event id was ever in flight twice at the same moment')
  t.ok(receiver.requests.every((request) => log.some((event) => event.id === request.id)), 'only logged events arrive')
  t.comment(`requests: ${receiver.requests.length} for ${log.length} events, at most ${receiver.maxInFlight} in flight at once`)
})

t.test('maxAttempts: a receiver that always fails gets exactly maxAttempts tries, then the delivery is marked failed', async (t) => {
  const s = await setUpDatabase(t)
  const receiver = await startReceiver(t, { answer: () => 500 })
  const app = await startApp(t, s.db, { onEvent: webhook(receiver), eventDelivery: { ...FAST, maxAttempts: 2 } })
  t.equal(await send(s, app, 'POST', '', { targetUserId: s.fixture.userId, provider: 'twilio', phoneNumber: '+14165550901' }), 200)
  const [event] = await readLog(s, app)
  t.ok(event !== undefined, 'the event is logged')
  const deliveries = s.db.collection<DeliveryRecord>(DELIVERIES)
  await waitFor('the delivery to be marked failed', async () => (await deliveries.findOne({ _id: event!.id }))?.failedAt instanceof Date)
  // A few more polls: a given-up delivery must not be tried again.
  await sleep(FAST.pollIntervalMs * 6)
  const delivery = await deliveries.findOne({ _id: event!.id })
  t.match(delivery?.lastError, /500/, 'lastError names the answer')
  t.equal(delivery?.attempts, 2)
  t.equal(delivery?.pending, undefined, 'no longer pending')
  t.equal(delivery?.deliveredAt, undefined, 'not delivered')
  t.equal(receiver.attemptsOf(event!.id), 2, 'the receiver got exactly 2 attempts')
  t.equal(receiver.requests.length, 2)
})
