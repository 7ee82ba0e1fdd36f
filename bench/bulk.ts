/**
 * The bulk comparison (`npm run bench -- --bulk`): the same 1,000 assigns
 * (the assign scenarios' bodies, workload.ts) sent as one
 * POST /phone-numbers/bulk, as 1,000 single requests one after the other on
 * one connection, and as 1,000 single requests over the bench's usual 50
 * connections (autocannon). One plugin server process (the standalone app,
 * as for `ours`); the users and claims go back to the seeded state before
 * every run, and the runs alternate (bulk, sequential, concurrent, bulk ...).
 * Each run must answer 200 for all 1,000 assigns, or the benchmark fails.
 * Besides the time, the server's longest event-loop turn during the run.
 */
import autocannon from 'autocannon'
import { randomBytes } from 'node:crypto'
import { cpus, totalmem } from 'node:os'
import { mkdir, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { MongoClient } from 'mongodb'
import { mintToken } from '../tools/tokens.js'
import { startMongo, type MongoBackendName } from '../dev-database/index.js'
import { compileServers, forkServer, type ServerChild } from './child-process.js'
import { databaseUri } from './harness.js'
import { median } from './summary.js'
import { assignBody, createWorkload, phoneNumbersPath, resetUsers, seedOrganization, type Workload } from './workload.js'

export const BULK_MODES = ['bulk', 'single-sequential', 'single-concurrent'] as const
export type BulkMode = typeof BULK_MODES[number]

export interface BulkBenchOptions {
  backend?: MongoBackendName | undefined
  rounds: number
  /** Assigns per run (at most 1,000: one bulk request). */
  items: number
  users: number
  /** Connections of the concurrent single requests. */
  connections: number
  childRuntime?: 'compiled' | 'tsx' | undefined
  log?: ((line: string) => void) | undefined
}

export interface BulkRun {
  mode: BulkMode
  round: number
  ms: number
  /** Status codes of the assigns: the bulk answer's per-item statuses, or the single answers'. */
  statuses: Record<string, number>
  eventLoopMaxMs: number
  eventLoopP99Ms: number
}

export interface BulkModeSummary {
  mode: BulkMode
  medianMs: number
  assignsPerSecond: number
  eventLoopMaxMs: number
  /** The mode's median time over the bulk request's. */
  ratioToBulk: number
}

export interface BulkBenchResult {
  version: 1
  startedAt: string
  finishedAt: string
  machine: { cpus: number, cpuModel: string, totalMemoryMb: number, node: string, platform: string }
  database: { backend: string, serverVersion: string }
  settings: { rounds: number, items: number, users: number, connections: number, childRuntime: 'compiled' | 'tsx' }
  runs: BulkRun[]
  summaries: BulkModeSummary[]
  failures: string[]
}

function count (statuses: Record<string, number>, status: number): void {
  statuses[String(status)] = (statuses[String(status)] ?? 0) + 1
}

async function sendBulk (child: ServerChild, workload: Workload, token: string, items: number): Promise<Record<string, number>> {
  const response = await fetch(`http://127.0.0.1:${child.port}${phoneNumbersPath(workload.organizationId)}/bulk`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ assignments: Array.from({ length: items }, (_, n) => assignBody(workload, n)) })
  })
  const text = await response.text()
  if (response.status !== 200) throw new Error(`the bulk request answered ${response.status}: ${text.slice(0, 300)}`)
  const statuses: Record<string, number> = {}
  for (const result of (JSON.parse(text) as { results: Array<{ status: number }> }).results) count(statuses, result.status)
  return statuses
}

async function sendSequential (child: ServerChild, workload: Workload, token: string, items: number): Promise<Record<string, number>> {
  const statuses: Record<string, number> = {}
  for (let n = 0; n < items; n++) {
    // Node's fetch keeps the connection alive: one after the other on one connection.
    const response = await fetch(`http://127.0.0.1:${child.port}${phoneNumbersPath(workload.organizationId)}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(assignBody(workload, n))
    })
    await response.arrayBuffer()
    count(statuses, response.status)
  }
  return statuses
}

async function sendConcurrent (child: ServerChild, workload: Workload, token: string, items: number, connections: number): Promise<Record<string, number>> {
  let n = 0
  const result = await autocannon({
    url: `http://127.0.0.1:${child.port}`,
    connections,
    amount: items,
    requests: [{
      method: 'POST',
      path: phoneNumbersPath(workload.organizationId),
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      setupRequest: (request) => ({ ...request, body: JSON.stringify(assignBody(workload, n++)) })
    }]
  })
  const statuses: Record<string, number> = { ...Object.fromEntries(Object.entries(result.statusCodeStats ?? {}).map(([status, stats]) => [status, stats.count ?? 0])) }
  if (result.errors > 0 || result.timeouts > 0) statuses['error'] = result.errors + result.timeouts
  return statuses
}

export async function runBulkComparison (options: BulkBenchOptions): Promise<BulkBenchResult> {
  const log = options.log ?? ((line: string) => { process.stderr.write(`[bench bulk] ${line}\n`) })
  if (options.items < 1 || options.items > 1000) throw new Error(`items must be 1 to 1000 (one bulk request), got ${options.items}`)
  const startedAt = new Date().toISOString()
  const runtime = options.childRuntime ?? 'compiled'
  if (runtime === 'compiled') {
    log('compiling the servers (bench/tsconfig.json -> .cache/bench-dist)')
    await compileServers()
  }
  const mongo = await startMongo({ backend: options.backend, log: (line) => log(`database: ${line}`) })
  const client = new MongoClient(databaseUri(mongo.uri, `bench_bulk_${randomBytes(4).toString('hex')}`))
  let child: ServerChild | undefined
  try {
    await client.connect()
    const db = client.db()
    const workload = createWorkload(options.users)
    await seedOrganization(db, workload)
    await resetUsers(db, workload)
    const jwtSecret = randomBytes(32).toString('hex')
    const token = await mintToken(jwtSecret, { sub: workload.adminId, role: 'SUPERADMIN' }, '12h')
    child = await forkServer({ kind: 'ours', mongodbUri: databaseUri(mongo.uri, db.databaseName), jwtSecret }, { runtime })
    const server = child
    log(`database: ${mongo.backend} ${mongo.serverVersion}; server pid ${server.pid}, port ${server.port}`)

    const send: Record<BulkMode, () => Promise<Record<string, number>>> = {
      bulk: async () => await sendBulk(server, workload, token, options.items),
      'single-sequential': async () => await sendSequential(server, workload, token, options.items),
      'single-concurrent': async () => await sendConcurrent(server, workload, token, options.items, options.connections)
    }
    const runs: BulkRun[] = []
    const failures: string[] = []
    // Round 0 warms the server up (JIT, connection pool) and is not kept.
    for (let round = 0; round <= options.rounds; round++) {
      for (const mode of BULK_MODES) {
        await resetUsers(db, workload)
        await server.idle()
        await server.reset()
        const started = performance.now()
        const statuses = await send[mode]()
        const ms = performance.now() - started
        const eventLoop = await server.eventLoopDelay()
        const run: BulkRun = { mode, round, ms, statuses, eventLoopMaxMs: eventLoop.maxMs, eventLoopP99Ms: eventLoop.p99Ms }
        log(`round ${round} ${mode}: ${ms.toFixed(0)} ms, statuses ${JSON.stringify(statuses)}, event-loop max ${eventLoop.maxMs.toFixed(1)} ms`)
        if (statuses['200'] !== options.items) failures.push(`round ${round} ${mode}: expected ${options.items} × 200, got ${JSON.stringify(statuses)}`)
        if (round > 0) runs.push(run)
      }
    }
    const bulkMs = median(runs.filter((run) => run.mode === 'bulk').map((run) => run.ms))
    const summaries = BULK_MODES.map((mode): BulkModeSummary => {
      const mine = runs.filter((run) => run.mode === mode)
      const medianMs = median(mine.map((run) => run.ms))
      return { mode, medianMs, assignsPerSecond: options.items / (medianMs / 1000), eventLoopMaxMs: Math.max(...mine.map((run) => run.eventLoopMaxMs)), ratioToBulk: medianMs / bulkMs }
    })
    return {
      version: 1,
      startedAt,
      finishedAt: new Date().toISOString(),
      machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', totalMemoryMb: Math.round(totalmem() / 2 ** 20), node: process.version, platform: `${process.platform} ${process.arch}` },
      database: { backend: mongo.backend, serverVersion: mongo.serverVersion },
      settings: { rounds: options.rounds, items: options.items, users: options.users, connections: options.connections, childRuntime: runtime },
      runs,
      summaries,
      failures
    }
  } finally {
    await child?.stop()
    try {
      await client.db().dropDatabase()
    } finally {
      await client.close()
      await mongo.stop()
    }
  }
}

const MODE_TEXT: Record<BulkMode, string> = {
  bulk: 'one bulk request',
  'single-sequential': 'single requests, one connection, one after the other',
  'single-concurrent': 'single requests over N connections'
}

export function bulkMarkdownReport (result: BulkBenchResult): string {
  const { machine, database, settings } = result
  const lines = [
    `### Bulk assign: ${database.backend} ${database.serverVersion}`,
    '',
    `${machine.cpus} × ${machine.cpuModel}, ${machine.totalMemoryMb} MB, Node ${machine.node}; ${settings.items} assigns over ${settings.users} users per run, ` +
      `median of ${settings.rounds} rounds after a warm-up round, N = ${settings.connections}; server run with ${settings.childRuntime === 'tsx' ? 'tsx' : 'compiled JavaScript'}; ${result.finishedAt.slice(0, 10)}.`,
    '',
    '| how | median ms | assigns/s | event-loop max ms | time over the bulk request\'s |',
    '| --- | ---: | ---: | ---: | ---: |'
  ]
  for (const summary of result.summaries) {
    const how = summary.mode === 'single-concurrent' ? MODE_TEXT[summary.mode].replace('N', String(settings.connections)) : MODE_TEXT[summary.mode]
    lines.push(`| ${how} | ${summary.medianMs.toFixed(0)} | ${summary.assignsPerSecond.toFixed(0)} | ${summary.eventLoopMaxMs.toFixed(1)} | ${summary.ratioToBulk.toFixed(2)} |`)
  }
  if (result.failures.length > 0) lines.push('', `Failures: ${result.failures.join('; ')}`)
  return `${lines.join('\n')}\n`
}

export async function writeBulkResults (result: BulkBenchResult, dir: string): Promise<{ json: string, markdown: string }> {
  await mkdir(dir, { recursive: true })
  const base = join(dir, `latest-${result.database.backend}`)
  // Written beside and renamed: a reader never sees half a file.
  await writeFile(`${base}.json.tmp`, `${JSON.stringify(result, null, 2)}\n`)
  await rename(`${base}.json.tmp`, `${base}.json`)
  await writeFile(`${base}.md.tmp`, bulkMarkdownReport(result))
  await rename(`${base}.md.tmp`, `${base}.md`)
  return { json: `${base}.json`, markdown: `${base}.md` }
}
