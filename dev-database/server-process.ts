import { spawn } from 'node:child_process'
import { rm } from 'node:fs/promises'
import { waitUntilReady } from './probe.js'
import { guardProcess } from './process-guard.js'
import type { LocalBackendName, RunningMongo } from './types.js'
import { unref } from './watchdog.js'

export interface ServerProcess {
  pid: number
  /** Why the process ended, or undefined while it runs; used to stop waiting for a dead server. */
  exitReason(): string | undefined
  /** Kills the server (TERM, then KILL after a grace period) and removes its data folder. */
  stop(): Promise<void>
}

const TAIL_LINES = 15

/**
 * Spawns a database server with its own data folder `dir` (also its cwd), keeps the last lines
 * of its output for error messages, and guards it against outliving us.
 * Detached: a terminal Ctrl-C then reaches only us, and we stop the server in order.
 */
export function spawnServer (command: string, args: readonly string[], dir: string, env?: NodeJS.ProcessEnv): ServerProcess {
  const child = spawn(command, args, {
    cwd: dir,
    env: env ?? process.env,
    detached: true,
    stdio: ['pipe', 'pipe', 'pipe'],
  })
  const tail: string[] = []
  const collect = (chunk: Buffer): void => {
    for (const line of chunk.toString('utf8').split('\n')) {
      if (line.trim() !== '') tail.push(line.trim())
    }
    tail.splice(0, Math.max(0, tail.length - TAIL_LINES))
  }
  child.stdout.on('data', collect)
  child.stderr.on('data', collect)

  let reason: string | undefined
  const exited = new Promise<void>((resolve) => {
    const done = (text: string): void => {
      reason ??= `${text}${tail.length > 0 ? `; last output: ${tail.slice(-5).join(' | ')}` : ''}`
      resolve()
    }
    child.once('error', (error) => { done(`${command} could not run: ${error.message}`) })
    child.once('exit', (code, signal) => { done(`${command} exited (${signal ?? `code ${code ?? '?'}`})`) })
  })

  // A server we forgot to stop must not keep the process alive; the guard kills it at exit.
  child.unref()
  unref(child.stdout)
  unref(child.stderr)
  unref(child.stdin)

  const unguard = child.pid !== undefined ? guardProcess(child.pid, dir) : () => {}
  let stopping: Promise<void> | undefined

  return {
    pid: child.pid ?? -1,
    exitReason: () => reason,
    stop: () => {
      stopping ??= (async () => {
        if (reason === undefined) {
          child.kill('SIGTERM')
          const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
          await exited
          clearTimeout(timer)
        }
        await rm(dir, { recursive: true, force: true, maxRetries: 3 })
        unguard()
      })()
      return stopping
    },
  }
}

/** Waits until the spawned server on `port` answers; a server that never does is stopped. */
export async function whenReady (server: ServerProcess, backend: LocalBackendName, port: number): Promise<RunningMongo> {
  const uri = `mongodb://127.0.0.1:${port}/`
  try {
    const serverVersion = await waitUntilReady(uri, server.exitReason, 30_000)
    return { uri, backend, serverVersion, stop: server.stop }
  } catch (error) {
    await server.stop()
    throw error
  }
}
