/**
 * Shared by the event-delivery-*.test.ts files: a real node:http receiver on
 * 127.0.0.1 that records every request and answers as told, a port nothing
 * listens on, a seeded database with a signed-in SUPERADMIN, the plugin with
 * `onEvent` on it, and the requests, log reads and waits the tests use.
 */
import type { Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import type { Db } from 'mongodb'
import { createHmac } from 'node:crypto'
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import orgPhoneNumbers, { createWebhookHandler, type EventHandler, type OrgPhoneNumbersOptions, type PhoneNumberEvent } from '../../plugins/phone-numbers/index.js'
import { createSigner, phoneNumbersUrl, seedFixture, TEST_SECRET, type Fixture } from '../helper.js'
import { createTestDatabase } from '../helper-database.js'

export const VISIBILITY_MS = 200
export const WEBHOOK_SECRET = 'webhook-secret-for-the-delivery-tests'
export const DELIVERIES = 'phoneNumberEventDeliveries'

/** A delivery as stored (the fields these tests read): pending until delivered or given up, then kept as a tombstone. */
export interface DeliveryRecord {
  _id: string
  pending?: true
  deliveredAt?: Date
  attempts?: number
  lastError?: string
  failedAt?: Date
  leaseToken?: string | null
}
/** Small pauses so retries come quickly; the defaults (1 s, 1 s) would only make the tests slow. */
export const FAST = { retryBaseMs: 20, pollIntervalMs: 50 } as const

// ---------------------------------------------------------------- receiver

export interface ReceivedRequest {
  id: string
  /** 1 for the first request carrying this event id. */
  attempt: number
  status: number
  headers: IncomingHttpHeaders
  body: string
}

export interface Receiver {
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

export interface ReceiverOptions {
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

export async function startReceiver (t: Test, options: ReceiverOptions = {}): Promise<Receiver> {
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
export async function closedPort (): Promise<number> {
  const server = createServer()
  const port = await listen(server)
  await closeServer(server)
  return port
}

// ---------------------------------------------------------------- apps

export interface Setup {
  db: Db
  uri: string
  dbName: string
  fixture: Fixture
  headers: Record<string, string>
}

export async function setUpDatabase (t: Test): Promise<Setup> {
  const { db, uri, dbName } = await createTestDatabase(t)
  const fixture = await seedFixture(db)
  const signer = await createSigner()
  t.teardown(() => signer.close())
  const authorization = `Bearer ${signer.sign({ sub: fixture.adminId, role: 'SUPERADMIN' })}`
  return { db, uri, dbName, fixture, headers: { authorization, 'content-type': 'application/json' } }
}

/** Closes once, whether the test closed it first or the teardown does. */
export interface App {
  fastify: FastifyInstance
  close: () => Promise<void>
}

export async function startApp (t: Test, db: Db, options: Partial<OrgPhoneNumbersOptions>): Promise<App> {
  const fastify = Fastify({ logger: false })
  await fastify.register(orgPhoneNumbers, { db, auth: { secret: TEST_SECRET }, eventVisibilityDelayMs: VISIBILITY_MS, ...options })
  await fastify.ready()
  let closing: Promise<void> | undefined
  const app: App = { fastify, close: async () => { closing ??= fastify.close(); await closing } }
  t.teardown(app.close)
  return app
}

export function webhook (receiver: Receiver | string): EventHandler {
  return createWebhookHandler({ url: typeof receiver === 'string' ? receiver : receiver.url, secret: WEBHOOK_SECRET })
}

export async function send (s: Setup, app: App, method: 'POST' | 'DELETE', path: string, body: Record<string, unknown>): Promise<number> {
  const response = await app.fastify.inject({ method, url: `${phoneNumbersUrl(s.fixture.organizationId)}${path}`, headers: s.headers, payload: body })
  return response.statusCode
}

/** Every event of the organization as the log API shows it, once flushed and visible. */
export async function readLog (s: Setup, app: App, query: Record<string, string> = {}): Promise<PhoneNumberEvent[]> {
  await app.fastify.orgPhoneNumbers.eventsFlushed()
  await sleep(VISIBILITY_MS + 50)
  const search = new URLSearchParams({ limit: '1000', ...query }).toString()
  const response = await app.fastify.inject({ method: 'GET', url: `${phoneNumbersUrl(s.fixture.organizationId)}/events?${search}`, headers: s.headers })
  if (response.statusCode !== 200) throw new Error(`events answered ${response.statusCode}: ${response.body}`)
  return response.json<{ events: PhoneNumberEvent[] }>().events
}

export async function waitFor (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`gave up after ${timeoutMs} ms waiting for ${what}`)
    await sleep(50)
  }
}

export function allDelivered (receiver: Receiver, events: readonly PhoneNumberEvent[]): () => boolean {
  return () => events.every((event) => receiver.delivered.includes(event.id))
}

export function expectedSignature (timestamp: string, body: string, secret: string = WEBHOOK_SECRET): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`
}

export function header (request: ReceivedRequest, name: string): string | undefined {
  const value = request.headers[name]
  return typeof value === 'string' ? value : undefined
}
