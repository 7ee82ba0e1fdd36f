/**
 * Contract fuzzing: schemathesis (pinned, in a git-ignored .venv/) against the
 * standalone server on a FerretDB we start, with the demo data seeded so the
 * contract's own examples (demo organization and user ids) reach real
 * documents. Checks: no 5xx, status codes, content types and bodies as the
 * document says. Bounded per operation (FUZZ_MAX_EXAMPLES, default 150) and in
 * wall-clock time (FUZZ_MAX_TIME_S, default 150).
 *
 *   npx tsx scripts/reliability/fuzz.ts
 */
import { spawnSync, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, rm, writeFile } from 'node:fs/promises'
import { ObjectId } from 'mongodb'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { DEMO_ADMIN_ID, DEMO_ORGANIZATION_ID, DEMO_USER_ID, seedDemoData } from '../../server/development.js'
import { mintToken } from '../../tools/tokens.js'
import { exited } from './children.js'
import { withDb } from './consistency.js'
import { createFerret } from './database-process.js'
import { envNumber, finish, log } from './report.js'
import { JWT_SECRET, startServer } from './server-process.js'

export const SCHEMATHESIS_VERSION = '4.32.5'
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const VENV = join(ROOT, '.venv')
const SCHEMATHESIS = join(VENV, 'bin', 'schemathesis')
const BASELINE = join(ROOT, 'scripts', 'reliability', 'schemathesis-baseline.json')

function ensureSchemathesis (): void {
  const installed = existsSync(SCHEMATHESIS) && spawnSync(SCHEMATHESIS, ['--version'], { encoding: 'utf8' }).stdout.includes(SCHEMATHESIS_VERSION)
  if (installed) return
  const python = ['python3.11', 'python3'].find((name) => spawnSync(name, ['--version']).status === 0)
  if (python === undefined) throw new Error('no python3 to install schemathesis with')
  log(`installing schemathesis ${SCHEMATHESIS_VERSION} into .venv/ with ${python}`)
  if (!existsSync(join(VENV, 'bin', 'pip'))) {
    const venv = spawnSync(python, ['-m', 'venv', VENV], { stdio: 'inherit' })
    if (venv.status !== 0) throw new Error('python -m venv failed')
  }
  const pip = spawnSync(join(VENV, 'bin', 'pip'), ['install', '--quiet', '--disable-pip-version-check', `schemathesis==${SCHEMATHESIS_VERSION}`], { stdio: 'inherit' })
  if (pip.status !== 0) throw new Error('pip install schemathesis failed')
}

ensureSchemathesis()
const maxExamples = envNumber('FUZZ_MAX_EXAMPLES', 150)
const maxTimeS = envNumber('FUZZ_MAX_TIME_S', 150)
const seed = envNumber('FUZZ_SEED', Math.floor(Math.random() * 1e9))
// One worker: with two, CPython 3.11's ast module (hypothesis parses the source of schemathesis's
// filter lambdas to describe them) raced between the threads and failed whole coverage-phase
// operations with "SystemError: AST constructor recursion depth mismatch" (2 of 8, twice in a
// row); one worker also generated more cases in the same time on this 2-core machine.
const workers = envNumber('FUZZ_WORKERS', 1)

const ferret = await createFerret()
const uri = ferret.uri('fuzz')
// Request logging on: the server's own "request completed" lines count what was sent and answered.
const server = await startServer({ MONGODB_URI: uri, JWT_SECRET, REQUEST_LOGGING: 'true' })
// The demo data (the contract's example ids) plus 20 more users in the demo organization.
const userIds = await withDb(uri, async (db) => {
  await seedDemoData(db, 'users', 'organizations')
  const more = Array.from({ length: 20 }, (_, i) => ({ _id: new ObjectId(), organizationId: new ObjectId(DEMO_ORGANIZATION_ID), name: `fuzz ${i}`, role: 'AGENT' }))
  await db.collection('users').insertMany(more)
  return [DEMO_USER_ID, ...more.map((user) => user._id.toHexString())]
})
const token = await mintToken(JWT_SECRET, { sub: DEMO_ADMIN_ID, role: 'SUPERADMIN' }, '2h')
const reportDir = join(ROOT, '.cache', 'reliability', 'fuzz')
await rm(reportDir, { recursive: true, force: true })
await mkdir(reportDir, { recursive: true })

// Most generated ids would be random (404 at once); dictionaries steer a share of the
// cases to the seeded organization and users so the writes and lists really run.
const configFile = join(reportDir, 'schemathesis.toml')
await writeFile(configFile, [
  '[dictionaries.organizations]',
  `values = ["${DEMO_ORGANIZATION_ID}"]`,
  '[dictionaries.users]',
  `values = [${userIds.map((id) => `"${id}"`).join(', ')}]`,
  '[dictionaries.phones]',
  'values = ["+14165550100", "+14165550101", "+14165550102", "+442071838750", "+61291234567"]',
  '[parameters]',
  '"path.organizationId" = { dictionary = "organizations", probability = 0.7 }',
  '"query.targetUserId" = { dictionary = "users", probability = 0.5 }',
  '"body.targetUserId" = { dictionary = "users", probability = 0.7 }',
  '"body.phoneNumber" = { dictionary = "phones", probability = 0.5 }',
  // The transfer's two users and the inbound-route lookup's number.
  '"body.fromUserId" = { dictionary = "users", probability = 0.7 }',
  '"body.toUserId" = { dictionary = "users", probability = 0.7 }',
  '"path.phoneNumber" = { dictionary = "phones", probability = 0.5 }',
  ''
].join('\n'))

const checks = ['not_a_server_error', 'status_code_conformance', 'content_type_conformance', 'response_schema_conformance']
const args = [
  '--config-file', configFile,
  'run', join(ROOT, 'schemas', 'openapi.yaml'),
  '--url', server.base,
  '--header', `Authorization: Bearer ${token}`,
  '--checks', checks.join(','),
  '--phases', 'examples,coverage,fuzzing',
  '--max-examples', String(maxExamples),
  '--max-time', String(maxTimeS),
  '--seed', String(seed),
  '--workers', String(workers),
  '--request-timeout', '10',
  '--continue-on-failure',
  '--suppress-health-check', 'all',
  '--report', 'junit,ndjson',
  '--report-dir', reportDir,
  // Failures already turned into todo regression tests (test/server/standalone-contract.test.ts);
  // anything else fails the run. FUZZ_BASELINE_UPDATE=1 records the failures of this run into it.
  '--baseline', BASELINE,
  ...(process.env['FUZZ_BASELINE_UPDATE'] === '1' ? ['--baseline-update'] : [])
]
log(`schemathesis ${SCHEMATHESIS_VERSION}: ${maxExamples} examples per operation, ${maxTimeS} s budget, seed ${seed}, checks ${checks.join(', ')}`)
const started = Date.now()
// cwd in the git-ignored report folder: schemathesis writes its .schemathesis/ cache there.
const child = spawn(SCHEMATHESIS, args, { cwd: reportDir, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } })
let output = ''
// schemathesis closes with a pytest-style `==== 1 warning in 100.01s ====` banner, which CI's
// result reader takes for a pytest run that ran nothing; the banner loses its rules here, and
// the run prints its own `fuzz: N passed, N failed` line.
child.stdout.on('data', (chunk: Buffer) => {
  const text = chunk.toString('utf8')
  output += text
  process.stdout.write(text.replace(/^=+ (.+?) =+$/gm, 'schemathesis: $1'))
})
child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString('utf8'); process.stderr.write(chunk) })
// Hard wall-clock bound on top of --max-time: the phases without a time budget still stop.
const killer = setTimeout(() => child.kill('SIGKILL'), (maxTimeS + 90) * 1000)
const { code } = await exited(child)
clearTimeout(killer)
const seconds = (Date.now() - started) / 1000

// What the server answered, by status code, from its own request log.
const byStatus: Record<string, number> = {}
let requests = 0
for (const line of server.logs) {
  const status = (line['res'] as { statusCode?: number } | undefined)?.statusCode
  if (line['msg'] !== 'request completed' || status === undefined) continue
  requests++
  byStatus[String(status)] = (byStatus[String(status)] ?? 0) + 1
}
const serverErrors = Object.entries(byStatus).filter(([status]) => Number(status) >= 500).reduce((sum, [, count]) => sum + count, 0)
const testCases = /Test cases:\s*\n?\s*([^\n]*)/.exec(output)?.[1]?.trim() ?? ''
const failuresSection = /Failures:\n([\s\S]*?)\n\n/.exec(output)?.[1]?.trim() ?? 'none'

server.child.kill('SIGTERM')
await exited(server.child)
await ferret.destroy()

const problems: string[] = []
if (code !== 0) problems.push(`schemathesis exited with ${String(code)} (failures above; reproduce with FUZZ_SEED=${seed})`)
if (serverErrors > 0) problems.push(`${serverErrors} responses with a 5xx status`)
const caseCounts = /(\d+) generated, (\d+) passed(?:, (\d+) failed)?/.exec(testCases)
const fuzzLine = caseCounts === null ? undefined : `fuzz: ${caseCounts[2]!} passed, ${caseCounts[3] ?? '0'} failed`
if (fuzzLine !== undefined) log(fuzzLine)
finish('fuzz', { schemathesis: SCHEMATHESIS_VERSION, seed, maxExamples, seconds, requests, byStatus, testCases, knownOrNewFailures: failuresSection, serverErrors }, problems)
