/**
 * The harness side of a server child: fork, wait for its port, request/reply
 * over IPC, and sample its resident memory from /proc (IPC as a fallback).
 */
import { execFile, fork, type ChildProcess } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { promisify } from 'node:util'
import type { ChildReply, ParentRequest } from './protocol.js'
import type { ServerSettings } from './servers.js'
import type { ServerStats } from './tracing.js'

const CHILD_ENTRY = fileURLToPath(new URL('./child.ts', import.meta.url))
const ROOT = fileURLToPath(new URL('..', import.meta.url))
/** Where compileServers() writes the JavaScript the children run. */
export const COMPILED_DIR = join(ROOT, '.cache', 'bench-dist')
const READY_TIMEOUT_MS = 60_000

export interface ServerChild {
  kind: ServerSettings['kind']
  pid: number
  port: number
  reset: () => Promise<void>
  stats: () => Promise<ServerStats>
  /** Waits until the server has no request in flight; answers how many it still had at the timeout (0 normally) and the wait. */
  idle: () => Promise<{ inFlight: number, waitedMs: number }>
  /** The server's event-loop delay since the last reset, in ms. */
  eventLoopDelay: () => Promise<{ maxMs: number, p99Ms: number }>
  /** Resident set size now, in bytes. */
  rss: () => Promise<number>
  /** Samples RSS every `intervalMs` until the returned function is called; that returns the peak in bytes. */
  sampleRss: (intervalMs?: number) => () => Promise<number>
  stop: () => Promise<void>
}

export interface ForkOptions {
  /** Write a V8 CPU profile of the child into this folder (`node --cpu-prof`). */
  cpuProfileDir?: string | undefined
  /**
   * 'compiled': run the JavaScript of compileServers() with plain node, so the
   * child's RSS is the server's own. 'tsx': run the TypeScript through the tsx
   * loader (no build step; its loader thread adds some 40 MB of RSS).
   */
  runtime?: 'compiled' | 'tsx' | undefined
  /**
   * Trace with the standalone server's own preload (server/tracing/preload.ts), exporting
   * OTLP/HTTP to this endpoint; undefined: no preload, nothing of OpenTelemetry loaded.
   */
  tracingEndpoint?: string | undefined
}

/** Compiles bench/, src/, plugins/ and schemas/ (bench/tsconfig.json, incremental) into COMPILED_DIR. */
export async function compileServers (): Promise<void> {
  const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc')
  await promisify(execFile)(process.execPath, [tsc, '-p', join(ROOT, 'bench', 'tsconfig.json')], { cwd: ROOT })
}

/** VmRSS from /proc/<pid>/status in bytes, or undefined off Linux. */
export async function procRss (pid: number): Promise<number | undefined> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8')
    const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status)
    return match === null ? undefined : Number(match[1]) * 1024
  } catch {
    return undefined
  }
}

export async function forkServer (settings: ServerSettings, options: ForkOptions = {}): Promise<ServerChild> {
  const compiled = options.runtime === 'compiled'
  const execArgv = compiled ? [] : ['--import', import.meta.resolve('tsx')]
  const tracingEnv: NodeJS.ProcessEnv = {}
  if (options.tracingEndpoint !== undefined) {
    // As `npm start` runs it: before the child's first import of mongodb.
    execArgv.push('--import', compiled ? pathToFileURL(join(COMPILED_DIR, 'server', 'tracing', 'preload.js')).href : new URL('../server/tracing/preload.ts', import.meta.url).href)
    Object.assign(tracingEnv, { OTEL_TRACES_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_ENDPOINT: options.tracingEndpoint, OTEL_SERVICE_NAME: `bench-${settings.kind}` })
  }
  if (options.cpuProfileDir !== undefined) execArgv.push('--cpu-prof', `--cpu-prof-dir=${options.cpuProfileDir}`, `--cpu-prof-name=${settings.kind}-${Date.now()}.cpuprofile`)
  const child: ChildProcess = fork(compiled ? join(COMPILED_DIR, 'bench', 'child.js') : CHILD_ENTRY, [], {
    execArgv,
    env: { ...process.env, ...tracingEnv, BENCH_SERVER_SETTINGS: JSON.stringify(settings) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc']
  })
  const pending = new Map<number, (reply: ChildReply) => void>()
  let nextId = 1
  let exited: Error | undefined

  const ready = new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${settings.kind} server did not start within ${READY_TIMEOUT_MS} ms`)), READY_TIMEOUT_MS)
    child.on('message', (reply: ChildReply) => {
      if (reply.type === 'ready') {
        clearTimeout(timer)
        resolve(reply.port)
        return
      }
      pending.get(reply.id)?.(reply)
      pending.delete(reply.id)
    })
    child.once('exit', (code, signal) => {
      clearTimeout(timer)
      exited = new Error(`${settings.kind} server exited (code ${String(code)}, signal ${String(signal)})`)
      reject(exited)
      for (const [, settle] of pending) settle({ id: -1, type: 'shutdown' })
      pending.clear()
    })
  })
  const port = await ready

  function request<T extends ChildReply['type']> (type: ParentRequest['type'], expect: T): Promise<Extract<ChildReply, { type: T }>> {
    return new Promise((resolve, reject) => {
      if (exited !== undefined) {
        reject(exited)
        return
      }
      const id = nextId++
      pending.set(id, (reply) => {
        if (reply.type === expect) resolve(reply as Extract<ChildReply, { type: T }>)
        else reject(exited ?? new Error(`${settings.kind} server: expected ${expect}, got ${reply.type}`))
      })
      child.send({ id, type } satisfies ParentRequest)
    })
  }

  const pid = child.pid!
  async function rss (): Promise<number> {
    return await procRss(pid) ?? (await request('rss', 'rss')).rss
  }

  return {
    kind: settings.kind,
    pid,
    port,
    reset: async () => { await request('reset', 'reset') },
    stats: async () => (await request('stats', 'stats')).stats,
    idle: async () => {
      const { inFlight, waitedMs } = await request('idle', 'idle')
      return { inFlight, waitedMs }
    },
    eventLoopDelay: async () => {
      const { maxMs, p99Ms } = await request('event-loop', 'event-loop')
      return { maxMs, p99Ms }
    },
    rss,
    sampleRss: (intervalMs = 100) => {
      let peak = 0
      let sampling = Promise.resolve()
      const sample = (): void => {
        sampling = sampling.then(async () => { peak = Math.max(peak, await rss()) }, () => {})
      }
      sample()
      const timer = setInterval(sample, intervalMs)
      return async () => {
        clearInterval(timer)
        sample()
        await sampling
        return peak
      }
    },
    stop: async () => {
      if (exited !== undefined) return
      const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()))
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
      child.send({ id: nextId++, type: 'shutdown' } satisfies ParentRequest)
      await gone
      clearTimeout(timer)
    }
  }
}
