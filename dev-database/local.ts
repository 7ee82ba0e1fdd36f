import { startFerretdb } from './ferretdb.js'
import { startJavaServer } from './java.js'
import { startMongod } from './mongod.js'
import { MONGODB_URI_HINT, oneLine, type LocalBackendName, type Log, type RunningMongo } from './types.js'

const STARTERS: Record<LocalBackendName, (log: Log) => Promise<RunningMongo>> = {
  mongod: startMongod,
  ferretdb: startFerretdb,
  java: startJavaServer,
}

/**
 * Tries each backend in turn; each failure is logged as one line with its reason, and when
 * none starts, one error lists them all and says how to use an existing server instead.
 */
export async function startFirstAvailable (order: readonly LocalBackendName[], log: Log): Promise<RunningMongo> {
  const reasons: string[] = []
  for (const name of order) {
    try {
      return await STARTERS[name](log)
    } catch (error) {
      const reason = oneLine(error)
      log(`${name}: could not start: ${reason}`)
      reasons.push(`${name}: ${reason}`)
    }
  }
  throw new Error(`no MongoDB-compatible server could be started (${reasons.join('; ')}); ${MONGODB_URI_HINT}`)
}
