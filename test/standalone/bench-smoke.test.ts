/**
 * The benchmark harness end to end, tiny and short, against the test
 * database: every scenario runs once for a second and the result is well
 * formed. No timing is asserted; only that nothing answered unexpectedly.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { runBenchmark } from '../../bench/harness.js'
import { markdownReport, writeResults } from '../../bench/report.js'
import { SCENARIO_NAMES } from '../../bench/scenarios.js'
import { median, roundFailures, type RoundResult } from '../../bench/summary.js'
import { emptyStats, sequentialRoundTrips } from '../../bench/tracing.js'
import { uniqueDatabaseName } from '../helper-database.js'

t.test('sequential round trips group overlapping commands', async (t) => {
  t.equal(sequentialRoundTrips([]), 0)
  t.equal(sequentialRoundTrips([{ name: 'find', start: 0, end: 5 }, { name: 'find', start: 1, end: 4 }, { name: 'update', start: 6, end: 9 }]), 2)
  t.equal(median([3, 1, 2, 4]), 2.5)
  t.ok(Number.isNaN(median([])))
})

t.test('unexpected answers are reported, never averaged away', async (t) => {
  const round: RoundResult = {
    scenario: 'ours',
    round: 1,
    requestsPerSecond: 0,
    latencyMs: { p50: 0, p99: 0, mean: 0, max: 0 },
    requests: 0,
    non2xx: 3,
    statusCodes: { 200: 5, 409: 3 },
    errors: 2,
    timeouts: 1,
    rssPeakMb: 0,
    server: { ...emptyStats(), statusCodes: { 500: 1 } }
  }
  const failures = roundFailures(round)
  t.equal(failures.length, 4)
  t.match(failures.join('\n'), /3 responses with status 409[\s\S]*answered 1 requests with 500[\s\S]*2 connection errors[\s\S]*no request completed/)
})

t.test('the harness runs every scenario and writes a well-formed result', async (t) => {
  const out = await mkdtemp(join(tmpdir(), 'bench-smoke-'))
  t.teardown(() => rm(out, { recursive: true, force: true }))
  const lines: string[] = []
  const result = await runBenchmark({
    backend: 'uri',
    rounds: 1,
    durationSeconds: 1,
    warmupSeconds: 0,
    connections: 4,
    users: 10,
    databaseName: uniqueDatabaseName(),
    childRuntime: 'tsx',
    log: (line) => lines.push(line)
  })

  t.same(result.failures, [], 'no unexpected status codes or connection errors')
  t.same(result.scenarios.map((summary) => summary.scenario), [...SCENARIO_NAMES], 'every scenario is present')
  for (const summary of result.scenarios) {
    for (const [name, value] of Object.entries({ rps: summary.requestsPerSecond, p50: summary.p50Ms, p99: summary.p99Ms, rss: summary.rssPeakMb, commands: summary.commandsPerRequest })) {
      t.ok(Number.isFinite(value) && value >= 0, `${summary.scenario} ${name} is a finite number (${value})`)
    }
    t.ok(summary.requestsPerSecond > 0, `${summary.scenario} answered requests`)
    t.ok(Number.isFinite(summary.ratioToBaseline), `${summary.scenario} has a ratio to its baseline`)
  }
  const ours = result.scenarios.find((summary) => summary.scenario === 'ours')!
  t.ok(ours.commandsPerRequest > 0, 'assign requests issue database commands')
  t.ok(ours.sequentialRoundTrips.typical >= 1, 'and take at least one round trip')
  t.equal(result.scenarios.find((summary) => summary.scenario === 'ours-401')!.commandsPerRequest, 0, 'rejections issue none')
  t.ok(result.targets.length >= 6, 'targets are checked')
  t.ok(lines.some((line) => line.startsWith('round 1 ours:')), 'progress is logged')

  const written = await writeResults(result, out, 'smoke')
  const json = JSON.parse(await readFile(written.json, 'utf8')) as { version: number, scenarios: unknown[] }
  t.equal(json.version, 1)
  t.equal(json.scenarios.length, SCENARIO_NAMES.length)
  const markdown = await readFile(written.markdown, 'utf8')
  t.equal(markdown, markdownReport(result))
  t.match(markdown, /\| ours \| uri \|/)
  t.match(markdownReport({ ...result, failures: ['ours round 1: 1 responses with status 500'] }), /Unexpected responses:[\s\S]*status 500/)
})
