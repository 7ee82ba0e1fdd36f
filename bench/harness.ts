/**
 * runBenchmark(): start (or reuse) the database, seed it, start one child
 * process per server under test, then run every scenario in turn, round
 * after round (A B C A B C ...), with autocannon in this process. Returns the
 * raw rounds, per-scenario summaries, target checks and failures (unexpected
 * status codes, connection errors), which are never hidden in an average.
 */
import autocannon from 'autocannon'
import { randomBytes } from 'node:crypto'
import { cpus, totalmem } from 'node:os'
import { setTimeout as sleep } from 'node:timers/promises'
import { MongoClient } from 'mongodb'
import { mintToken } from '../src/standalone/development.js'
import { startMongo, type MongoBackendName } from '../src/embedded-mongo/index.js'
import { compileServers, forkServer, type ServerChild } from './child-process.js'
import { REJECTION_KINDS, SCENARIOS, SCENARIO_NAMES, barePrefix, rejectionRequest, scenarioRequests, type ScenarioName, type Tokens } from './scenarios.js'
import type { CannedResponse, ServerKind } from './servers.js'
import { checkTargets, roundResult, summarize, type RoundResult, type ScenarioSummary, type TargetCheck } from './summary.js'
import { createWorkload, inboundRoutePath, lookupNumbers, resetUsers, seedOrganization, type Workload } from './workload.js'

export interface BenchOptions {
  /** Force a backend (startMongo); undefined: MONGODB_URI if set, else the first local backend that starts. */
  backend?: MongoBackendName | undefined
  rounds: number
  durationSeconds: number
  /** Unmeasured load on each server before the first round. */
  warmupSeconds: number
  connections: number
  users: number
  /** Run only these scenarios (default: all). */
  scenarios?: readonly ScenarioName[] | undefined
  /** Database to create and drop; default a fresh `bench_<random>`. */
  databaseName?: string | undefined
  cpuProfileDir?: string | undefined
  /** How the server children run (see ForkOptions); default 'compiled'. */
  childRuntime?: 'compiled' | 'tsx' | undefined
  log?: ((line: string) => void) | undefined
}

export const DEFAULT_OPTIONS = {
  rounds: 3,
  durationSeconds: 5,
  warmupSeconds: 2,
  connections: 50,
  users: 200
} as const

export interface BenchResult {
  version: 1
  startedAt: string
  finishedAt: string
  machine: { cpus: number, cpuModel: string, totalMemoryMb: number, node: string, platform: string }
  database: { backend: string, serverVersion: string }
  settings: { rounds: number, durationSeconds: number, warmupSeconds: number, connections: number, users: number, childRuntime: 'compiled' | 'tsx' }
  scenarios: ScenarioSummary[]
  rounds: RoundResult[]
  targets: TargetCheck[]
  /** Unexpected status codes, connection errors or timeouts; must be empty. */
  failures: string[]
}

/** The server URI with its database path replaced, query options kept. */
export function databaseUri (uri: string, databaseName: string): string {
  const match = /^(mongodb(?:\+srv)?:\/\/[^/?]*)(?:\/[^?]*)?(\?.*)?$/.exec(uri)
  if (match === null) throw new Error(`not a MongoDB connection string: ${uri}`)
  return `${match[1] ?? ''}/${databaseName}${match[2] ?? ''}`
}

async function cannedRejections (ours: ServerChild, workload: Workload, tokens: Tokens): Promise<Record<string, CannedResponse>> {
  const canned: Record<string, CannedResponse> = {}
  for (const kind of REJECTION_KINDS) {
    const request = rejectionRequest(kind, workload, tokens)
    const response = await fetch(`http://127.0.0.1:${ours.port}${request.path ?? ''}`, {
      method: 'POST',
      headers: Object.fromEntries(Object.entries(request.headers ?? {}).map(([name, value]) => [name, String(value)])),
      body: request.body ?? null
    })
    const body = await response.text()
    if (String(response.status) !== kind) throw new Error(`the plugin answered the ${kind} probe with ${response.status}: ${body}`)
    canned[barePrefix(kind)] = { status: response.status, body }
  }
  return canned
}

/**
 * The plugin and the bare route answer the same lookup with the same status
 * and bytes (the first, a middle and the last seeded number), or the
 * comparison would not be of like with like.
 */
async function checkLookupProbes (ours: ServerChild, bare: ServerChild, workload: Workload, tokens: Tokens): Promise<void> {
  const numbers = lookupNumbers(workload)
  for (const phoneNumber of [numbers[0]!, numbers[Math.floor(numbers.length / 2)]!, numbers[numbers.length - 1]!]) {
    const path = inboundRoutePath(phoneNumber)
    const [fromOurs, fromBare] = await Promise.all([ours, bare].map(async (child) => {
      const response = await fetch(`http://127.0.0.1:${child.port}${path}`, { headers: { authorization: `Bearer ${tokens.superAdmin}` } })
      return `${response.status} ${await response.text()}`
    }))
    if (!fromOurs!.startsWith('200 ')) throw new Error(`the plugin answered the lookup probe ${path} with ${fromOurs!}`)
    if (fromOurs !== fromBare) throw new Error(`the bare lookup route answers ${path} unlike the plugin: ${fromBare!} vs ${fromOurs!}`)
  }
}

export async function runBenchmark (options: BenchOptions): Promise<BenchResult> {
  const log = options.log ?? ((line: string) => { process.stderr.write(`[bench] ${line}\n`) })
  const startedAt = new Date().toISOString()
  const selected = SCENARIO_NAMES.filter((name) => options.scenarios === undefined || options.scenarios.includes(name))
  const kinds = new Set<ServerKind>(selected.map((name) => SCENARIOS[name].server))
  // The bare rejection routes copy the plugin's bodies: ours must run to build them.
  if (kinds.has('bare')) kinds.add('ours')

  const runtime = options.childRuntime ?? 'compiled'
  if (runtime === 'compiled') {
    log('compiling the servers (bench/tsconfig.json -> .cache/bench-dist)')
    await compileServers()
  }
  const mongo = await startMongo({ backend: options.backend, log: (line) => log(`database: ${line}`) })
  const children: ServerChild[] = []
  const client = new MongoClient(databaseUri(mongo.uri, options.databaseName ?? `bench_${randomBytes(4).toString('hex')}`))
  try {
    log(`database: ${mongo.backend} ${mongo.serverVersion}`)
    await client.connect()
    const db = client.db()
    const mongodbUri = databaseUri(mongo.uri, db.databaseName)
    const workload = createWorkload(options.users)
    await seedOrganization(db, workload)
    await resetUsers(db, workload)

    const jwtSecret = randomBytes(32).toString('hex')
    const tokens: Tokens = {
      superAdmin: await mintToken(jwtSecret, { sub: workload.adminId, role: 'SUPERADMIN' }, '12h'),
      agent: await mintToken(jwtSecret, { sub: workload.userIds[0], role: 'AGENT' }, '12h')
    }

    const servers = new Map<ServerKind, ServerChild>()
    const start = async (kind: ServerKind, canned?: Record<string, CannedResponse>, lookup?: boolean): Promise<void> => {
      const child = await forkServer({ kind, mongodbUri, jwtSecret, canned, lookup }, { cpuProfileDir: options.cpuProfileDir, runtime })
      children.push(child)
      servers.set(kind, child)
      log(`${kind} server: pid ${child.pid}, port ${child.port}`)
    }
    // ours first: it creates the store's indexes, which every scenario then shares.
    if (kinds.has('ours')) await start('ours')
    await Promise.all([...kinds].filter((kind) => kind !== 'ours' && kind !== 'bare').map((kind) => start(kind)))
    if (kinds.has('bare')) {
      const lookup = selected.includes('bare-lookup')
      await start('bare', await cannedRejections(servers.get('ours')!, workload, tokens), lookup)
      if (lookup) await checkLookupProbes(servers.get('ours')!, servers.get('bare')!, workload, tokens)
    }

    const runOnce = async (name: ScenarioName, durationSeconds: number, round: number): Promise<RoundResult> => {
      const scenario = SCENARIOS[name]
      const child = servers.get(scenario.server)!
      if (scenario.resetData) await resetUsers(db, workload)
      await child.reset()
      const stopSampling = child.sampleRss()
      const result = await autocannon({
        url: `http://127.0.0.1:${child.port}`,
        connections: options.connections,
        duration: durationSeconds,
        requests: scenarioRequests(scenario, workload, tokens)
      })
      // Let requests still in flight at the deadline finish before reading the counters.
      await sleep(200)
      const rssPeakBytes = await stopSampling()
      return roundResult(name, round, result, await child.stats(), rssPeakBytes)
    }

    if (options.warmupSeconds > 0) {
      for (const name of selected) {
        // One rejection pair warms each server's rejection path.
        if (/^(ours|bare)-40[03]$/.test(name)) continue
        log(`warm-up ${name} (${options.warmupSeconds} s)`)
        await runOnce(name, options.warmupSeconds, 0)
      }
    }

    const rounds: RoundResult[] = []
    for (let round = 1; round <= options.rounds; round++) {
      for (const name of selected) {
        const measured = await runOnce(name, options.durationSeconds, round)
        rounds.push(measured)
        log(`round ${round} ${name}: ${measured.requestsPerSecond.toFixed(0)} req/s, p99 ${measured.latencyMs.p99} ms, non-2xx ${measured.non2xx}, rss ${measured.rssPeakMb.toFixed(0)} MB`)
      }
    }

    const { scenarios, failures } = summarize(rounds, mongo.backend)
    return {
      version: 1,
      startedAt,
      finishedAt: new Date().toISOString(),
      machine: {
        cpus: cpus().length,
        cpuModel: cpus()[0]?.model ?? 'unknown',
        totalMemoryMb: Math.round(totalmem() / 2 ** 20),
        node: process.version,
        platform: `${process.platform} ${process.arch}`
      },
      database: { backend: mongo.backend, serverVersion: mongo.serverVersion },
      settings: {
        rounds: options.rounds,
        durationSeconds: options.durationSeconds,
        warmupSeconds: options.warmupSeconds,
        connections: options.connections,
        users: options.users,
        childRuntime: runtime
      },
      scenarios,
      rounds,
      targets: checkTargets(scenarios),
      failures
    }
  } finally {
    await Promise.allSettled(children.map((child) => child.stop()))
    try {
      await client.db().dropDatabase()
    } catch {
      // the database may never have been reached
    }
    await client.close()
    await mongo.stop()
  }
}
