/**
 * Load and soak: SOAK_SECONDS (default 60) of mixed assign/remove/list from
 * SOAK_CONNECTIONS (default 100) keep-alive connections over SOAK_USERS
 * (default 200) users, against the standalone server on mongo-java-server
 * (SOAK_BACKEND=ferretdb for FerretDB).
 * RSS is sampled every 0.5 s after a SOAK_WARMUP_SECONDS (default 15) warm-up
 * under the same load (JIT, heap sizing, the data set filling up).
 * Pass: zero 5xx, zero transport failures, zero lost updates (final state ==
 * model of the successful requests, and every read of a worker's own user
 * matched its model), RSS growth < 10 % between the first and last 10 s.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { exited } from './children.js'
import { consistencyCheck, seed } from './consistency.js'
import { createFerret } from './database-process.js'
import { compareWithModels, runLoad } from './load.js'
import { envNumber, finish, log, percentile, rssOf } from './report.js'
import { JWT_SECRET, startServer } from './server-process.js'
import { startMongo } from '../../dev-database/index.js'
import { uriForDatabase } from '../../test/helper-database.js'

const seconds = envNumber('SOAK_SECONDS', 60)
const connections = envNumber('SOAK_CONNECTIONS', 100)
const userCount = envNumber('SOAK_USERS', 200)
const warmupS = envNumber('SOAK_WARMUP_SECONDS', 15)
const windowS = Math.min(10, Math.max(1, Math.floor(seconds / 4)))

// mongo-java-server by default: FerretDB 1.24's SQLite handler serialises writes
// (~25 requests/s at 100 connections here), which measures FerretDB, not the server.
const backend = process.env['SOAK_BACKEND'] ?? 'java'
let uri: string
let stopDatabase: () => Promise<void>
let databasePort: string
if (backend === 'ferretdb') {
  const ferret = await createFerret()
  uri = ferret.uri('soak')
  stopDatabase = ferret.destroy
  databasePort = String(ferret.port)
} else if (backend === 'java') {
  const mongo = await startMongo({ backend: 'java', log: (line) => log(`[java] ${line}`) })
  uri = uriForDatabase('soak', mongo.uri)
  stopDatabase = mongo.stop
  databasePort = mongo.uri
} else {
  throw new Error(`SOAK_BACKEND=${backend}: expected java or ferretdb`)
}
const seeded = await seed(uri, userCount)
const server = await startServer({ MONGODB_URI: uri, JWT_SECRET })
log(`soak: ${warmupS} s warm-up (not measured) + ${seconds} s, ${connections} connections, ${userCount} users, ${backend} at ${databasePort}, server pid ${server.pid}`)

const rss: Array<{ t: number, bytes: number }> = []
const t0 = performance.now()
const state = { sampling: true }
const sampler = (async () => {
  while (state.sampling) {
    const bytes = rssOf(server.pid)
    const t = (performance.now() - t0) / 1000 - warmupS
    if (bytes !== undefined && t >= 0) rss.push({ t, bytes })
    await sleep(500)
  }
})()
const result = await runLoad({ base: server.base, token: seeded.token, organizationId: seeded.organizationId, userIds: seeded.userIds, connections, durationMs: (warmupS + seconds) * 1000 })
state.sampling = false
await sampler

const byStatus: Record<string, number> = {}
const conflicts: Record<string, number> = {}
for (const sample of result.samples) {
  const key = sample.failure ?? String(sample.status)
  byStatus[key] = (byStatus[key] ?? 0) + 1
  // 409s by title: rule 2 refuses an inbound assign of a number the user already routes under another provider.
  if (sample.status === 409) conflicts[sample.error ?? '?'] = (conflicts[sample.error ?? '?'] ?? 0) + 1
}
const latencies = result.samples.map((sample) => sample.end - sample.start)
const mean = (values: number[]): number => values.reduce((a, b) => a + b, 0) / Math.max(1, values.length)
const firstWindow = mean(rss.filter((s) => s.t <= windowS).map((s) => s.bytes))
const lastWindow = mean(rss.filter((s) => s.t >= seconds - windowS).map((s) => s.bytes))
const growth = (lastWindow - firstWindow) / firstWindow
log(`RSS MiB every 5 s: ${rss.filter((_, i) => i % 10 === 0).map((s) => (s.bytes / 2 ** 20).toFixed(0)).join(' ')}`)
const differences = await compareWithModels(uri, result.models)
const consistency = await consistencyCheck(uri)
const writes = result.samples.filter((s) => s.op !== 'list' && s.status === 200).length

server.child.kill('SIGTERM')
await exited(server.child)
await stopDatabase()

const problems: string[] = []
const fiveXx = result.samples.filter((s) => s.status >= 500).length
const transport = result.samples.filter((s) => s.failure !== undefined).length
if (fiveXx > 0) problems.push(`${fiveXx} responses with 5xx`)
if (transport > 0) problems.push(`${transport} requests without an HTTP answer`)
problems.push(...result.anomalies.slice(0, 10), ...differences.slice(0, 10).map((d) => `lost update: ${d}`), ...consistency.problems.slice(0, 10))
if (growth >= 0.10) problems.push(`RSS grew ${(growth * 100).toFixed(1)} % between the first and last ${windowS} s`)
finish('soak', {
  backend,
  seconds,
  connections,
  users: userCount,
  requests: result.samples.length,
  warmupSeconds: warmupS,
  requestsPerSecond: Math.round(result.samples.length / (warmupS + seconds)),
  successfulWrites: writes,
  byStatus,
  conflicts409: conflicts,
  latencyMs: { p50: Math.round(percentile(latencies, 50)), p99: Math.round(percentile(latencies, 99)), max: Math.round(Math.max(...latencies)) },
  readYourWritesMismatches: result.anomalies.length,
  lostUpdates: differences.length,
  consistency: { users: consistency.users, assignments: consistency.assignments, numbersInTwoOrganizations: consistency.numbersInTwoOrganizations, numbersWithTwoInboundRoutes: consistency.numbersWithTwoInboundRoutes, problems: consistency.problems.length },
  rssMiB: { firstWindow: +(firstWindow / 2 ** 20).toFixed(1), lastWindow: +(lastWindow / 2 ** 20).toFixed(1), growthPercent: +(growth * 100).toFixed(2), windowSeconds: windowS }
}, problems)
