/** What a script reads from its environment and prints: settings, log lines, measurements, the RESULT/PASS/FAIL ending. */
import { existsSync, readFileSync } from 'node:fs'

export function log (line: string): void {
  process.stdout.write(`${line}\n`)
}

export function envNumber (name: string, fallback: number): number {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return fallback
  const value = Number(raw)
  if (!Number.isFinite(value)) throw new Error(`${name}=${raw} is not a number`)
  return value
}

/** Resident set size in bytes, from /proc (Linux). */
export function rssOf (pid: number): number | undefined {
  const status = `/proc/${pid}/status`
  if (!existsSync(status)) return undefined
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(status, 'utf8'))
  return match?.[1] === undefined ? undefined : Number(match[1]) * 1024
}

export function percentile (values: readonly number[], p: number): number {
  if (values.length === 0) return 0
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0
}

/** Fails the script with every problem listed; prints the figures either way. */
export function finish (name: string, figures: Record<string, unknown>, problems: string[]): never {
  log(`RESULT ${name} ${JSON.stringify(figures)}`)
  if (problems.length > 0) {
    log(`FAIL ${name}: ${problems.length} problem(s)`)
    for (const problem of problems.slice(0, 30)) log(`  - ${problem}`)
    process.exit(1)
  }
  log(`PASS ${name}`)
  process.exit(0)
}
