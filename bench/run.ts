/**
 * npm run bench [-- --rounds 3 --duration 5 --warmup 2 --connections 50 --list-connections 10 --users 200 --list-users 1000,50000 --scenarios ours,baseline --out bench/results --cpu-prof dir]
 * Scenarios (bench/scenarios.ts): ours, ours-metrics (METRICS=true), baseline, peer (assign); ours-401/403/400 and bare-401/403/400
 * (rejections); ours-lookup and bare-lookup (inbound-route lookup); list-first/middle/filtered-1k and -50k
 * (listing pages of an organization of 1,000 and 50,000 users, or the two --list-users counts). Default: all.
 * Environment: BENCH_BACKEND=ferretdb|java|mongod|uri (default: MONGODB_URI if set, else the first local
 * backend that starts, in the order mongod, java, ferretdb), MONGODB_URI, BENCH_ROUNDS, BENCH_DURATION,
 * BENCH_WARMUP, BENCH_CONNECTIONS, BENCH_LIST_CONNECTIONS, BENCH_USERS, BENCH_LIST_USERS, BENCH_SCENARIOS, BENCH_OUT, BENCH_CPU_PROF,
 * BENCH_CHILD_RUNTIME=tsx (run the servers through tsx instead of compiling them first), BENCH_ROUTE_CACHE_TTL_MS
 * (the route cache TTL of ours-lookup-cached's server; default the server's 5 s).
 * Exits 1 when a scenario got an unexpected status code or connection errors.
 *
 * npm run bench -- --bulk [--rounds 3 --connections 50 --users 200]: instead of the scenarios, the bulk comparison
 * (bench/bulk.ts): 1,000 assigns as one POST /phone-numbers/bulk, as 1,000 single requests on one connection, and over
 * --connections connections; written to bench/results/bulk/latest-<backend>.{json,md}. Environment: BENCH_BULK=true.
 */
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { fileURLToPath } from 'node:url'
import { parseBackendName } from '../dev-database/index.js'
import { DEFAULT_OPTIONS, runBenchmark, type BenchOptions } from './harness.js'
import { markdownReport, writeResults } from './report.js'
import { bulkMarkdownReport, runBulkComparison, writeBulkResults } from './bulk.js'
import { isScenarioName, type ScenarioName } from './scenarios.js'
import { DEFAULT_LISTING_USERS, LISTING_SIZES, type ListingSize } from './workload.js'

const { values } = parseArgs({
  options: {
    backend: { type: 'string' },
    rounds: { type: 'string' },
    duration: { type: 'string' },
    warmup: { type: 'string' },
    connections: { type: 'string' },
    'list-connections': { type: 'string' },
    users: { type: 'string' },
    'list-users': { type: 'string' },
    scenarios: { type: 'string' },
    out: { type: 'string' },
    'cpu-prof': { type: 'string' },
    bulk: { type: 'boolean' }
  }
})
const env = process.env

function number (name: string, given: string | undefined, fallback: number, min: number): number {
  if (given === undefined || given === '') return fallback
  const value = Number(given)
  if (!Number.isFinite(value) || value < min) throw new Error(`${name} must be a number >= ${min}, got ${given}`)
  return value
}

function scenarioList (given: string | undefined): ScenarioName[] | undefined {
  if (given === undefined || given === '') return undefined
  return given.split(',').map((name) => {
    if (!isScenarioName(name)) throw new Error(`unknown scenario ${name}`)
    return name
  })
}

/** `--list-users 1000,50000`: the users of the 1k and the 50k listing organizations. */
function listingUsers (given: string | undefined): Record<ListingSize, number> {
  if (given === undefined || given === '') return { ...DEFAULT_LISTING_USERS }
  const counts = given.split(',')
  if (counts.length !== LISTING_SIZES.length) throw new Error(`list-users takes ${LISTING_SIZES.length} counts (${LISTING_SIZES.join(', ')}), got ${given}`)
  return Object.fromEntries(LISTING_SIZES.map((size, index) => [size, number(`list-users (${size})`, counts[index], DEFAULT_LISTING_USERS[size], 1)])) as Record<ListingSize, number>
}

const options: BenchOptions = {
  backend: parseBackendName(values.backend ?? env['BENCH_BACKEND']),
  rounds: number('rounds', values.rounds ?? env['BENCH_ROUNDS'], DEFAULT_OPTIONS.rounds, 1),
  durationSeconds: number('duration', values.duration ?? env['BENCH_DURATION'], DEFAULT_OPTIONS.durationSeconds, 1),
  warmupSeconds: number('warmup', values.warmup ?? env['BENCH_WARMUP'], DEFAULT_OPTIONS.warmupSeconds, 0),
  connections: number('connections', values.connections ?? env['BENCH_CONNECTIONS'], DEFAULT_OPTIONS.connections, 1),
  listingConnections: number('list-connections', values['list-connections'] ?? env['BENCH_LIST_CONNECTIONS'], DEFAULT_OPTIONS.listingConnections, 1),
  users: number('users', values.users ?? env['BENCH_USERS'], DEFAULT_OPTIONS.users, 1),
  listingUsers: listingUsers(values['list-users'] ?? env['BENCH_LIST_USERS']),
  scenarios: scenarioList(values.scenarios ?? env['BENCH_SCENARIOS']),
  cpuProfileDir: values['cpu-prof'] ?? env['BENCH_CPU_PROF'],
  childRuntime: env['BENCH_CHILD_RUNTIME'] === 'tsx' ? 'tsx' : 'compiled'
}
const out = values.out ?? env['BENCH_OUT'] ?? join(fileURLToPath(new URL('.', import.meta.url)), 'results')

if (values.bulk === true || env['BENCH_BULK'] === 'true') {
  const bulk = await runBulkComparison({
    backend: options.backend,
    rounds: options.rounds,
    items: 1000,
    users: options.users,
    connections: options.connections,
    childRuntime: options.childRuntime
  })
  const written = await writeBulkResults(bulk, join(out, 'bulk'))
  process.stdout.write(`\n${bulkMarkdownReport(bulk)}\nwritten: ${written.json}, ${written.markdown}\n`)
  if (bulk.failures.length > 0) {
    process.stderr.write(`\nFAILED: unexpected responses\n${bulk.failures.map((failure) => `  - ${failure}`).join('\n')}\n`)
    process.exit(1)
  }
  process.exit(0)
}

const result = await runBenchmark(options)
const written = await writeResults(result, out)
process.stdout.write(`\n${markdownReport(result)}\nwritten: ${written.json}, ${written.markdown}\n`)
if (result.failures.length > 0) {
  process.stderr.write(`\nFAILED: unexpected responses\n${result.failures.map((failure) => `  - ${failure}`).join('\n')}\n`)
  process.exitCode = 1
}
