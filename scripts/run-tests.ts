/**
 * npm test: installs Debian's chromium for the browser test when it is missing (ensure-chromium.ts),
 * starts a MongoDB-wire test database (see dev-database), runs tap against it
 * with MONGODB_URI set, stops the database and exits with tap's exit code. It ends with the plain
 * line `tests: N passed, N failed, N skipped`, read from tap's own closing summary.
 * TEST_MONGO_BACKEND=mongod|ferretdb|java|uri forces a backend; extra arguments go to tap.
 */
import { spawn } from 'node:child_process'
import { constants } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseBackendName, startMongo } from '../dev-database/index.js'
import { ensureChromium } from './ensure-chromium.js'
import { FailureDigest } from './tap-failures.js'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const tapBin = join(root, 'node_modules', '.bin', 'tap')

await ensureChromium()
const mongo = await startMongo({ backend: parseBackendName(process.env['TEST_MONGO_BACKEND']) })
console.log(`test database: ${mongo.backend} ${mongo.serverVersion} at ${mongo.uri}`)

const tap = spawn(tapBin, process.argv.slice(2), {
  cwd: root,
  stdio: ['inherit', 'pipe', 'inherit'],
  env: {
    ...process.env,
    MONGODB_URI: mongo.uri,
    TEST_MONGO_BACKEND_NAME: mongo.backend,
    TEST_MONGO_SERVER_VERSION: mongo.serverVersion,
  },
})

// tap's output passes through unchanged; its tail is kept for the closing summary, and each
// failure is kept too, because CI logs are often cut to their last lines (after the coverage table).
let tail = ''
const failures = new FailureDigest()
tap.stdout.on('data', (chunk: Buffer) => {
  process.stdout.write(chunk)
  const text = chunk.toString('utf8')
  tail = (tail + text).slice(-4096)
  failures.read(text)
})

// On Ctrl-C / kill: pass the signal to tap and let it finish, then stop the database below.
// (The launcher's own handler has already stopped a server it started; stop() is idempotent.)
let interrupted: NodeJS.Signals | undefined
const forward = (signal: NodeJS.Signals): void => {
  if (interrupted !== undefined) tap.kill('SIGKILL') // a second signal: don't wait any longer
  interrupted = signal
  tap.kill(signal)
}
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, forward)

const exitCode = await new Promise<number>((resolve) => {
  tap.once('error', (error) => {
    console.error(`could not run tap (${tapBin}): ${error.message}`)
    resolve(1)
  })
  tap.once('exit', (code, signal) => {
    resolve(code ?? 128 + (signal !== null ? constants.signals[signal] : 1))
  })
})

const digest = failures.report()
if (digest !== '') console.log(digest)
const summary = closingSummary(tail)
if (summary !== undefined) console.log(summary)

try {
  await mongo.stop()
} catch (error) {
  console.error(`stopping the test database failed: ${error instanceof Error ? error.message : String(error)}`)
}
process.exit(interrupted !== undefined && exitCode === 0 ? 128 + constants.signals[interrupted] : exitCode)

/**
 * tap closes with `# { total: 2844, pass: 2830, fail: 1, todo: 13 }`. Test-result readers know the
 * plain `N passed, N failed` form, so restate it; todo and skip count as skipped.
 */
function closingSummary (output: string): string | undefined {
  const match = /# \{ (total: \d+(?:, \w+: \d+)*) \}\s*(?:# time=[\d.]+ms\s*)?$/.exec(output.trimEnd() + '\n')
  if (match === null) return undefined
  const counts = Object.fromEntries(match[1]!.split(', ').map((pair) => {
    const [name, value] = pair.split(': ')
    return [name!, Number(value)]
  }))
  const count = (name: string): number => counts[name] ?? 0
  return `tests: ${count('pass')} passed, ${count('fail')} failed, ${count('todo') + count('skip')} skipped`
}
