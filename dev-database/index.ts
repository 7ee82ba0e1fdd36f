/**
 * Starts a MongoDB-wire server for tests and for the standalone server's embedded default.
 * See startMongo() for the order in which backends are tried.
 */
import { readServerVersion } from './probe.js'
import {
  LOCAL_BACKEND_ORDER,
  MONGODB_URI_HINT,
  defaultLog,
  parseBackendName,
  type Log,
  type RunningMongo,
  type StartMongoOptions,
} from './types.js'

export type { MongoBackendName, LocalBackendName, RunningMongo, StartMongoOptions } from './types.js'
export { MONGO_BACKEND_NAMES, LOCAL_BACKEND_ORDER, parseBackendName, isMongoBackendName } from './types.js'
export type { InstallResult } from './install.js'
// For tools that run a database process of their own (scripts/reliability).
export { freePort } from './paths.js'
export { readServerVersion } from './probe.js'

/** A server someone else runs: we only check it answers, and never stop it. */
async function useExistingServer (uri: string | undefined): Promise<RunningMongo> {
  if (uri === undefined || uri.trim() === '') {
    throw new Error(`backend "uri" needs MONGODB_URI; ${MONGODB_URI_HINT}`)
  }
  let serverVersion: string
  try {
    serverVersion = await readServerVersion(uri, 10_000)
  } catch (error) {
    throw new Error(`MONGODB_URI (${uri}) does not answer: ${error instanceof Error ? error.message : String(error)}`)
  }
  return { uri, backend: 'uri', serverVersion, stop: async () => {} }
}

/**
 * - backend 'uri', or no backend and MONGODB_URI set: use MONGODB_URI as is; stop() does nothing.
 * - a forced backend ('mongod' | 'ferretdb' | 'java'): start only that one.
 * - otherwise: mongod (mongodb-memory-server-core) -> mongo-java-server -> FerretDB, first that starts.
 * - dataFile: mongo-java-server with its H2 backend on that file, whatever MONGODB_URI says.
 * Each started server listens on a free 127.0.0.1 port with its data in a fresh temp folder
 * (or in `dataFile`); stop() stops it and removes the folder (never `dataFile`), and so does
 * our exit, a signal or a crash.
 */
export async function startMongo (options: StartMongoOptions = {}): Promise<RunningMongo> {
  const log = options.log ?? defaultLog
  // Checked at run time too: the name usually comes from an environment variable.
  const backend = parseBackendName(options.backend)
  if (options.dataFile !== undefined) {
    if (backend !== undefined && backend !== 'java') throw new Error(`backend "${backend}" cannot keep its data in a file: only "java" (mongo-java-server's H2 backend) can`)
    const { startJavaServer } = await import('./java.js')
    return await startJavaServer(log, { dataFile: options.dataFile })
  }
  const envUri = process.env['MONGODB_URI']
  if (backend === 'uri' || (backend === undefined && envUri !== undefined && envUri.trim() !== '')) {
    return await useExistingServer(envUri)
  }
  // Loaded only when needed: keeps the MONGODB_URI path free of build and process machinery.
  const { startFirstAvailable } = await import('./local.js')
  return await startFirstAvailable(backend === undefined ? LOCAL_BACKEND_ORDER : [backend], log)
}

/** Pre-builds FerretDB / fetches mongo-java-server (or downloads mongod) so later starts are fast. */
export async function installBackends (...args: Parameters<typeof import('./install.js').installBackends>): Promise<import('./install.js').InstallResult[]> {
  const install = await import('./install.js')
  return await install.installBackends(...args)
}

/** Builds FerretDB once (see ferretdb.ts) and returns its binary, for tools that run it on a folder and port of their own. */
export async function ensureFerretdb (log: Log = defaultLog): Promise<string> {
  const ferretdb = await import('./ferretdb.js')
  return await ferretdb.ensureFerretdb(log)
}
