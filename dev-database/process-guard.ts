import { rmSync } from 'node:fs'
import type { ChildProcess } from 'node:child_process'
import { startWatchdog } from './watchdog.js'

/** A started server process and its data folder, to clean up if we go away without stop(). */
interface Guarded {
  pid: number
  dir: string
  watchdog: ChildProcess
}

const guarded = new Set<Guarded>()
const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const

/** Synchronous on purpose: 'exit' handlers and signal handlers can't wait for promises. */
function killAllSync (): void {
  for (const entry of guarded) {
    try { process.kill(entry.pid, 'SIGKILL') } catch { /* already gone */ }
    try { rmSync(entry.dir, { recursive: true, force: true, maxRetries: 3 }) } catch { /* the watchdog retries */ }
  }
  guarded.clear()
}

function onSignal (signal: NodeJS.Signals): void {
  // The application handles this signal itself (the standalone server's graceful shutdown, the
  // test runner): it stops its databases in order, after the work in flight, and the 'exit'
  // handler stays the backstop. Killing them now would fail that work (requests in flight at a
  // SIGTERM got database errors, and the server's close then waited on a dead database).
  if (process.listenerCount(signal) > 1) return
  killAllSync()
  removeHandlers()
  // Re-raise with the default action so the exit status says "killed by SIGTERM" as usual.
  process.kill(process.pid, signal)
}

let installed = false
function installHandlers (): void {
  if (installed) return
  installed = true
  process.on('exit', killAllSync)
  for (const signal of SIGNALS) process.on(signal, onSignal)
}

function removeHandlers (): void {
  if (!installed) return
  installed = false
  process.off('exit', killAllSync)
  for (const signal of SIGNALS) process.off(signal, onSignal)
}

/**
 * Makes sure server `pid` dies and `dir` is removed when this process exits, is signalled or
 * crashes. Returns the function that lifts the guard after a normal stop().
 */
export function guardProcess (pid: number, dir: string): () => void {
  const entry: Guarded = { pid, dir, watchdog: startWatchdog(pid, dir) }
  guarded.add(entry)
  installHandlers()
  return () => {
    guarded.delete(entry)
    entry.watchdog.kill('SIGKILL')
    // Don't change the process's signal behaviour while nothing is running.
    if (guarded.size === 0) removeHandlers()
  }
}
