import { spawn, type ChildProcess } from 'node:child_process'

/*
 * Why a watchdog: the server processes must not outlive this process, even when it is
 * killed with SIGKILL or crashes, where no 'exit' handler runs. Linux's PR_SET_PDEATHSIG is
 * not reachable from Node, so each server gets a tiny detached Node process whose stdin is a
 * pipe from us. The kernel closes that pipe whenever we die, however we die, so the watchdog
 * sees end-of-file at once (no polling delay), then kills the server and removes its data
 * folder. It also checks its parent pid every second in case the pipe was inherited elsewhere.
 * Detached (own process group) so a Ctrl-C in the terminal doesn't kill it before it is needed.
 * The script is plain JavaScript in a string so it runs the same from src/ (tsx) and dist/.
 */
const WATCHDOG_SCRIPT = `
const { rmSync } = require('node:fs')
const pid = Number(process.argv[1])
const dir = process.argv[2]
const parent = process.ppid
let done = false
const alive = (p) => { try { process.kill(p, 0); return true } catch { return false } }
function cleanup () {
  if (done) return
  done = true
  try { process.kill(pid, 'SIGTERM') } catch {}
  const deadline = Date.now() + 5000
  const finish = () => {
    if (alive(pid) && Date.now() < deadline) { setTimeout(finish, 100); return }
    try { process.kill(pid, 'SIGKILL') } catch {}
    if (dir) { try { rmSync(dir, { recursive: true, force: true, maxRetries: 5 }) } catch {} }
    process.exit(0)
  }
  finish()
}
process.stdin.on('end', cleanup)
process.stdin.on('close', cleanup)
process.stdin.on('error', cleanup)
process.stdin.resume()
setInterval(() => { if (process.ppid !== parent || !alive(parent)) cleanup() }, 1000)
`

/**
 * Child-process pipes are typed as plain streams but are sockets at run time; unref()ing
 * them lets a program that forgot stop() exit (the exit handlers then stop the server).
 */
export function unref (handle: unknown): void {
  if (typeof handle === 'object' && handle !== null && 'unref' in handle && typeof handle.unref === 'function') {
    handle.unref()
  }
}

/** Starts a watchdog for server `pid` and its data folder `dir`; kill the returned process once the server is stopped normally. */
export function startWatchdog (pid: number, dir: string): ChildProcess {
  const watchdog = spawn(process.execPath, ['-e', WATCHDOG_SCRIPT, String(pid), dir], {
    detached: true,
    stdio: ['pipe', 'ignore', 'ignore'],
  })
  // Neither the watchdog nor its pipe may keep our event loop alive.
  watchdog.unref()
  unref(watchdog.stdin)
  watchdog.on('error', () => { /* best effort: the exit/signal handlers still clean up */ })
  return watchdog
}
