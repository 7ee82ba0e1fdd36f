/**
 * The standalone app as the server builds it (environment → config → Fastify
 * and app options) on a fresh test database with the demo data, for the
 * load-shedding, rate-limit and CORS tests.
 */
import Fastify, { type FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import app, { appOptions, serverOptions } from '../../src/standalone/app.js'
import { readConfig } from '../../src/standalone/config.js'
import { DEMO_ORGANIZATION_ID, developmentSecret } from '../../src/standalone/development.js'
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
