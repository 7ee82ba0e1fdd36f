/**
 * METRICS=true: the standalone app's /metrics, read over real HTTP and parsed
 * as Prometheus text. Requests appear by route pattern, method and status
 * (ids from the URL never become label values); the driver's commands, a
 * compare-and-swap retry, the outbox backlog, a failed webhook delivery (a
 * real receiver answering 500) and the process defaults are exported; with
 * METRICS_PORT the metrics leave the API port for an internal one.
 */
import Fastify, { type FastifyInstance } from 'fastify'
import { ObjectId, type Db } from 'mongodb'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import { startServer } from '../../bench/servers.js'
import { freePort } from '../../dev-database/index.js'
import app, { appOptions, serverOptions } from '../../server/app.js'
import { ConfigError, readConfig } from '../../server/config.js'
import { DEMO_ORGANIZATION_ID, DEMO_USER_ID, developmentSecret, superAdminToken } from '../../server/development.js'
import { UNMATCHED_ROUTE } from '../../server/metrics.js'
import type { StoreStep } from '../../src/domain/store.js'
import { createTestDatabase, uriForDatabase } from '../helper-database.js'

t.setTimeout(120_000)

interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

interface Exposition {
  types: Map<string, string>
  samples: Sample[]
}

const LABEL = /([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/gy

function unescapeLabel (value: string): string {
  return value.replace(/\\(.)/g, (_, character: string) => character === 'n' ? '\n' : character)
}

function parseLabels (text: string, line: string): Record<string, string> {
  const labels: Record<string, string> = {}
  let at = 0
  while (at < text.length) {
    LABEL.lastIndex = at
    const match = LABEL.exec(text)
    if (match === null) throw new Error(`bad labels in: ${line}`)
    labels[match[1]!] = unescapeLabel(match[2]!)
    at = LABEL.lastIndex
    if (text[at] === ',') at++
  }
  return labels
}

/** The Prometheus text format (0.0.4): `# TYPE` lines and samples; throws on any line it cannot read. */
function parseExposition (text: string): Exposition {
  const types = new Map<string, string>()
  const samples: Sample[] = []
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue
    const type = /^# TYPE (\S+) (counter|gauge|histogram|summary|untyped)$/.exec(line)
    if (type !== null) {
      types.set(type[1]!, type[2]!)
      continue
    }
    if (line.startsWith('# HELP ')) continue
    const sample = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)(?: \d+)?$/.exec(line)
    if (sample === null) throw new Error(`not a sample line: ${line}`)
    const value = sample[3] === '+Inf' ? Number.POSITIVE_INFINITY : sample[3] === '-Inf' ? Number.NEGATIVE_INFINITY : Number(sample[3])
    if (Number.isNaN(value) && sample[3] !== 'NaN') throw new Error(`bad value in: ${line}`)
    samples.push({ name: sample[1]!, labels: parseLabels(sample[2] ?? '', line), value })
  }
  return { types, samples }
}

function find (exposition: Exposition, name: string, labels: Record<string, string> = {}): Sample[] {
  return exposition.samples.filter((sample) => sample.name === name && Object.entries(labels).every(([key, value]) => sample.labels[key] === value))
}

function valueOf (exposition: Exposition, name: string, labels: Record<string, string> = {}): number | undefined {
  const found = find(exposition, name, labels)
  return found.length === 1 ? found[0]!.value : undefined
}

async function scrape (url: string): Promise<Exposition> {
  const response = await fetch(url)
  if (response.status !== 200) throw new Error(`${url} answered ${response.status}`)
  if (!(response.headers.get('content-type') ?? '').startsWith('text/plain; version=0.0.4')) throw new Error(`${url}: content-type ${response.headers.get('content-type')}`)
  return parseExposition(await response.text())
}

/** A webhook receiver on 127.0.0.1 that refuses every delivery with 500. */
async function refusingReceiver (t: Test): Promise<{ url: string, received: () => number }> {
  let received = 0
  const server: Server = createServer((request, response) => {
    request.resume()
    request.on('end', () => {
      received++
      response.writeHead(500).end('no')
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => {
    server.closeAllConnections()
    server.close(() => resolve())
  }))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, received: () => received }
}

interface Started {
  server: FastifyInstance
  base: string
  token: string
}

/** The app as server.ts builds it, from these variables, listening on a free 127.0.0.1 port. */
async function startApp (t: Test, db: Db, dbName: string, env: Record<string, string>, onStep?: (step: StoreStep) => Promise<void>): Promise<Started> {
  const secret = await developmentSecret()
  const mongodbUri = uriForDatabase(dbName)
  const config = readConfig({ MONGODB_URI: mongodbUri, JWT_SECRET: secret, LOG_LEVEL: 'silent', ...env })
  const options = appOptions(config, { mongodbUri, jwtSecret: secret, seedDemoData: true })
  // The plugin hands its options to the store, onStep (the store's crash-test hook) included.
  const phoneNumbers = onStep === undefined ? options.phoneNumbers : { ...options.phoneNumbers, onStep }
  const server = Fastify(serverOptions(config))
  await server.register(app, { ...options, phoneNumbers })
  t.teardown(() => server.close())
  await server.listen({ port: 0, host: '127.0.0.1' })
  t.ok(await db.collection('users').findOne({ _id: new ObjectId(DEMO_USER_ID) }), 'demo data seeded')
  return { server, base: `http://127.0.0.1:${(server.server.address() as AddressInfo).port}`, token: await superAdminToken(secret) }
}

async function assign (started: Started, organizationId: string, userId: string, phoneNumber: string): Promise<number> {
  const response = await fetch(`${started.base}/api/organizations/${organizationId}/phone-numbers`, {
    method: 'POST',
    headers: { authorization: `Bearer ${started.token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ targetUserId: userId, provider: 'twilio', phoneNumber })
  })
  await response.arrayBuffer()
  return response.status
}

const ROUTE = '/api/organizations/:organizationId/phone-numbers'

t.test('METRICS=true: /metrics on the API port, without auth, parsed', async (t) => {
  const { db, dbName } = await createTestDatabase(t)
  const receiver = await refusingReceiver(t)
  let bumped = false
  // Between the user's read and its write, another writer moves the user's revision: the compare-and-swap misses once.
  const onStep = async (step: StoreStep): Promise<void> => {
    if (step !== 'assign:claimed' || bumped) return
    bumped = true
    await db.collection('users').updateOne({ _id: new ObjectId(DEMO_USER_ID) }, { $inc: { phoneNumbersRevision: 1 } })
  }
  const started = await startApp(t, db, dbName, {
    METRICS: 'true',
    MAX_NUMBERS_PER_USER: '1',
    WEBHOOK_URL: receiver.url,
    WEBHOOK_SECRET: 'w'.repeat(16) + 'e'.repeat(16),
    EVENT_VISIBILITY_DELAY_MS: '1',
    WEBHOOK_RETRY_BASE_MS: '10',
    WEBHOOK_RETRY_MAX_MS: '100'
  }, onStep)

  const missingOrganization = new ObjectId().toHexString()
  const unknownId = new ObjectId().toHexString()
  t.equal(await assign(started, DEMO_ORGANIZATION_ID, DEMO_USER_ID, '+14165550102'), 200, 'assigned (after one compare-and-swap retry)')
  t.ok(bumped, 'the competing write happened')
  t.equal(await assign(started, DEMO_ORGANIZATION_ID, DEMO_USER_ID, '+14165550199'), 409, 'a second number is over MAX_NUMBERS_PER_USER=1')
  t.equal(await assign(started, missingOrganization, DEMO_USER_ID, '+14165550188'), 404, 'no such organization')
  const lookup = await fetch(`${started.base}/api/phone-numbers/${encodeURIComponent('+14165550102')}/inbound-route`, { headers: { authorization: `Bearer ${started.token}` } })
  t.equal(lookup.status, 200)
  const unmatched = await fetch(`${started.base}/api/things/${unknownId}`)
  t.equal(unmatched.status, 404)

  // The refused delivery is retried in the background: wait for the first failure to be counted.
  let exposition = await scrape(`${started.base}/metrics`)
  for (let tries = 0; (valueOf(exposition, 'phone_numbers_webhook_delivery_failures_total') ?? 0) < 1 && tries < 600; tries++) {
    await sleep(50)
    exposition = await scrape(`${started.base}/metrics`)
  }
  t.ok(receiver.received() >= 1, 'the receiver was called')
  t.ok((valueOf(exposition, 'phone_numbers_webhook_delivery_failures_total') ?? 0) >= 1, 'the refused delivery is counted')

  t.equal(exposition.types.get('http_request_duration_seconds'), 'histogram')
  const count = (route: string, method: string, status: string): number | undefined =>
    valueOf(exposition, 'http_request_duration_seconds_count', { route, method, status_code: status })
  t.equal(count(ROUTE, 'POST', '200'), 1, 'the assign, by route pattern and status')
  t.equal(count(ROUTE, 'POST', '409'), 1, 'the 409')
  t.equal(count(ROUTE, 'POST', '404'), 1, 'the 404')
  t.equal(count('/api/phone-numbers/:phoneNumber/inbound-route', 'GET', '200'), 1, 'the lookup')
  t.equal(count(UNMATCHED_ROUTE, 'GET', '404'), 1, 'an unmatched URL has the fixed label')
  const inf = find(exposition, 'http_request_duration_seconds_bucket', { route: ROUTE, method: 'POST', status_code: '200', le: '+Inf' })
  t.equal(inf[0]?.value, 1, 'the +Inf bucket holds the request')

  const ids = [DEMO_ORGANIZATION_ID, DEMO_USER_ID, missingOrganization, unknownId, '+14165550102', '+14165550199']
  const leaked = exposition.samples.flatMap((sample) => Object.values(sample.labels)).filter((value) => ids.some((id) => value.includes(id)))
  t.same(leaked, [], 'no id or number from a URL or body is a label value')

  t.equal(valueOf(exposition, 'phone_numbers_write_retries_total'), 1, 'one compare-and-swap retry')
  t.equal(exposition.types.get('mongodb_command_duration_seconds'), 'histogram')
  t.ok((valueOf(exposition, 'mongodb_command_duration_seconds_count', { command: 'update' }) ?? 0) >= 2, 'the user writes (the missed one too)')
  t.ok((valueOf(exposition, 'mongodb_command_duration_seconds_count', { command: 'find' }) ?? 0) >= 1, 'the reads')
  t.equal(exposition.types.get('mongodb_command_failures_total'), 'counter')
  t.equal(exposition.types.get('phone_numbers_event_backlog'), 'gauge')
  t.ok(Number.isInteger(valueOf(exposition, 'phone_numbers_event_backlog')), 'the backlog has a value')
  t.equal(exposition.types.get('process_cpu_user_seconds_total'), 'counter', 'the process defaults')
  t.ok(find(exposition, 'nodejs_heap_size_used_bytes').length === 1)
})

t.test('METRICS_PORT: /metrics only on the internal port, closed with the app', async (t) => {
  const { db, dbName } = await createTestDatabase(t)
  const metricsPort = await freePort()
  const started = await startApp(t, db, dbName, { METRICS: 'true', METRICS_PORT: String(metricsPort) })
  const onApi = await fetch(`${started.base}/metrics`)
  t.equal(onApi.status, 404, 'the API port does not serve /metrics')
  const exposition = await scrape(`http://127.0.0.1:${metricsPort}/metrics`)
  t.equal(valueOf(exposition, 'http_request_duration_seconds_count', { route: UNMATCHED_ROUTE, method: 'GET', status_code: '404' }), 1, 'the API port counted its 404')
  t.equal(find(exposition, 'http_request_duration_seconds_count', { route: '/metrics' }).length, 0, 'no /metrics route on the API')
  const other = await fetch(`http://127.0.0.1:${metricsPort}/health`)
  t.equal(other.status, 404)
  t.same(Object.keys(await other.json() as object).sort(), ['details', 'error'])

  await started.server.close()
  await t.rejects(fetch(`http://127.0.0.1:${metricsPort}/metrics`), 'the metrics port closes with the app')
})

t.test('metrics are off by default', async (t) => {
  const { db, dbName } = await createTestDatabase(t)
  const started = await startApp(t, db, dbName, {})
  t.equal((await fetch(`${started.base}/metrics`)).status, 404)
})

t.test('the configuration checks the metrics variables', async (t) => {
  const base = { MONGODB_URI: 'mongodb://127.0.0.1:27017/x', JWT_SECRET: await developmentSecret() }
  t.same([readConfig({ ...base, METRICS: 'true' }).metrics, readConfig({ ...base, METRICS: 'true' }).metricsPort], [true, undefined])
  t.equal(readConfig({ ...base, METRICS: 'true', METRICS_PORT: '9464' }).metricsPort, 9464)
  t.throws(() => readConfig({ ...base, METRICS_PORT: '9464' }), ConfigError, 'a metrics port without METRICS=true')
  t.throws(() => readConfig({ ...base, METRICS: 'true', METRICS_PORT: '2212' }), /METRICS_PORT=2212 must differ from PORT/)
  t.throws(() => readConfig({ ...base, METRICS: 'yes' }), /METRICS=yes must be true or false/)
  t.throws(() => readConfig({ ...base, METRICS: 'true', METRICS_PORT: '70000' }), /METRICS_PORT=70000 must be an integer/)
})

t.test('the bench server ours-metrics serves /metrics, ours does not', async (t) => {
  const { dbName } = await createTestDatabase(t)
  for (const [kind, status] of [['ours-metrics', 200], ['ours', 404]] as const) {
    const running = await startServer({ kind, mongodbUri: uriForDatabase(dbName), jwtSecret: await developmentSecret() })
    t.teardown(() => running.close())
    t.equal((await fetch(`http://127.0.0.1:${running.port}/metrics`)).status, status, kind)
  }
})
