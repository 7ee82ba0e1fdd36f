import { MongoClient } from 'mongodb'

/**
 * Connects, pings and reads buildInfo.version. A short server selection timeout keeps
 * each attempt cheap, so callers can poll a server that is still starting.
 */
export async function readServerVersion (uri: string, timeoutMs: number): Promise<string> {
  // Timeouts written in the URI win, so a caller can shorten them.
  const client = new MongoClient(uri, {
    ...(/serverSelectionTimeoutMS=/i.test(uri) ? {} : { serverSelectionTimeoutMS: timeoutMs }),
    ...(/connectTimeoutMS=/i.test(uri) ? {} : { connectTimeoutMS: timeoutMs }),
  })
  try {
    await client.connect()
    const admin = client.db('admin')
    await admin.command({ ping: 1 })
    const info = await admin.command({ buildInfo: 1 })
    const version: unknown = info['version']
    return typeof version === 'string' ? version : 'unknown'
  } finally {
    await client.close()
  }
}

/**
 * Polls until the server answers, the process has exited (exitReason() returns why)
 * or the deadline passes; the error says which, with the last thing the server said.
 */
export async function waitUntilReady (
  uri: string,
  exitReason: () => string | undefined,
  timeoutMs: number
): Promise<string> {
  const deadline = Date.now() + timeoutMs
  let lastError: unknown
  while (Date.now() < deadline) {
    const exited = exitReason()
    if (exited !== undefined) throw new Error(exited)
    try {
      return await readServerVersion(uri, 1000)
    } catch (error) {
      lastError = error
      await new Promise((resolve) => setTimeout(resolve, 200))
    }
  }
  const exited = exitReason()
  if (exited !== undefined) throw new Error(exited)
  throw new Error(`no answer to ping within ${timeoutMs} ms: ${lastError instanceof Error ? lastError.message : String(lastError)}`)
}
