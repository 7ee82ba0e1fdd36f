/** The standalone server as a child of a reliability script: the scripts' defaults, killed if the script dies. */
import { startStandalone, type ServerEnv, type StandaloneServer } from '../../test/server/helper-server.js'
import { track } from './children.js'

/** Every script's server runs with this secret; seed() signs its token with it. */
export const JWT_SECRET = 'reliability-secret-that-is-at-least-32-characters'

export type ServerProcess = StandaloneServer

/**
 * Info logs without request lines (a script that counts requests turns them on), and the
 * database only when the script names one. Resolves once it listens.
 */
export async function startServer (env: ServerEnv, startTimeoutMs = 90_000): Promise<ServerProcess> {
  return await startStandalone({ MONGODB_URI: undefined, LOG_LEVEL: 'info', REQUEST_LOGGING: 'false', ...env }, { startTimeoutMs, onSpawn: track })
}
