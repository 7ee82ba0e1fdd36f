/**
 * The database's own process, found by its command line, so its resident
 * memory can be sampled next to the servers' (mongo-java-server holds the
 * data, and every open cursor's remaining documents, in its heap). Only the
 * launchers of dev-database are recognised: mongo-java-server
 * (`EmbeddedMongoJavaServer 127.0.0.1 <port>`) and FerretDB
 * (`--listen-addr=127.0.0.1:<port>`, its SQLite handler in the same process).
 * Other backends, or off Linux: undefined, and no database RSS is reported.
 */
import { readdir, readFile } from 'node:fs/promises'
import { procRss } from './child-process.js'

/** The port of a `mongodb://host:port/...` URI on this machine, or undefined. */
export function localPort (uri: string): number | undefined {
  const match = /^mongodb:\/\/(?:127\.0\.0\.1|localhost):(\d+)(?:[/?]|$)/.exec(uri)
  return match === null ? undefined : Number(match[1])
}

/** Whether a command line (NUL-separated arguments) is a database listening on `port`. */
export function isDatabaseCommand (args: readonly string[], port: number): boolean {
  const java = args.indexOf('EmbeddedMongoJavaServer')
  if (java >= 0 && args[java + 2] === String(port)) return true
  return args.some((arg) => arg === `--listen-addr=127.0.0.1:${port}`) && args.some((arg) => /ferretdb/i.test(arg))
}

export async function findDatabasePid (uri: string): Promise<number | undefined> {
  const port = localPort(uri)
  if (port === undefined) return undefined
  let entries: string[]
  try {
    entries = await readdir('/proc')
  } catch {
    return undefined
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const args = (await readFile(`/proc/${entry}/cmdline`, 'utf8')).split('\0')
      if (isDatabaseCommand(args, port)) return Number(entry)
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return undefined
}

/** Samples the process's RSS every `intervalMs` until the returned function is called; that returns the peak in bytes (0 without a pid). */
export function sampleProcessRss (pid: number | undefined, intervalMs = 250): () => Promise<number> {
  let peak = 0
  if (pid === undefined) return async () => peak
  let sampling = Promise.resolve()
  const sample = (): void => {
    sampling = sampling.then(async () => { peak = Math.max(peak, await procRss(pid) ?? 0) }, () => {})
  }
  sample()
  const timer = setInterval(sample, intervalMs)
  return async () => {
    clearInterval(timer)
    sample()
    await sampling
    return peak
  }
}
