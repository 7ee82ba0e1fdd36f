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
import { MongoClient, type Db } from 'mongodb'
import { mintToken } from '../tools/tokens.js'
import { startMongo, type MongoBackendName } from '../dev-database/index.js'
import { compileServers, forkServer, procRss, type ServerChild } from './child-process.js'
import { findDatabasePid, sampleProcessRss } from './database-process.js'
import { startOtlpSink, type OtlpSink, type OtlpSinkCounts } from './otlp-sink.js'
import { probeListing, walkToMiddle } from './listing.js'
import { REJECTION_KINDS, SCENARIOS, SCENARIO_NAMES, barePrefix, rejectionRequest, listingScenarioName, scenarioRequests, serverKey, type ListingTarget, type ScenarioName, type Tokens } from './scenarios.js'
import type { CannedResponse, ServerKind } from './servers.js'
import { checkTargets, roundResult, summarize, type RoundResult, type ScenarioSummary, type TargetCheck } from './summary.js'
import { DEFAULT_LISTING_USERS, LISTING_SIZES, createWorkload, inboundRoutePath, lookupNumbers, resetUsers, seedListing, seedOrganization, type ListingSize, type Workload } from './workload.js'

export interface BenchOptions {
  /** Force a backend (startMongo); undefined: MONGODB_URI if set, else the first local backend that starts. */
  backend?: MongoBackendName | undefined
  rounds: number
  durationSeconds: number
  /** Unmeasured load on each server before the first round. */
  warmupSeconds: number
  connections: number
  users: number
  /**
   * Connections of the listing scenarios (default 10): a page of a 50,000-user
   * organization takes mongo-java-server tens of milliseconds, and 50
   * connections would only measure the queue in front of it.
   */
  listingConnections?: number | undefined
  /** Users of the listing organizations, by scenario size (default DEFAULT_LISTING_USERS: 1,000 and 50,000). */
  listingUsers?: Partial<Record<ListingSize, number>> | undefined
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
  listingConnections: 10,
  users: 200
} as const

/** autocannon's request timeout for listing pages (its default, 10 s, for the rest); a timeout is a failure. */
const LISTING_TIMEOUT_SECONDS = 60

export interface BenchResult {
  version: 1
  startedAt: string
  finishedAt: string
  machine: { cpus: number, cpuModel: string, totalMemoryMb: number, node: string, platform: string }
  database: { backend: string, serverVersion: string }
  settings: { rounds: number, durationSeconds: number, warmupSeconds: number, connections: number, listingConnections: number, users: number, listingUsers: Partial<Record<ListingSize, number>>, childRuntime: 'compiled' | 'tsx' }
  /** What preparing each listing took: seeding, the walk to the middle, the database's RSS after seeding. */
  listings: ListingPreparation[]
  scenarios: ScenarioSummary[]
  rounds: RoundResult[]
  targets: TargetCheck[]
  /** Unexpected status codes, connection errors or timeouts; must be empty. */
  failures: string[]
  /** ours-tracing: what its OTLP receiver got over the whole run (warm-up included). */
  otlp?: OtlpSinkCounts | undefined
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

export interface ListingPreparation {
  size: ListingSize
  /** Each listing has a database of its own (its users collection holds only its organization). */
  databaseName: string
  users: number
  seedMs: number
  walkPages: number
  walkMs: number
  /** Entries listed before each middle cursor. */
  middlePositions: number[]
  databaseRssMb: number | undefined
}

const mb = (bytes: number | undefined): string => bytes === undefined ? 'unknown' : `${(bytes / 2 ** 20).toFixed(0)} MB`

export async function runBenchmark (options: BenchOptions): Promise<BenchResult> {
  const log = options.log ?? ((line: string) => { process.stderr.write(`[bench] ${line}\n`) })
  const startedAt = new Date().toISOString()
  const selected = SCENARIO_NAMES.filter((name) => options.scenarios === undefined || options.scenarios.includes(name))
  const kinds = new Set<ServerKind>(selected.filter((name) => SCENARIOS[name].listing === undefined).map((name) => SCENARIOS[name].server))
  const listingSizes = LISTING_SIZES.filter((size) => selected.some((name) => SCENARIOS[name].listing?.size === size))
  const listingUsers: Partial<Record<ListingSize, number>> = {}
  for (const size of listingSizes) listingUsers[size] = options.listingUsers?.[size] ?? DEFAULT_LISTING_USERS[size]
  // The bare rejection routes copy the plugin's bodies: ours must run to build them.
  if (kinds.has('bare')) kinds.add('ours')

  const runtime = options.childRuntime ?? 'compiled'
  if (runtime === 'compiled') {
    log('compiling the servers (bench/tsconfig.json -> .cache/bench-dist)')
    await compileServers()
  }
  const mongo = await startMongo({ backend: options.backend, log: (line) => log(`database: ${line}`) })
  const children: ServerChild[] = []
  // ours-tracing exports its spans here, on loopback; the receiver discards them.
  const otlpSink: OtlpSink | undefined = kinds.has('ours-tracing') ? await startOtlpSink() : undefined
  const databasePid = await findDatabasePid(mongo.uri)
  const listings: ListingPreparation[] = []
  const listingDatabases: Db[] = []
  const client = new MongoClient(databaseUri(mongo.uri, options.databaseName ?? `bench_${randomBytes(4).toString('hex')}`))
  try {
    log(`database: ${mongo.backend} ${mongo.serverVersion}${databasePid === undefined ? '' : `, pid ${databasePid}`}`)
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

    const servers = new Map<string, ServerChild>()
    const start = async (kind: ServerKind, canned?: Record<string, CannedResponse>, lookup?: boolean, key: string = kind, uri = mongodbUri): Promise<void> => {
      const tracingEndpoint = kind === 'ours-tracing' ? otlpSink?.endpoint : undefined
      const child = await forkServer({ kind, mongodbUri: uri, jwtSecret, canned, lookup }, { cpuProfileDir: options.cpuProfileDir, runtime, tracingEndpoint })
      children.push(child)
      servers.set(key, child)
      log(`${key} server: pid ${child.pid}, port ${child.port}`)
    }
    // ours first: it creates the store's indexes, which every scenario then shares.
    if (kinds.has('ours')) await start('ours')

    // The listing organizations, each read by a plugin server process of its own, prepared while the other servers start.
    const listingTargets: Partial<Record<ListingSize, ListingTarget>> = {}
    const prepareListings = async (): Promise<void> => {
      for (const size of listingSizes) {
        const users = listingUsers[size]!
        // A database of its own: mongo-java-server scans the whole users collection for every page, so the
        // other listing's and the assign workload's users would be charged to this one.
        const listingDb = client.db(`${db.databaseName}_${size}`)
        listingDatabases.push(listingDb)
        const key = serverKey(SCENARIOS[listingScenarioName('first', size)])
        const seedStarted = performance.now()
        let seedMs = 0
        const [listing] = await Promise.all([
          seedListing(listingDb, size, users).finally(() => { seedMs = performance.now() - seedStarted }),
          start('ours', undefined, undefined, key, databaseUri(mongo.uri, listingDb.databaseName))
        ])
        const databaseRss = databasePid === undefined ? undefined : await procRss(databasePid)
        log(`listing ${size}: ${users} users seeded in ${(seedMs / 1000).toFixed(1)} s; database RSS ${mb(databaseRss)}`)
        const baseUrl = `http://127.0.0.1:${servers.get(key)!.port}`
        const walk = await walkToMiddle(baseUrl, tokens.superAdmin, listing)
        log(`listing ${size}: walked to the middle in ${walk.pages} pages, ${(walk.milliseconds / 1000).toFixed(1)} s; middle cursors at entries ${walk.positions.join(', ')}`)
        await probeListing(baseUrl, tokens.superAdmin, walk)
        listingTargets[size] = { organizationId: walk.organizationId, middleCursors: walk.middleCursors }
        listings.push({ size, databaseName: listingDb.databaseName, users, seedMs, walkPages: walk.pages, walkMs: walk.milliseconds, middlePositions: walk.positions, databaseRssMb: databaseRss === undefined ? undefined : databaseRss / 2 ** 20 })
      }
    }
    await Promise.all([prepareListings(), ...[...kinds].filter((kind) => kind !== 'ours' && kind !== 'bare').map(async (kind) => await start(kind))])
    if (kinds.has('bare')) {
      const lookup = selected.includes('bare-lookup')
      await start('bare', await cannedRejections(servers.get('ours')!, workload, tokens), lookup)
      if (lookup) await checkLookupProbes(servers.get('ours')!, servers.get('bare')!, workload, tokens)
    }

    const runOnce = async (name: ScenarioName, durationSeconds: number, round: number): Promise<RoundResult> => {
      const scenario = SCENARIOS[name]
      const child = servers.get(serverKey(scenario))!
      if (scenario.resetData) await resetUsers(db, workload)
      await child.reset()
      const stopSampling = child.sampleRss()
      const stopDatabaseSampling = sampleProcessRss(databasePid)
      const listing = scenario.listing !== undefined
      const result = await autocannon({
        url: `http://127.0.0.1:${child.port}`,
        connections: listing ? options.listingConnections ?? DEFAULT_OPTIONS.listingConnections : options.connections,
        duration: durationSeconds,
        ...(listing ? { timeout: LISTING_TIMEOUT_SECONDS } : {}),
        requests: scenarioRequests(scenario, workload, tokens, listingTargets)
      })
      // Requests still in flight at the deadline (autocannon gave up on them) finish before the counters
      // are read and before the next scenario starts: slow pages must not overlap the next run.
      const idle = await child.idle()
      if (idle.inFlight > 0) throw new Error(`${name}: ${idle.inFlight} requests still in flight ${idle.waitedMs} ms after the run`)
      if (idle.waitedMs > 1000) log(`${name}: waited ${(idle.waitedMs / 1000).toFixed(1)} s for the requests in flight at the deadline`)
      await sleep(50)
      const rssPeakBytes = await stopSampling()
      const databaseRssPeakBytes = await stopDatabaseSampling()
      return roundResult(name, round, result, await child.stats(), rssPeakBytes, databaseRssPeakBytes)
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
        const databaseRss = measured.databaseRssPeakMb === undefined ? '' : `, database rss ${measured.databaseRssPeakMb.toFixed(0)} MB`
        log(`round ${round} ${name}: ${measured.requestsPerSecond.toFixed(0)} req/s, p99 ${measured.latencyMs.p99} ms, non-2xx ${measured.non2xx}, rss ${measured.rssPeakMb.toFixed(0)} MB${databaseRss}`)
      }
    }

    const { scenarios, failures } = summarize(rounds, mongo.backend, listingUsers)
    // The spans of the last requests are still batched: they arrive when the child stops.
    await Promise.allSettled(children.filter((child) => child.kind === 'ours-tracing').map((child) => child.stop()))
    const otlp = otlpSink?.counts()
    if (otlp !== undefined) {
      log(`ours-tracing: its OTLP receiver got ${otlp.exportRequests} export requests, ${(otlp.bytes / 2 ** 20).toFixed(1)} MB`)
      if (otlp.exportRequests === 0 || otlp.rejected > 0) failures.push(`ours-tracing exported ${otlp.exportRequests} batches (${otlp.rejected} requests rejected): tracing did not reach its receiver`)
    }
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
        listingConnections: options.listingConnections ?? DEFAULT_OPTIONS.listingConnections,
        users: options.users,
        listingUsers,
        childRuntime: runtime
      },
      listings,
      scenarios,
      rounds,
      targets: checkTargets(scenarios),
      failures,
      ...(otlp === undefined ? {} : { otlp })
    }
  } finally {
    await Promise.allSettled(children.map((child) => child.stop()))
    for (const database of [client.db(), ...listingDatabases]) {
      try {
        await database.dropDatabase()
      } catch {
        // the database may never have been reached
      }
    }
    await client.close()
    await mongo.stop()
    await otlpSink?.close()
  }
}
