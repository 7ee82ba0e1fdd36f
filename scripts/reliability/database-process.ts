/** A FerretDB the script runs on a data folder and port it keeps, so it can be killed and restarted on the same data. */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { ensureFerretdb, freePort, readServerVersion } from '../../dev-database/index.js'
import { exited, track } from './children.js'
import { log } from './report.js'

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
