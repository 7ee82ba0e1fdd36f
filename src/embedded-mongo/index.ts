/**
 * Starts a MongoDB-wire server for tests and for the standalone server's embedded default.
 * See startMongo() for the order in which backends are tried.
 */
import { useExistingServer } from './uri.js'
import {
  LOCAL_BACKEND_ORDER,
  defaultLog,
  parseBackendName,
  type RunningMongo,
  type StartMongoOptions,
} from './types.js'

export type { MongoBackendName, LocalBackendName, RunningMongo, StartMongoOptions } from './types.js'
export { MONGO_BACKEND_NAMES, LOCAL_BACKEND_ORDER, parseBackendName, isMongoBackendName } from './types.js'
export type { InstallResult } from './install.js'

/**
 * - backend 'uri', or no backend and MONGODB_URI set: use MONGODB_URI as is; stop() does nothing.
 * - a forced backend ('mongod' | 'ferretdb' | 'java'): start only that one.
 * - otherwise: mongod (mongodb-memory-server-core) -> FerretDB -> mongo-java-server, first that starts.
 * Each started server listens on a free 127.0.0.1 port with its data in a fresh temp folder;
 * stop() kills it and removes the folder, and so does our exit, a signal or a crash.
 */
export async function startMongo (options: StartMongoOptions = {}): Promise<RunningMongo> {
  const log = options.log ?? defaultLog
  // Checked at run time too: the name usually comes from an environment variable.
  const backend = parseBackendName(options.backend)
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
