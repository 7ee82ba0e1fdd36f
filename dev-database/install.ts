import { ensureFerretdb } from './ferretdb.js'
import { ensureJavaServer } from './java.js'
import { ensureMongodBinary } from './mongod.js'
import { defaultLog, type LocalBackendName, type Log } from './types.js'

/** What CI pre-installs: the two backends that need no internet beyond the package registries. */
export const DEFAULT_INSTALL_BACKENDS: readonly LocalBackendName[] = ['ferretdb', 'java']

export interface InstallResult {
  backend: LocalBackendName
  milliseconds: number
}

/**
 * Builds/fetches the given backends ahead of time (already installed ones take milliseconds),
 * so the slow first-time work shows up as its own step rather than inside a test run.
 */
export async function installBackends (
  names: readonly LocalBackendName[] = DEFAULT_INSTALL_BACKENDS,
  log: Log = defaultLog
): Promise<InstallResult[]> {
  const results: InstallResult[] = []
  for (const backend of names) {
    const started = Date.now()
    if (backend === 'ferretdb') await ensureFerretdb(log)
    else if (backend === 'java') await ensureJavaServer(log)
    else await ensureMongodBinary()
    results.push({ backend, milliseconds: Date.now() - started })
  }
  return results
}
