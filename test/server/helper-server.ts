/**
 * The standalone server (server/server.ts) as a child process, for the tests that run
 * it as a user would and for scripts/reliability. It lives beside helper-database.ts rather
 * than in scripts/ so tests never depend on the reliability scripts (which already use the test
 * helpers). It runs as `npm start` does, `node --import tsx --import tracing/preload.ts server.ts`:
 * one process, so a SIGTERM or SIGINT sent to the child reaches the server itself (not npm or the
 * tsx CLI), and its exit code is the server's. A server in development mode keeps its data in a
 * fresh temp folder unless DEV_DATA_DIR is given, so parallel tests never share (or lock) one.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import http from 'node:http'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { freePort } from '../../dev-database/index.js'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const SERVER = join(ROOT, 'server', 'server.ts')
const TRACING_PRELOAD = pathToFileURL(join(ROOT, 'server', 'tracing', 'preload.ts')).href

/** Variables to set in the child's copy of our environment; undefined removes one. */
export type ServerEnv = Record<string, string | undefined>

export interface StandaloneProcess {
  child: ChildProcess
  pid: number
  /** Parsed pino lines (JSON) the server printed on stdout so far; other lines as { msg }. */
  logs: Array<Record<string, unknown>>
  /** Everything it printed on stderr. */
  stderr: string[]
  /** Everything it printed so far, stdout and stderr in the order it arrived. */
  output: () => string
}

export interface StandaloneServer extends StandaloneProcess {
  port: number
  /** http://127.0.0.1:port */
  base: string
}

export interface StartOptions {
  startTimeoutMs?: number
  /** Called with the child as soon as it exists, e.g. to kill it if the caller dies before it listens. */
  onSpawn?: (child: ChildProcess) => void
  /** The server's command line, e.g. ['--fresh']. */
  args?: readonly string[]
}

/** Spawns the server with `env` (and command-line `args`) and collects what it prints; does not wait for anything. */
export function spawnStandalone (env: ServerEnv, args: readonly string[] = []): StandaloneProcess {
  const childEnv: NodeJS.ProcessEnv = { ...process.env }
  for (const [key, value] of Object.entries(env)) {
    if (value === undefined) delete childEnv[key]
    else childEnv[key] = value
  }
  const tempDataDir = 'DEV_DATA_DIR' in env ? undefined : mkdtempSync(join(tmpdir(), 'standalone-dev-data-'))
  if (tempDataDir !== undefined) childEnv['DEV_DATA_DIR'] = tempDataDir
  const child = spawn(process.execPath, ['--import', 'tsx', '--import', TRACING_PRELOAD, SERVER, ...args], { cwd: ROOT, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] })
  if (tempDataDir !== undefined) child.once('close', () => { rmSync(tempDataDir, { recursive: true, force: true }) })
  const logs: Array<Record<string, unknown>> = []
  const stderr: string[] = []
  const output: string[] = []
  let pending = ''
  child.stdout.on('data', (chunk: Buffer) => {
    const text = chunk.toString('utf8')
    output.push(text)
    pending += text
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
  child.stderr.on('data', (chunk: Buffer) => {
    const text = chunk.toString('utf8')
    stderr.push(text)
    output.push(text)
  })
  return { child, pid: child.pid ?? -1, logs, stderr, output: () => output.join('') }
}

/** Any HTTP answer means it listens; a fresh connection each time (agent: false), none left open. */
async function answers (url: string): Promise<boolean> {
  return await new Promise((resolve) => {
    const request = http.get(url, { agent: false, timeout: 5000 }, (response) => {
      response.resume()
      resolve(true)
    })
    request.once('timeout', () => request.destroy(new Error('no answer within 5 s')))
    request.once('error', () => resolve(false))
  })
}

/**
 * Starts the server on a free 127.0.0.1 port (known in advance, so any LOG_LEVEL works)
 * and resolves once it answers HTTP.
 */
export async function startStandalone (env: ServerEnv, options: StartOptions = {}): Promise<StandaloneServer> {
  const startTimeoutMs = options.startTimeoutMs ?? 90_000
  const port = await freePort()
  const started = spawnStandalone({ PORT: String(port), HOST: '127.0.0.1', ...env }, options.args)
  options.onSpawn?.(started.child)
  const server: StandaloneServer = { ...started, port, base: `http://127.0.0.1:${port}` }
  const deadline = Date.now() + startTimeoutMs
  for (;;) {
    if (server.child.exitCode !== null) throw new Error(`server exited with ${server.child.exitCode}: ${server.stderr.join('').slice(-2000)} ${JSON.stringify(server.logs.slice(-5))}`)
    if (await answers(`${server.base}/health`)) return server
    if (Date.now() > deadline) throw new Error(`server did not listen within ${startTimeoutMs} ms`)
    await sleep(100)
  }
}
