import { readServerVersion } from './probe.js'
import { MONGODB_URI_HINT, type RunningMongo } from './types.js'

/** A server someone else runs: we only check it answers, and never stop it. */
export async function useExistingServer (uri: string | undefined): Promise<RunningMongo> {
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
