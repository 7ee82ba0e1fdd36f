/** The Markdown table and the result files (bench/results/latest-<backend>.json/.md). */
import { mkdir, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { BenchResult } from './harness.js'
import { listingComparisons } from './summary.js'

function fixed (value: number | undefined, digits: number): string {
  return value === undefined || !Number.isFinite(value) ? '–' : value.toFixed(digits)
}

export function markdownReport (result: BenchResult): string {
  const { machine, database, settings } = result
  const lines = [
    `### ${database.backend} ${database.serverVersion}`,
    '',
    `${machine.cpus} × ${machine.cpuModel}, ${machine.totalMemoryMb} MB, Node ${machine.node} (${machine.platform}); ` +
      `${settings.rounds} rounds × ${settings.durationSeconds} s per scenario (interleaved), ${settings.connections} connections ` +
      `(${settings.listingConnections} for the listing pages), ` +
      `${settings.users} users, ${settings.warmupSeconds} s warm-up; ${result.finishedAt.slice(0, 10)}.`,
    '',
    '| scenario | backend | req/s | p50 ms | p99 ms | RSS MB | database RSS MB | commands/request | sequential round trips | ratio to baseline | ratio to peer |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |'
  ]
  for (const summary of result.scenarios) {
    lines.push(`| ${summary.scenario} | ${summary.backend} | ${fixed(summary.requestsPerSecond, 0)} | ${fixed(summary.p50Ms, 0)} | ${fixed(summary.p99Ms, 0)} | ` +
      `${fixed(summary.rssPeakMb, 0)} | ${fixed(summary.databaseRssPeakMb, 0)} | ${fixed(summary.commandsPerRequest, 2)} | ${summary.sequentialRoundTrips.typical} (max ${summary.sequentialRoundTrips.max}) | ` +
      `${fixed(summary.ratioToBaseline, 2)} | ${fixed(summary.ratioToPeer, 2)} |`)
  }
  lines.push('', 'Rejection rows (`ours-4xx`) are compared with the bare route answering the same body (`bare-4xx`), ' +
    'the inbound-route lookup (`ours-lookup`) with a bare route doing the same users query (`bare-lookup`), ' +
    'and the assigns with METRICS=true (`ours-metrics`) or with OpenTelemetry tracing on (`ours-tracing`, OTLP/HTTP to a loopback receiver that discards the spans) with the same assigns without (`ours`), in "ratio to baseline"; ' +
    'a 50k listing row with the same page at 1k. Database RSS: the database process (mongo-java-server or FerretDB started by the bench), when found.', '')
  const comparisons = listingComparisons(result.scenarios)
  if (result.listings.length > 0) {
    lines.push('#### Listing at scale', '')
    for (const listing of result.listings) {
      lines.push(`- ${listing.size}: ${listing.users} users × 4 numbers (database ${listing.databaseName}) seeded in ${(listing.seedMs / 1000).toFixed(1)} s (database RSS then ${fixed(listing.databaseRssMb, 0)} MB); ` +
        `walk to the middle ${listing.walkPages} pages in ${(listing.walkMs / 1000).toFixed(1)} s, middle cursors at entries ${listing.middlePositions[0] ?? '–'}–${listing.middlePositions[listing.middlePositions.length - 1] ?? '–'}`)
    }
    lines.push('')
  }
  if (comparisons.length > 0) {
    lines.push(
      '| page | users | req/s | 50k/1k | p50 ms | p99 ms | 50k/1k | RSS MB | 50k/1k | database RSS MB | commands/request | round trips |',
      '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |')
    for (const row of comparisons) {
      const commands = (summary: typeof row.small): string => Object.entries(summary.commandsByName).map(([name, count]) => `${name} ${count.toFixed(2)}`).join(', ')
      lines.push(`| ${row.page} | ${row.small.listingUsers ?? '–'} | ${fixed(row.small.requestsPerSecond, 0)} | | ${fixed(row.small.p50Ms, 0)} | ${fixed(row.small.p99Ms, 0)} | | ${fixed(row.small.rssPeakMb, 0)} | | ${fixed(row.small.databaseRssPeakMb, 0)} | ${fixed(row.small.commandsPerRequest, 2)} (${commands(row.small)}) | ${row.small.sequentialRoundTrips.typical} (max ${row.small.sequentialRoundTrips.max}) |`)
      lines.push(`| ${row.page} | ${row.large.listingUsers ?? '–'} | ${fixed(row.large.requestsPerSecond, 0)} | ${fixed(row.requestsPerSecondRatio, 2)} | ${fixed(row.large.p50Ms, 0)} | ${fixed(row.large.p99Ms, 0)} | ${fixed(row.p99Ratio, 2)} | ${fixed(row.large.rssPeakMb, 0)} | ${fixed(row.rssRatio, 2)} | ${fixed(row.large.databaseRssPeakMb, 0)} | ${fixed(row.large.commandsPerRequest, 2)} (${commands(row.large)}) | ${row.large.sequentialRoundTrips.typical} (max ${row.large.sequentialRoundTrips.max}) |`)
    }
    lines.push('')
  }
  lines.push('| target | met | figures |', '| --- | --- | --- |')
  for (const check of result.targets) lines.push(`| ${check.target} | ${check.met ? 'yes' : '**no**'} | ${check.detail} |`)
  if (result.failures.length > 0) {
    lines.push('', '**Unexpected responses:**', '', ...result.failures.map((failure) => `- ${failure}`))
  }
  return `${lines.join('\n')}\n`
}

async function writeAtomically (path: string, text: string): Promise<void> {
  await writeFile(`${path}.tmp`, text)
  await rename(`${path}.tmp`, path)
}

/** Writes `<dir>/<name>.json` and `<dir>/<name>.md`; returns both paths. */
export async function writeResults (result: BenchResult, dir: string, name = `latest-${result.database.backend}`): Promise<{ json: string, markdown: string }> {
  await mkdir(dir, { recursive: true })
  const json = join(dir, `${name}.json`)
  const markdown = join(dir, `${name}.md`)
  await writeAtomically(json, `${JSON.stringify(result, null, 2)}\n`)
  await writeAtomically(markdown, markdownReport(result))
  return { json, markdown }
}
