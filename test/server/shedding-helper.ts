/**
 * The standalone app as the server builds it (environment → config → Fastify
 * and app options) on a fresh test database with the demo data, for the
 * load-shedding, rate-limit and CORS tests.
 */
import Fastify, { type FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import app, { appOptions, serverOptions } from '../../server/app.js'
import { readConfig } from '../../server/config.js'
import { DEMO_ORGANIZATION_ID, developmentSecret } from '../../server/development.js'
import { createTestDatabase, uriForDatabase } from '../helper-database.js'

export const DEMO_NUMBERS_URL = `/api/organizations/${DEMO_ORGANIZATION_ID}/phone-numbers`

export interface BuiltApp {
  server: FastifyInstance
  secret: string
}

export async function buildStandaloneApp (t: Test, env: Record<string, string>): Promise<BuiltApp> {
  const { dbName } = await createTestDatabase(t)
  const secret = await developmentSecret()
  const mongodbUri = uriForDatabase(dbName)
  const config = readConfig({ MONGODB_URI: mongodbUri, JWT_SECRET: secret, LOG_LEVEL: 'silent', ...env })
  const server = Fastify(serverOptions(config))
  t.teardown(() => server.close())
  await server.register(app, appOptions(config, { mongodbUri, jwtSecret: secret, seedDemoData: true }))
  await server.ready()
  return { server, secret }
}

/** Blocks the event loop for `ms`, as a CPU-bound request would. */
export function busyWait (ms: number): void {
  const end = Date.now() + ms
  while (Date.now() < end) { /* block */ }
}

/**
 * Saturates the event loop until the returned function is called: every turn
 * is blocked for `blockMs` (re-armed with setImmediate, so timers, I/O and
 * injected requests still progress between blocks). Every event-loop-delay
 * sample taken wholly inside that span then sees a mean delay of about
 * `blockMs`, however loaded the machine is: a slower machine only adds delay.
 */
export function saturateEventLoop (blockMs: number): () => void {
  let running = true
  const turn = (): void => {
    if (!running) return
    busyWait(blockMs)
    setImmediate(turn)
  }
  setImmediate(turn)
  return () => { running = false }
}
