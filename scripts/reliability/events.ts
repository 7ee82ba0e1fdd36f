/**
 * Webhook delivery under faults: TWO standalone servers on one
 * mongo-java-server database, with WEBHOOK_URL/WEBHOOK_SECRET pointing at a
 * real node:http receiver on 127.0.0.1 that checks every request's signature
 * (its own HMAC-SHA256 and timing-safe comparison, not the plugin's) and
 * answers 200. Short retry settings (EVENTS_RETRY_BASE_MS, default 200;
 * retry max 2000 ms, lease 4000 ms, sweep 1000 ms).
 *
 * Load: EVENTS_CONNECTIONS (default 8) keep-alive workers send, for
 * EVENTS_SECONDS (default 20), assigns that always change something (a fresh
 * label each time, a random user of one organization of EVENTS_USERS, a
 * random number of a pool of EVENTS_NUMBERS, isDefault and isInboundEnabled
 * false, so no other entry changes and the ownership rules refuse nothing)
 * and removes (mostly of entries believed held), alternating over the live
 * servers. Every request carries its own x-request-id, which the server
 * records as the events' requestId.
 * Faults during the load: the receiver is closed (connection refused) for
 * EVENTS_OUTAGE_S (default 5) seconds from 20 % of the run, then listens again
 * on the same port; at 55 % one server is SIGKILLed, and restarted with the
 * same environment (on a new port) 2 s later.
 * Afterwards the script waits (at most EVENTS_DRAIN_S, default 60) until no
 * delivery and no user outbox is pending and the receiver has seen every
 * event of the log.
 *
 * Checks: every request answered 200 has exactly one event of its own
 * (user, provider, number) with its requestId, the right type and (assigns)
 * its label; an event of any other request belongs to one without an answer
 * (in flight at the SIGKILL: ambiguous, counted apart); no event id twice in
 * the log; every event received at least once, none received that the log
 * lacks; 0 invalid signatures; 0 deliveries and outbox events left; 0 5xx;
 * the outage made attempts fail (else the run proves little). Deliveries
 * received more than once, and per number first receipts out of the log's
 * order, are reported as figures (delivery is at least once).
 * Records: .cache/reliability/events/{requests,received}.ndjson.
 *
 * mongo-java-server only, like ownership.ts: several server processes on one
 * FerretDB 1.24 are unsupported.
 *
 * The receiver is in events-receiver.ts, the request record and the checks in events-checks.ts.
 *
 *   npx tsx scripts/reliability/events.ts
 */
import { mkdir, writeFile } from 'node:fs/promises'
import type http from 'node:http'
import { dirname, join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { PROVIDERS, type Provider } from '../../src/domain/assignments.js'
import { startMongo } from '../../dev-database/index.js'
import { uriForDatabase } from '../../test/helper-database.js'
import { exited } from './children.js'
import { seed, withDb } from './consistency.js'
import { checkEvents, keyOf, type LoggedEvent, type Sample } from './events-checks.js'
import { createReceiver } from './events-receiver.js'
import { RequestFailure, call, newAgent } from './http-client.js'
import { envNumber, finish, log, percentile } from './report.js'
import { JWT_SECRET, startServer, type ServerProcess } from './server-process.js'

const seconds = envNumber('EVENTS_SECONDS', 20)
const connections = envNumber('EVENTS_CONNECTIONS', 8)
const userCount = envNumber('EVENTS_USERS', 20)
const numberCount = envNumber('EVENTS_NUMBERS', 40)
const outageS = envNumber('EVENTS_OUTAGE_S', 5)
const drainS = envNumber('EVENTS_DRAIN_S', 60)
const timeoutS = envNumber('EVENTS_TIMEOUT_S', seconds + drainS + 80)
setTimeout(() => {
  log(`FAIL events: still running after ${timeoutS} s (EVENTS_TIMEOUT_S)`)
  process.exit(1)
}, timeoutS * 1000).unref()

const WEBHOOK_SECRET = 'reliability-webhook-secret-at-least-32-characters'
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const RECORDS = join(ROOT, '.cache', 'reliability', 'events')
const EVENTS = 'phoneNumberEvents'
const DELIVERIES = 'phoneNumberEventDeliveries'
const OUTBOX = 'phoneNumbersOutbox'

const rand = (n: number): number => Math.floor(Math.random() * n)
const pickOne = <T>(list: readonly T[]): T => list[rand(list.length)]!

// --- the database, the receiver and the servers ------------------------------------------
const mongo = await startMongo({ backend: 'java', log: (line) => log(`[java] ${line}`) })
const uri = uriForDatabase('events', mongo.uri)
const seeded = await seed(uri, userCount)
const authorization = `Bearer ${seeded.token}`
const numbers = Array.from({ length: numberCount }, (_, i) => `+1416558${String(i).padStart(4, '0')}`)
const receiver = await createReceiver(WEBHOOK_SECRET)
await receiver.start()

const serverEnv = {
  MONGODB_URI: uri,
  JWT_SECRET,
  LOG_LEVEL: 'warn',
  WEBHOOK_URL: `http://127.0.0.1:${receiver.port}/hook`,
  WEBHOOK_SECRET,
  WEBHOOK_RETRY_BASE_MS: String(envNumber('EVENTS_RETRY_BASE_MS', 200)),
  WEBHOOK_RETRY_MAX_MS: '2000',
  WEBHOOK_LEASE_MS: '4000',
  EVENT_SWEEP_INTERVAL_MS: '1000'
}
interface Slot { server: ServerProcess, up: boolean }
const slots: Slot[] = (await Promise.all([0, 1].map(async () => await startServer(serverEnv)))).map((server) => ({ server, up: true }))
/** Every process that ran, for its logs (failed delivery attempts) and exit codes. */
const processes: ServerProcess[] = slots.map((slot) => slot.server)
log(`events: 2 servers (pids ${processes.map((s) => s.pid).join(', ')}) on mongo-java-server at ${mongo.uri}, receiver on 127.0.0.1:${receiver.port}, ` +
  `${userCount} users, ${numberCount} numbers, ${connections} connections, ${seconds} s`)

// --- the load ----------------------------------------------------------------------------
const samples: Sample[] = []
const believed = new Map<string, { userId: string, provider: Provider, phoneNumber: string }>()
const started = performance.now()
let counter = 0

/** A live server, alternating per request; undefined while none is up. */
function pickSlot (turn: number): number | undefined {
  const live = slots.flatMap((slot, i) => (slot.up ? [i] : []))
  return live.length === 0 ? undefined : live[turn % live.length]
}

function nextSample (index: number, server: number): Sample {
  const held = [...believed.values()]
  const id = `ev-${index}-${counter++}`
  if (Math.random() < 0.4) {
    // Removes mostly aim at an entry believed held, else at a random one (mostly a 404).
    const target = held.length > 0 && Math.random() < 0.85 ? pickOne(held) : { userId: pickOne(seeded.userIds), provider: pickOne(PROVIDERS), phoneNumber: pickOne(numbers) }
    return { id, op: 'remove', server, start: 0, end: 0, status: 0, ...target }
  }
  return { id, op: 'assign', server, start: 0, end: 0, status: 0, userId: pickOne(seeded.userIds), provider: pickOne(PROVIDERS), phoneNumber: pickOne(numbers), label: `l${counter}` }
}

async function send (agent: http.Agent, sample: Sample): Promise<void> {
  const body = sample.op === 'assign'
    ? { targetUserId: sample.userId, provider: sample.provider, phoneNumber: sample.phoneNumber, isDefault: false, isInboundEnabled: false, label: sample.label }
    : { targetUserId: sample.userId, provider: sample.provider, phoneNumber: sample.phoneNumber }
  sample.start = performance.now()
  try {
    const answer = await call(slots[sample.server]!.server.base, sample.op === 'assign' ? 'POST' : 'DELETE', `/api/organizations/${seeded.organizationId}/phone-numbers`, {
      agent, headers: { authorization, 'x-request-id': sample.id }, body, timeoutMs: 15_000
    })
    sample.status = answer.status
    const error = (answer.body as { error?: unknown } | null)?.error
    if (typeof error === 'string') sample.error = error
  } catch (error) {
    sample.failure = error instanceof RequestFailure ? error.code : String(error)
  }
  sample.end = performance.now()
}

async function worker (index: number): Promise<void> {
  // One keep-alive socket per server, used back to back.
  const agents = slots.map(() => newAgent())
  let turn = index
  while (performance.now() - started < seconds * 1000) {
    const server = pickSlot(turn++)
    if (server === undefined) {
      await sleep(50)
      continue
    }
    const sample = nextSample(index, server)
    await send(agents[server]!, sample)
    const key = keyOf(sample.userId, sample.provider, sample.phoneNumber)
    if (sample.op === 'assign' && sample.status === 200) believed.set(key, { userId: sample.userId, provider: sample.provider, phoneNumber: sample.phoneNumber })
    if (sample.op === 'remove' && (sample.status === 200 || sample.status === 404)) believed.delete(key)
    samples.push(sample)
  }
  for (const agent of agents) agent.destroy()
}

const at = (fraction: number): number => started + fraction * seconds * 1000
const sleepUntil = async (time: number): Promise<void> => { await sleep(Math.max(0, time - performance.now())) }
const faultTimes = { receiverDown: 0, receiverUp: 0, killed: 0, restarted: 0 }

async function receiverOutage (): Promise<void> {
  await sleepUntil(at(0.2))
  await receiver.stop()
  faultTimes.receiverDown = performance.now()
  log(`receiver closed at ${((faultTimes.receiverDown - started) / 1000).toFixed(1)} s (connections refused)`)
  await sleep(outageS * 1000)
  await receiver.start()
  faultTimes.receiverUp = performance.now()
  log(`receiver listening again on port ${receiver.port} at ${((faultTimes.receiverUp - started) / 1000).toFixed(1)} s`)
}

async function killAndRestart (): Promise<void> {
  await sleepUntil(at(0.55))
  const slot = slots[1]!
  slot.up = false
  const done = exited(slot.server.child)
  slot.server.child.kill('SIGKILL')
  await done
  faultTimes.killed = performance.now()
  log(`server 1 (pid ${slot.server.pid}) SIGKILLed at ${((faultTimes.killed - started) / 1000).toFixed(1)} s`)
  await sleep(2000)
  slot.server = await startServer(serverEnv)
  processes.push(slot.server)
  slot.up = true
  faultTimes.restarted = performance.now()
  log(`server 1 restarted (pid ${slot.server.pid}, port ${slot.server.port}, same environment) at ${((faultTimes.restarted - started) / 1000).toFixed(1)} s`)
}

await Promise.all([...Array.from({ length: connections }, async (_, index) => { await worker(index) }), receiverOutage(), killAndRestart()])
const loadSeconds = (performance.now() - started) / 1000
log(`load done: ${samples.length} requests in ${loadSeconds.toFixed(1)} s`)

// --- drain: no delivery, no outbox event pending, every logged event received ------------
interface Pending { events: number, deliveries: number, outboxUsers: number, unreceived: number }

async function pendingNow (): Promise<Pending> {
  return await withDb(uri, async (db) => {
    const ids = await db.collection<{ _id: string }>(EVENTS).find({}, { projection: { _id: 1 } }).toArray()
    const received = new Set(receiver.receipts.map((r) => r.eventId))
    return {
      events: ids.length,
      deliveries: await db.collection(DELIVERIES).countDocuments({ pending: true }),
      outboxUsers: await db.collection('users').countDocuments({ [`${OUTBOX}.0`]: { $exists: true } }),
      unreceived: ids.filter((e) => !received.has(e._id)).length
    }
  })
}

const drainStarted = performance.now()
let pending = await pendingNow()
while ((pending.deliveries > 0 || pending.outboxUsers > 0 || pending.unreceived > 0) && performance.now() - drainStarted < drainS * 1000) {
  await sleep(500)
  pending = await pendingNow()
}
const drainSeconds = (performance.now() - drainStarted) / 1000
log(`drain: ${drainSeconds.toFixed(1)} s, ${JSON.stringify(pending)}`)

// --- the log, read directly --------------------------------------------------------------
const logged = await withDb(uri, async (db) => await db.collection<LoggedEvent>(EVENTS).find({}, { sort: { position: 1, _id: 1 } }).toArray())
const failedDeliveries = await withDb(uri, async (db) => await db.collection(DELIVERIES).countDocuments({ failedAt: { $exists: true } }))

await mkdir(RECORDS, { recursive: true })
await writeFile(join(RECORDS, 'requests.ndjson'), samples.map((s) => JSON.stringify(s)).join('\n') + '\n')
await writeFile(join(RECORDS, 'received.ndjson'), receiver.receipts.map((r) => JSON.stringify({ eventId: r.eventId, valid: r.valid ? 'yes' : 'no', at: Math.round(r.at - started), bodyIdMatches: r.bodyIdMatches })).join('\n') + '\n')

for (const slot of slots) slot.server.child.kill('SIGTERM')
const exits = await Promise.all(slots.map(async (slot) => await exited(slot.server.child)))
await receiver.stop()
await mongo.stop()

// --- checks --------------------------------------------------------------------------------
const problems: string[] = []
const {
  answered200, ambiguous, refused, okRequests, missingOrWrong, extraEvents, ambiguousWithEvent, eventsOfOtherRequests, duplicateIdsInLog,
  receiptsById, neverReceived, receivedNotLogged, invalidSignatures, bodyIdMismatches, duplicateDeliveries, outOfOrder, failedAttempts, fiveXx, byStatus
} = checkEvents(samples, logged, receiver.receipts, processes, problems)
if (pending.deliveries > 0) problems.push(`${pending.deliveries} deliveries left after ${drainS} s (${failedDeliveries} given up)`)
if (pending.outboxUsers > 0) problems.push(`${pending.outboxUsers} users still hold events in their outbox`)
if (fiveXx > 0) problems.push(`${fiveXx} answers with 5xx`)
if (failedAttempts === 0) problems.push('no delivery attempt failed: the receiver outage proves nothing')
for (const op of ['assign', 'remove'] as const) if (!answered200.some((s) => s.op === op)) problems.push(`no ${op} answered 200`)
for (const [i, { code }] of exits.entries()) if (code !== 0) problems.push(`server ${i} exited with ${String(code)} on SIGTERM`)
const latencies = samples.map((s) => s.end - s.start)
const secondsOf = (t: number): number => +((t - started) / 1000).toFixed(1)

finish('events', {
  backend: 'java',
  servers: 2,
  seconds: +loadSeconds.toFixed(1),
  connections,
  users: userCount,
  numbers: numberCount,
  faults: { receiverClosedS: [secondsOf(faultTimes.receiverDown), secondsOf(faultTimes.receiverUp)], serverKilledAtS: secondsOf(faultTimes.killed), restartedAtS: secondsOf(faultTimes.restarted) },
  requests: samples.length,
  byStatus,
  latencyMs: { p50: Math.round(percentile(latencies, 50)), p99: Math.round(percentile(latencies, 99)), max: Math.round(Math.max(0, ...latencies)) },
  changes200: { assigns: answered200.filter((s) => s.op === 'assign').length, removes: answered200.filter((s) => s.op === 'remove').length, withExactlyOneOwnEvent: okRequests, missingOrWrong },
  ambiguous: { requests: ambiguous.length, withEvent: ambiguousWithEvent, refused: refused.length },
  eventsInLog: logged.length,
  extraEvents,
  eventsOfOtherRequests,
  duplicateIdsInLog,
  received: { requests: receiver.receipts.length, distinctIds: receiptsById.size, neverReceived, receivedNotLogged, invalidSignatures, bodyIdMismatches },
  duplicatesDelivered: { events: duplicateDeliveries.length, extraReceipts: duplicateDeliveries.reduce((n, c) => n + c - 1, 0) },
  firstReceiptsOutOfLogOrderPerNumber: outOfOrder,
  failedAttemptsLogged: failedAttempts,
  drainSeconds: +drainSeconds.toFixed(1),
  deliveriesLeft: pending.deliveries,
  deliveriesGivenUp: failedDeliveries,
  outboxUsersLeft: pending.outboxUsers,
  fiveXx
}, problems)
