/**
 * Shared machinery of the reliability scripts (fuzz, faults, soak, shutdown):
 * a FerretDB we start ourselves on a data folder we keep (so it can be killed
 * and restarted on the same data and port), the standalone server as a child
 * process, a tiny keep-alive HTTP client with one socket per worker, RSS
 * sampling, seeding and the end-of-run consistency check.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import http from 'node:http'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { MongoClient, ObjectId, type Db } from 'mongodb'
import { ensureFerretdb } from '../../src/embedded-mongo/ferretdb.js'
import { freePort } from '../../src/embedded-mongo/free-port.js'
import { readServerVersion } from '../../src/embedded-mongo/probe.js'
import { mintToken } from '../../src/standalone/development.js'

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
export const JWT_SECRET = 'reliability-secret-that-is-at-least-32-characters'
export const PROVIDERS = ['twilio', 'sinch', 'textgrid'] as const
export type Provider = typeof PROVIDERS[number]

export const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

export function log (line: string): void {
  process.stdout.write(`${line}\n`)
}

/** Every child we spawn is killed if the script dies, so nothing outlives a failed run. */
const children = new Set<ChildProcess>()
process.once('exit', () => { for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130))

function track (child: ChildProcess): ChildProcess {
  children.add(child)
  child.once('exit', () => children.delete(child))
  return child
}

export function exited (child: ChildProcess): Promise<{ code: number | null, signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode })
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
}

export function isAlive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

// --- FerretDB on a folder and port we control --------------------------------

export interface Ferret {
  port: number
  dir: string
  uri: (database: string) => string
  pid: () => number
  /** Starts (again) on the same folder and port; resolves once it answers a ping. */
  start: () => Promise<void>
  kill: (signal?: NodeJS.Signals) => Promise<void>
  /** Kills it and removes the data folder. */
  destroy: () => Promise<void>
}

export async function createFerret (): Promise<Ferret> {
  const binary = await ensureFerretdb((line) => log(`[ferretdb] ${line}`))
  const port = await freePort()
  const dir = await mkdtemp(join(tmpdir(), 'reliability-ferretdb-'))
  let child: ChildProcess | undefined
  const uri = (database: string): string => `mongodb://127.0.0.1:${port}/${database}`

  async function start (): Promise<void> {
    child = track(spawn(binary, [
      '--handler=sqlite', `--sqlite-url=file:${dir}/`, `--state-dir=${dir}`, '--telemetry=disable',
      `--listen-addr=127.0.0.1:${port}`, '--debug-addr=-', '--log-level=error'
    ], { cwd: dir, stdio: 'ignore' }))
    const deadline = Date.now() + 30_000
    for (;;) {
      try {
        await readServerVersion(uri('admin'), 1000)
        return
      } catch (error) {
        if (child.exitCode !== null || Date.now() > deadline) throw new Error(`FerretDB did not start on port ${port}: ${String(error)}`)
        await sleep(100)
      }
    }
  }

  async function kill (signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return
    const done = exited(child)
    child.kill(signal)
    await done
  }

  await start()
  return {
    port,
    dir,
    uri,
    pid: () => child?.pid ?? -1,
    start,
    kill,
    destroy: async () => {
      await kill('SIGKILL')
      await rm(dir, { recursive: true, force: true })
    }
  }
}

// --- the standalone server ---------------------------------------------------

export interface ServerProcess {
  child: ChildProcess
  pid: number
  port: number
  base: string
  /** Parsed pino lines (JSON) the server printed on stdout so far. */
  logs: Array<Record<string, unknown>>
  /** Everything it printed on stderr. */
  stderr: string[]
}

/**
 * Runs src/standalone/server.ts with node + tsx's loader: one process, so signals reach
 * the server itself (not npx or a tsx wrapper). Resolves once it listens.
 */
export async function startServer (env: Record<string, string | undefined>, startTimeoutMs = 90_000): Promise<ServerProcess> {
  const port = await freePort()
  const childEnv: NodeJS.ProcessEnv = { ...process.env, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'info', REQUEST_LOGGING: 'false' }
  delete childEnv['MONGODB_URI']
  for (const [key, value] of Object.entries(env)) {
    if (value === undefined) delete childEnv[key]
    else childEnv[key] = value
  }
  const child = track(spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src', 'standalone', 'server.ts')], { cwd: ROOT, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] }))
  const logs: Array<Record<string, unknown>> = []
  const stderr: string[] = []
  let pending = ''
  child.stdout?.on('data', (chunk: Buffer) => {
    pending += chunk.toString('utf8')
    const lines = pending.split('\n')
    pending = lines.pop() ?? ''
    for (const line of lines) {
      if (line.trim() === '') continue
      try {
        logs.push(JSON.parse(line) as Record<string, unknown>)
      } catch {
        logs.push({ msg: line })
      }
    }
  })
  child.stderr?.on('data', (chunk: Buffer) => { stderr.push(chunk.toString('utf8')) })
  const server: ServerProcess = { child, pid: child.pid ?? -1, port, base: `http://127.0.0.1:${port}`, logs, stderr }
  const deadline = Date.now() + startTimeoutMs
  for (;;) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}: ${stderr.join('').slice(-2000)} ${JSON.stringify(logs.slice(-5))}`)
    try {
      await call(server.base, 'GET', '/health', { timeoutMs: 5000 })
      return server // any HTTP answer: it listens
    } catch { /* not yet */ }
    if (Date.now() > deadline) throw new Error(`server did not listen within ${startTimeoutMs} ms`)
    await sleep(100)
  }
}

// --- HTTP client: one keep-alive socket per worker ----------------------------

export interface Answer {
  status: number
  body: unknown
  ms: number
  headers: http.IncomingHttpHeaders
}

export class RequestFailure extends Error {
  constructor (readonly code: string, readonly ms: number, message: string) {
    super(message)
  }
}

export function newAgent (): http.Agent {
  return new http.Agent({ keepAlive: true, maxSockets: 1 })
}

export async function call (
  base: string,
  method: string,
  path: string,
  options: { agent?: http.Agent | false, headers?: Record<string, string>, body?: unknown, timeoutMs?: number } = {}
): Promise<Answer> {
  const started = performance.now()
  const payload = options.body === undefined ? undefined : JSON.stringify(options.body)
  return await new Promise<Answer>((resolve, reject) => {
    const request = http.request(`${base}${path}`, {
      method,
      agent: options.agent ?? false,
      headers: {
        ...(payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)) }),
        ...options.headers
      },
      timeout: options.timeoutMs ?? 30_000
    }, (response) => {
      const chunks: Buffer[] = []
      response.on('data', (chunk: Buffer) => chunks.push(chunk))
      response.once('error', (error: NodeJS.ErrnoException) => reject(new RequestFailure(error.code ?? 'ERESPONSE', performance.now() - started, error.message)))
      response.once('end', () => {
        const text = Buffer.concat(chunks).toString('utf8')
        let body: unknown = text
        try { body = JSON.parse(text) } catch { /* not JSON: keep the text */ }
        resolve({ status: response.statusCode ?? 0, body, ms: performance.now() - started, headers: response.headers })
      })
    })
    request.once('timeout', () => request.destroy(Object.assign(new Error('client timeout'), { code: 'ETIMEDOUT_CLIENT' })))
    request.once('error', (error: NodeJS.ErrnoException) => reject(new RequestFailure(error.code ?? 'EREQUEST', performance.now() - started, error.message)))
    request.end(payload)
  })
}

export function isErrorBody (body: unknown): body is { error: string, details: string } {
  return typeof body === 'object' && body !== null &&
    typeof (body as Record<string, unknown>)['error'] === 'string' &&
    typeof (body as Record<string, unknown>)['details'] === 'string'
}

// --- data ----------------------------------------------------------------------

export interface Seeded {
  organizationId: string
  userIds: string[]
  adminId: string
  token: string
}

export async function seed (uri: string, userCount: number): Promise<Seeded> {
  const client = new MongoClient(uri, { serverSelectionTimeoutMS: 10_000 })
  try {
    const db = client.db()
    const organizationId = new ObjectId()
    const adminId = new ObjectId()
    await db.collection('organizations').insertOne({ _id: organizationId, name: 'Reliability' })
    const users = Array.from({ length: userCount }, (_, i) => ({ _id: new ObjectId(), organizationId, name: `user ${i}`, role: 'AGENT' }))
    await db.collection('users').insertMany([...users, { _id: adminId, organizationId, name: 'root', role: 'SUPERADMIN' }])
    const token = await mintToken(JWT_SECRET, { sub: adminId.toHexString(), role: 'SUPERADMIN' }, '2h')
    return { organizationId: organizationId.toHexString(), userIds: users.map((user) => user._id.toHexString()), adminId: adminId.toHexString(), token }
  } finally {
    await client.close()
  }
}

export async function withDb<T> (uri: string, use: (db: Db) => Promise<T>): Promise<T> {
  const client = new MongoClient(uri, { serverSelectionTimeoutMS: 10_000 })
  try {
    return await use(client.db())
  } finally {
    await client.close()
  }
}

/** Every user document: valid entries, no duplicate (provider, phoneNumber) anywhere, at most one default per provider. */
export async function consistencyCheck (uri: string): Promise<{ users: number, assignments: number, problems: string[] }> {
  return await withDb(uri, async (db) => {
    const problems: string[] = []
    const holders = new Map<string, string>()
    let assignments = 0
    const documents = await db.collection('users').find({}).toArray()
    for (const user of documents) {
      const id = String(user._id)
      const list: unknown = user['phoneNumbers']
      if (list === undefined) continue
      if (!Array.isArray(list)) { problems.push(`${id}: phoneNumbers is not an array`); continue }
      const defaults = new Map<string, number>()
      for (const entry of list as unknown[]) {
        assignments++
        const e = entry as Record<string, unknown>
        const shapeOk = typeof entry === 'object' && entry !== null &&
          PROVIDERS.includes(e['provider'] as Provider) &&
          typeof e['phoneNumber'] === 'string' && /^\+[1-9]\d{1,14}$/.test(e['phoneNumber']) &&
          typeof e['isDefault'] === 'boolean' && typeof e['isInboundEnabled'] === 'boolean' &&
          (e['label'] === undefined || (typeof e['label'] === 'string' && e['label'].length <= 64)) &&
          e['createdAt'] instanceof Date && e['updatedAt'] instanceof Date
        if (!shapeOk) { problems.push(`${id}: bad entry ${JSON.stringify(entry)}`); continue }
        const key = `${String(e['provider'])}|${String(e['phoneNumber'])}`
        const holder = holders.get(key)
        if (holder !== undefined) problems.push(`${key} held twice (${holder}, ${id})`)
        holders.set(key, id)
        if (e['isDefault'] === true) defaults.set(String(e['provider']), (defaults.get(String(e['provider'])) ?? 0) + 1)
      }
      for (const [provider, count] of defaults) if (count > 1) problems.push(`${id}: ${count} defaults for ${provider}`)
      if (typeof user['phoneNumbersRevision'] !== 'number') problems.push(`${id}: phoneNumbersRevision is ${String(user['phoneNumbersRevision'])}`)
    }
    return { users: documents.length, assignments, problems }
  })
}

// --- measurements --------------------------------------------------------------

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

export function envNumber (name: string, fallback: number): number {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return fallback
  const value = Number(raw)
  if (!Number.isFinite(value)) throw new Error(`${name}=${raw} is not a number`)
  return value
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
