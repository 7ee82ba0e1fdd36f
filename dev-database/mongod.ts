import { rm } from 'node:fs/promises'
import { freePort, freshDataDir } from './paths.js'
import { guardProcess } from './process-guard.js'
import { waitUntilReady } from './probe.js'
import type { Log, RunningMongo } from './types.js'

/**
 * Finding or downloading the mongod binary. A cached binary (MMS's cache folders, or
 * MONGOMS_SYSTEM_BINARY) is found in milliseconds; without internet the download can only fail,
 * and MMS retries with back-off, so we give up quickly and let the next backend start.
 * `npm run db:install -- mongod` downloads with a generous limit where that's possible.
 */
const FIND_BINARY_TIMEOUT_MS = 5_000
export const DOWNLOAD_BINARY_TIMEOUT_MS = 10 * 60_000

const importModule = async () => await import('mongodb-memory-server-core')

/** Imported lazily: mongodb-memory-server-core is a devDependency and may be absent. */
async function loadModule (): ReturnType<typeof importModule> {
  try {
    return await importModule()
  } catch (error) {
    throw new Error(`mongodb-memory-server-core is not installed (${error instanceof Error ? error.message : String(error)})`)
  }
}

/** Rejects after `ms` if `promise` hasn't settled; the work itself can't be cancelled, only abandoned. */
async function withTimeout<T> (promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms)
    // An abandoned download must not keep the process alive on its own.
    timer.unref()
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

export async function ensureMongodBinary (timeoutMs: number = DOWNLOAD_BINARY_TIMEOUT_MS): Promise<string> {
  const { MongoBinary } = await loadModule()
  return await withTimeout(MongoBinary.getPath(), timeoutMs, 'finding or downloading the mongod binary')
}

export async function startMongod (_log: Log): Promise<RunningMongo> {
  const { MongoMemoryServer } = await loadModule()
  const binaryPath = await ensureMongodBinary(FIND_BINARY_TIMEOUT_MS)
  const port = await freePort()
  const dir = await freshDataDir('mongod')
  let server: InstanceType<typeof MongoMemoryServer> | undefined
  try {
    server = await MongoMemoryServer.create({
      binary: { systemBinary: binaryPath },
      instance: { ip: '127.0.0.1', port, dbPath: dir, launchTimeout: 20_000 },
    })
  } catch (error) {
    await rm(dir, { recursive: true, force: true })
    throw error
  }
  const started = server
  // MMS has its own killer process for mongod; ours also removes the data folder, which MMS
  // leaves behind when the dbPath is ours.
  const pid = started.instanceInfo?.instance.mongodProcess?.pid
  const unguard = pid !== undefined ? guardProcess(pid, dir) : () => {}
  const stop = async (): Promise<void> => {
    await started.stop({ doCleanup: true, force: true })
    await rm(dir, { recursive: true, force: true, maxRetries: 3 })
    unguard()
  }
  const uri = `mongodb://127.0.0.1:${port}/`
  try {
    const serverVersion = await waitUntilReady(uri, () => undefined, 20_000)
    let stopping: Promise<void> | undefined
    return { uri, backend: 'mongod', serverVersion, stop: () => (stopping ??= stop()) }
  } catch (error) {
    await stop()
    throw error
  }
}
