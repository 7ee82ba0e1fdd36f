/**
 * From measured rounds to per-scenario figures, ratios and the target checks.
 * Throughput and latencies are medians over the rounds; the RSS is the peak
 * over all rounds; commands are totals over all rounds divided by responses.
 */
import type { Result } from 'autocannon'
import { LISTING_PAGE_KINDS, SCENARIOS, SCENARIO_NAMES, listingScenarioName, type ListingPageKind, type ScenarioName } from './scenarios.js'
import type { ServerStats } from './tracing.js'
import type { ListingSize } from './workload.js'

export interface RoundResult {
  scenario: ScenarioName
  /** 0: warm-up (not in the summaries). */
  round: number
  requestsPerSecond: number
  latencyMs: { p50: number, p99: number, mean: number, max: number }
  requests: number
  non2xx: number
  /** As seen by autocannon. */
  statusCodes: Record<string, number>
  errors: number
  timeouts: number
  rssPeakMb: number
  /** Peak RSS of the database process during the round (undefined: not found, see database-process.ts). */
  databaseRssPeakMb?: number | undefined
  server: ServerStats
}

export interface ScenarioSummary {
  scenario: ScenarioName
  backend: string
  rounds: number
  requestsPerSecond: number
  p50Ms: number
  p99Ms: number
  rssPeakMb: number
  /** Peak RSS of the database process over the rounds, when it was found. */
  databaseRssPeakMb: number | undefined
  /** Listing scenarios: the users of the organization read. */
  listingUsers: number | undefined
  /** Database commands per answered request (mean), by name. */
  commandsPerRequest: number
  commandsByName: Record<string, number>
  /** Most common number of sequential database round trips per request, and the largest seen. */
  sequentialRoundTrips: { typical: number, max: number }
  /** Share of requests that needed more round trips than the typical one (CAS retries, pool waits). */
  requestsAboveTypical: number
  non2xx: number
  ratioToBaseline: number | undefined
  ratioToPeer: number | undefined
}

export interface TargetCheck {
  target: string
  met: boolean
  detail: string
}

export function roundResult (scenario: ScenarioName, round: number, result: Result, server: ServerStats, rssPeakBytes: number, databaseRssPeakBytes?: number): RoundResult {
  const statusCodes: Record<string, number> = {}
  for (const [code, stat] of Object.entries(result.statusCodeStats ?? {})) statusCodes[code] = stat.count ?? 0
  return {
    scenario,
    round,
    requestsPerSecond: result.requests.average,
    latencyMs: { p50: result.latency.p50, p99: result.latency.p99, mean: result.latency.average, max: result.latency.max },
    requests: result.requests.total,
    non2xx: result.non2xx,
    statusCodes,
    errors: result.errors,
    timeouts: result.timeouts,
    rssPeakMb: rssPeakBytes / 2 ** 20,
    databaseRssPeakMb: databaseRssPeakBytes === undefined || databaseRssPeakBytes === 0 ? undefined : databaseRssPeakBytes / 2 ** 20,
    server
  }
}

export function median (values: readonly number[]): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

function addInto (total: Record<string, number>, counts: Record<string, number>): void {
  for (const [key, count] of Object.entries(counts)) total[key] = (total[key] ?? 0) + count
}

/** Unexpected answers of one round, as messages. */
export function roundFailures (round: RoundResult): string[] {
  const expected = String(SCENARIOS[round.scenario].expectedStatus)
  const where = `${round.scenario} round ${round.round}`
  const failures: string[] = []
  for (const [code, count] of Object.entries(round.statusCodes)) {
    if (code !== expected && count > 0) failures.push(`${where}: ${count} responses with status ${code} (expected only ${expected})`)
  }
  for (const [code, count] of Object.entries(round.server.statusCodes)) {
    if (code !== expected && count > 0) failures.push(`${where}: the server answered ${count} requests with ${code} (expected only ${expected})`)
  }
  if (round.errors > 0) failures.push(`${where}: ${round.errors} connection errors (${round.timeouts} timeouts)`)
  if (round.requests === 0) failures.push(`${where}: no request completed`)
  return failures
}

export function summarize (rounds: readonly RoundResult[], backend: string, listingUsers: Partial<Record<ListingSize, number>> = {}): { scenarios: ScenarioSummary[], failures: string[] } {
  const failures = rounds.flatMap(roundFailures)
  const partial = new Map<ScenarioName, ScenarioSummary>()
  for (const name of SCENARIO_NAMES) {
    const mine = rounds.filter((round) => round.scenario === name && round.round > 0)
    if (mine.length === 0) continue
    const commandsByName: Record<string, number> = {}
    const roundTrips: Record<string, number> = {}
    let responses = 0
    for (const round of mine) {
      addInto(commandsByName, round.server.commands)
      addInto(roundTrips, round.server.roundTrips)
      responses += round.server.responses
    }
    const totalCommands = Object.values(commandsByName).reduce((sum, count) => sum + count, 0)
    const tripCounts = Object.entries(roundTrips).map(([trips, count]) => [Number(trips), count] as const)
    const typical = tripCounts.reduce((best, entry) => entry[1] > best[1] ? entry : best, [0, -1] as readonly [number, number])[0]
    const aboveTypical = tripCounts.filter(([trips]) => trips > typical).reduce((sum, [, count]) => sum + count, 0)
    for (const key of Object.keys(commandsByName)) commandsByName[key] = commandsByName[key]! / Math.max(responses, 1)
    const databaseRss = mine.map((round) => round.databaseRssPeakMb).filter((mb): mb is number => mb !== undefined)
    const listing = SCENARIOS[name].listing
    partial.set(name, {
      scenario: name,
      backend,
      rounds: mine.length,
      requestsPerSecond: median(mine.map((round) => round.requestsPerSecond)),
      p50Ms: median(mine.map((round) => round.latencyMs.p50)),
      p99Ms: median(mine.map((round) => round.latencyMs.p99)),
      rssPeakMb: Math.max(...mine.map((round) => round.rssPeakMb)),
      databaseRssPeakMb: databaseRss.length === 0 ? undefined : Math.max(...databaseRss),
      listingUsers: listing === undefined ? undefined : listingUsers[listing.size],
      commandsPerRequest: totalCommands / Math.max(responses, 1),
      commandsByName,
      sequentialRoundTrips: { typical, max: Math.max(0, ...tripCounts.map(([trips]) => trips)) },
      requestsAboveTypical: aboveTypical / Math.max(responses, 1),
      non2xx: mine.reduce((sum, round) => sum + round.non2xx, 0),
      ratioToBaseline: undefined,
      ratioToPeer: undefined
    })
  }
  for (const summary of partial.values()) {
    const scenario = SCENARIOS[summary.scenario]
    const baseline = scenario.baseline === undefined ? undefined : partial.get(scenario.baseline)
    const peer = scenario.peer === undefined ? undefined : partial.get(scenario.peer)
    summary.ratioToBaseline = baseline === undefined ? undefined : summary.requestsPerSecond / baseline.requestsPerSecond
    summary.ratioToPeer = peer === undefined ? undefined : summary.requestsPerSecond / peer.requestsPerSecond
  }
  return { scenarios: [...partial.values()], failures }
}

const RSS_LIMIT_MB = 150
/** Throughput with METRICS=true over the same assigns without (issue 13). */
export const METRICS_OVERHEAD_FLOOR = 0.95
/** "About flat" from 1k to 50k users: the 50k row's p99 and RSS within these factors of the 1k row's. */
export const LISTING_P99_FLAT_FACTOR = 2
export const LISTING_RSS_FLAT_FACTOR = 1.25

/** One listing page kind at both sizes, side by side. */
export interface ListingComparison {
  page: ListingPageKind
  small: ScenarioSummary
  large: ScenarioSummary
  /** 50k over 1k. */
  requestsPerSecondRatio: number
  p99Ratio: number
  rssRatio: number
}

export function listingComparisons (scenarios: readonly ScenarioSummary[]): ListingComparison[] {
  const by = new Map(scenarios.map((summary) => [summary.scenario, summary]))
  const rows: ListingComparison[] = []
  for (const page of LISTING_PAGE_KINDS) {
    const small = by.get(listingScenarioName(page, '1k'))
    const large = by.get(listingScenarioName(page, '50k'))
    if (small === undefined || large === undefined) continue
    rows.push({
      page,
      small,
      large,
      requestsPerSecondRatio: large.requestsPerSecond / small.requestsPerSecond,
      p99Ratio: large.p99Ms / small.p99Ms,
      rssRatio: large.rssPeakMb / small.rssPeakMb
    })
  }
  return rows
}

/** Round trips and commands of a scenario, as the target details show them. */
export function databaseWork (summary: ScenarioSummary): string {
  const byName = Object.entries(summary.commandsByName).map(([name, count]) => `${name} ${count.toFixed(3)}`).join(', ')
  return `${summary.sequentialRoundTrips.typical} round trips typical (max ${summary.sequentialRoundTrips.max}, ${(summary.requestsAboveTypical * 100).toFixed(2)}% above), ` +
    `${summary.commandsPerRequest.toFixed(3)} commands/request (${byName})`
}

export function checkTargets (scenarios: readonly ScenarioSummary[]): TargetCheck[] {
  const by = new Map(scenarios.map((summary) => [summary.scenario, summary]))
  const checks: TargetCheck[] = []
  const ours = by.get('ours')
  const baseline = by.get('baseline')
  const peer = by.get('peer')
  const x = (value: number | undefined): string => value === undefined ? 'n/a' : `${value.toFixed(2)}x`
  if (ours !== undefined && baseline !== undefined) {
    checks.push({ target: 'ours >= 0.85x baseline throughput', met: ours.ratioToBaseline! >= 0.85, detail: `${ours.requestsPerSecond.toFixed(0)} vs ${baseline.requestsPerSecond.toFixed(0)} req/s = ${x(ours.ratioToBaseline)}` })
    checks.push({ target: 'ours p99 <= 2x baseline p99', met: ours.p99Ms <= 2 * baseline.p99Ms, detail: `${ours.p99Ms} vs ${baseline.p99Ms} ms = ${x(ours.p99Ms / baseline.p99Ms)}` })
  }
  const withMetrics = by.get('ours-metrics')
  if (ours !== undefined && withMetrics !== undefined) {
    checks.push({ target: `metrics on >= ${METRICS_OVERHEAD_FLOOR}x metrics off`, met: withMetrics.ratioToBaseline! >= METRICS_OVERHEAD_FLOOR, detail: `${withMetrics.requestsPerSecond.toFixed(0)} vs ${ours.requestsPerSecond.toFixed(0)} req/s = ${x(withMetrics.ratioToBaseline)}; p99 ${withMetrics.p99Ms} vs ${ours.p99Ms} ms` })
  }
  if (ours !== undefined && peer !== undefined) {
    checks.push({ target: 'ours > peer throughput', met: ours.requestsPerSecond > peer.requestsPerSecond, detail: `${ours.requestsPerSecond.toFixed(0)} vs ${peer.requestsPerSecond.toFixed(0)} req/s = ${x(ours.ratioToPeer)}` })
  }
  if (ours !== undefined) {
    // The ownership rules add the claim's findAndModify to the parallel reads: one command more, no round trip more.
    checks.push({
      target: 'assign: <= 2 sequential round trips, <= 4 commands',
      met: ours.sequentialRoundTrips.typical <= 2 && ours.commandsPerRequest <= 4.05,
      detail: databaseWork(ours)
    })
  }
  for (const kind of ['401', '403', '400'] as const) {
    const through = by.get(`ours-${kind}`)
    const bare = by.get(`bare-${kind}`)
    if (through === undefined || bare === undefined) continue
    checks.push({ target: `${kind} rejections >= 0.7x bare route`, met: through.ratioToBaseline! >= 0.7, detail: `${through.requestsPerSecond.toFixed(0)} vs ${bare.requestsPerSecond.toFixed(0)} req/s = ${x(through.ratioToBaseline)}` })
  }
  const oursLookup = by.get('ours-lookup')
  const bareLookup = by.get('bare-lookup')
  if (oursLookup !== undefined && bareLookup !== undefined) {
    checks.push({ target: 'lookup >= 0.9x bare route', met: oursLookup.ratioToBaseline! >= 0.9, detail: `${oursLookup.requestsPerSecond.toFixed(0)} vs ${bareLookup.requestsPerSecond.toFixed(0)} req/s = ${x(oursLookup.ratioToBaseline)}` })
  }
  const cachedLookup = by.get('ours-lookup-cached')
  if (cachedLookup !== undefined && bareLookup !== undefined) {
    checks.push({ target: 'cached lookup >= 5x bare route', met: cachedLookup.ratioToBaseline! >= 5, detail: `${cachedLookup.requestsPerSecond.toFixed(0)} vs ${bareLookup.requestsPerSecond.toFixed(0)} req/s = ${x(cachedLookup.ratioToBaseline)}` })
  }
  if (cachedLookup !== undefined) {
    checks.push({ target: 'cached lookup p99 < 5 ms', met: cachedLookup.p99Ms < 5, detail: `p99 ${cachedLookup.p99Ms} ms` })
  }
  if (oursLookup !== undefined) {
    checks.push({
      target: 'lookup: 1 sequential round trip, 1 command',
      met: oursLookup.sequentialRoundTrips.typical === 1 && oursLookup.sequentialRoundTrips.max === 1 && Math.abs(oursLookup.commandsPerRequest - 1) < 0.005,
      detail: databaseWork(oursLookup)
    })
  }
  for (const row of listingComparisons(scenarios)) {
    const sizes = `${row.small.listingUsers ?? '?'} → ${row.large.listingUsers ?? '?'} users`
    checks.push({
      target: `list-${row.page}: p99 at 50k <= ${LISTING_P99_FLAT_FACTOR}x at 1k`,
      met: row.p99Ratio <= LISTING_P99_FLAT_FACTOR,
      detail: `${row.small.p99Ms} → ${row.large.p99Ms} ms = ${x(row.p99Ratio)} (${sizes}); req/s ${row.small.requestsPerSecond.toFixed(0)} → ${row.large.requestsPerSecond.toFixed(0)} = ${x(row.requestsPerSecondRatio)}`
    })
    checks.push({
      target: `list-${row.page}: server RSS at 50k <= ${LISTING_RSS_FLAT_FACTOR}x at 1k`,
      met: row.rssRatio <= LISTING_RSS_FLAT_FACTOR,
      detail: `${row.small.rssPeakMb.toFixed(0)} → ${row.large.rssPeakMb.toFixed(0)} MB = ${x(row.rssRatio)}`
    })
    checks.push({
      target: `list-${row.page}: the same database work at 1k and 50k`,
      met: Math.abs(row.large.commandsPerRequest - row.small.commandsPerRequest) < 0.05 && row.large.sequentialRoundTrips.typical === row.small.sequentialRoundTrips.typical,
      detail: `1k: ${databaseWork(row.small)}; 50k: ${databaseWork(row.large)}`
    })
  }
  const oursRows = scenarios.filter((summary) => ['ours', 'ours-metrics', 'ours-tracing', 'ours-cached'].includes(SCENARIOS[summary.scenario].server))
  if (oursRows.length > 0) {
    const oursRss = Math.max(...oursRows.map((summary) => summary.rssPeakMb))
    checks.push({ target: `ours RSS under load <= ${RSS_LIMIT_MB} MB`, met: oursRss <= RSS_LIMIT_MB, detail: `peak ${oursRss.toFixed(1)} MB` })
  }
  return checks
}
