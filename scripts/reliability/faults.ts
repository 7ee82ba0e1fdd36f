/**
 * Fault injection on FerretDB (its data is on disk, so it can come back):
 * the standalone server under load (FAULTS_CONNECTIONS, default 20), the
 * database SIGKILLed mid-load, FAULTS_OUTAGE_S (default 6) seconds down, then
 * restarted on the same folder and port. Pass: during the outage every answer
 * is a 503/500 `{ error, details }` within the server selection timeout
 * plus 1.5 s, no connection is dropped, /health says 503 unavailable/down; after
 * the restart the same server process answers 200 again (time measured)
 * without being restarted; every user document is consistent afterwards.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { exited } from './children.js'
import { consistencyCheck, seed } from './consistency.js'
import { createFerret } from './database-process.js'
import { call } from './http-client.js'
import { envNumber, finish, log } from './report.js'
import { JWT_SECRET, startServer } from './server-process.js'
import { runLoad, type Sample } from './load.js'

const connections = envNumber('FAULTS_CONNECTIONS', 20)
const outageS = envNumber('FAULTS_OUTAGE_S', 6)
const selectionTimeoutMs = envNumber('MONGODB_SERVER_SELECTION_TIMEOUT_MS', 2000)
// One selection timeout: a request queued behind one already waiting on the dead
// database (per-key-queue.ts) answers 503 as soon as it is its turn, because the
// driver then knows no server is selectable (src/domain/database-availability.ts);
// before that, such a request waited a second full selection (CI: 4,003 ms once).
const boundMs = selectionTimeoutMs + 1500

const ferret = await createFerret()
const uri = ferret.uri('faults')
const seeded = await seed(uri, 100)
const server = await startServer({ MONGODB_URI: uri, JWT_SECRET, MONGODB_SERVER_SELECTION_TIMEOUT_MS: String(selectionTimeoutMs), LOG_LEVEL: 'fatal' })
log(`faults: ${connections} connections, outage ${outageS} s, serverSelectionTimeoutMS ${selectionTimeoutMs}, FerretDB pid ${ferret.pid()} on ${ferret.port}`)

let killedAt = Infinity
let restartedAt = Infinity
let firstApi200After: number | undefined
const state = { done: false }
const health: Array<{ t: number, status: number, body: unknown, ms: number }> = []
const onSample = (sample: Sample): void => {
  if (sample.start > restartedAt && sample.status === 200 && firstApi200After === undefined) firstApi200After = sample.end - restartedAt
}
const load = runLoad({ base: server.base, token: seeded.token, organizationId: seeded.organizationId, userIds: seeded.userIds, connections, durationMs: 120_000, shouldStop: () => state.done, onSample })
const healthPoller = (async () => {
  while (!state.done) {
    const t = performance.now()
    try {
      const answer = await call(server.base, 'GET', '/health', { timeoutMs: 10_000 })
      health.push({ t, status: answer.status, body: answer.body, ms: answer.ms })
    } catch (error) {
      health.push({ t, status: 0, body: String(error), ms: performance.now() - t })
    }
    await sleep(200)
  }
})()

await sleep(4000)
killedAt = performance.now()
await ferret.kill('SIGKILL')
log(`FerretDB killed (SIGKILL) at ${((killedAt) / 1000).toFixed(1)} s`)
await sleep(outageS * 1000)
// The outage ends when the restart begins: FerretDB may answer before start() sees its ping,
// so every later timing (first 200s) is measured from this moment.
restartedAt = performance.now()
await ferret.start()
const restartMs = performance.now() - restartedAt
log(`FerretDB restarted on the same data and port, answering a ping after ${Math.round(restartMs)} ms (pid ${ferret.pid()})`)
const recoveryDeadline = restartedAt + 30_000
const recovered = (): boolean => firstApi200After !== undefined && health.some((h) => h.t > restartedAt && h.status === 200)
while (!recovered() && performance.now() < recoveryDeadline) await sleep(100)
await sleep(3000)
state.done = true
const result = await load
await healthPoller
const serverStillSame = server.child.exitCode === null

const inOutage = result.samples.filter((s) => s.start >= killedAt && s.end <= restartedAt)
const inFlightAtKill = result.samples.filter((s) => s.start < killedAt && s.end > killedAt)
const before = result.samples.filter((s) => s.end < killedAt)
const afterRecovery = result.samples.filter((s) => firstApi200After !== undefined && s.start > restartedAt + firstApi200After)
const healthOutage = health.filter((h) => h.t >= killedAt + 100 && h.t + h.ms <= restartedAt)
const firstHealth200 = health.find((h) => h.t > restartedAt && h.status === 200)
const consistency = await consistencyCheck(uri)

server.child.kill('SIGTERM')
await exited(server.child)
await ferret.destroy()

const problems: string[] = []
const outageStatuses: Record<string, number> = {}
for (const s of [...inOutage, ...inFlightAtKill]) outageStatuses[s.failure ?? String(s.status)] = (outageStatuses[s.failure ?? String(s.status)] ?? 0) + 1
const maxOutageMs = Math.max(0, ...inOutage.map((s) => s.end - s.start))
const slowestInOutage = inOutage.reduce<Sample | undefined>((slowest, s) => slowest === undefined || s.end - s.start > slowest.end - slowest.start ? s : slowest, undefined)
const maxInFlightMs = Math.max(0, ...inFlightAtKill.map((s) => s.end - s.start))
for (const s of [...inOutage, ...inFlightAtKill]) {
  if (s.failure !== undefined) problems.push(`${s.op} during the outage: no HTTP answer (${s.failure})`)
  // A request already running at the kill may have finished its reads and writes first: any
  // contract answer (200, a remove's 404, a 409) is then right; later ones must be 5xx.
  else if (![500, 503].includes(s.status) && !(s.start < killedAt && [200, 404, 409].includes(s.status))) problems.push(`${s.op} during the outage answered ${s.status}`)
  else if (s.status !== 200 && !s.errorShape) problems.push(`${s.op} during the outage: body is not { error, details }`)
}
if (inOutage.length === 0) problems.push('no request ran during the outage')
if (maxOutageMs > boundMs) problems.push(`slowest answer during the outage took ${Math.round(maxOutageMs)} ms (bound ${boundMs} ms)`)
if (before.some((s) => s.status >= 500 || s.failure !== undefined)) problems.push('5xx or dropped requests before the fault')
const afterFailures = afterRecovery.filter((s) => s.status >= 500 || s.failure !== undefined).length
if (afterFailures > 0) problems.push(`${afterFailures} 5xx/dropped requests after recovery`)
if (healthOutage.length === 0) problems.push('no /health answer during the outage')
for (const h of healthOutage) {
  if (h.status !== 503 || JSON.stringify(h.body) !== JSON.stringify({ status: 'unavailable', database: 'down' })) problems.push(`/health during the outage: ${h.status} ${JSON.stringify(h.body)}`)
}
if (firstApi200After === undefined) problems.push('no API 200 within 30 s of the restart')
if (firstHealth200 === undefined) problems.push('no /health 200 within 30 s of the restart')
if (!serverStillSame) problems.push('the server process exited')
problems.push(...result.anomalies.map((a) => `read-your-writes: ${a}`), ...consistency.problems)

finish('faults', {
  backend: 'ferretdb (SIGKILL, restart on the same data folder and port)',
  connections,
  outageSeconds: outageS,
  serverSelectionTimeoutMs: selectionTimeoutMs,
  requests: result.samples.length,
  requestsDuringOutage: inOutage.length,
  inFlightAtKill: inFlightAtKill.length,
  outageStatuses,
  maxLatencyDuringOutageMs: Math.round(maxOutageMs),
  slowestDuringOutage: slowestInOutage === undefined ? null : { op: slowestInOutage.op, status: slowestInOutage.status, startedAfterKillMs: Math.round(slowestInOutage.start - killedAt) },
  latencyBoundMs: boundMs,
  maxLatencyInFlightAtKillMs: Math.round(maxInFlightMs),
  healthDuringOutage: `${healthOutage.filter((h) => h.status === 503).length}/${healthOutage.length} x 503 unavailable/down, max ${Math.round(Math.max(0, ...healthOutage.map((h) => h.ms)))} ms`,
  restartUntilPingMs: Math.round(restartMs),
  timeToFirstApi200AfterRestartMs: firstApi200After === undefined ? null : Math.round(firstApi200After),
  timeToFirstHealth200AfterRestartMs: firstHealth200 === undefined ? null : Math.round(firstHealth200.t + firstHealth200.ms - restartedAt),
  fiveXxAfterRecovery: afterFailures,
  serverRestarted: !serverStillSame,
  consistency: { users: consistency.users, assignments: consistency.assignments, numbersInTwoOrganizations: consistency.numbersInTwoOrganizations, numbersWithTwoInboundRoutes: consistency.numbersWithTwoInboundRoutes, problems: consistency.problems.length }
}, problems)
