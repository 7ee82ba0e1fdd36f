/**
 * The standalone application as a plugin: the database connection, the
 * phone-number plugin and a health check. src/standalone/server.ts only creates the
 * Fastify instance, listens and shuts down.
 */
import mongodb from '@fastify/mongodb'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import orgPhoneNumbers, { type OrgPhoneNumbersOptions } from '../../plugins/phone-numbers/index.js'
import { GetHealth } from '../../schemas/generated/typebox.js'
import { seedDemoData } from './development.js'

export interface AppOptions {
  mongodbUri: string
  /** Database used when the URI names none. */
  defaultDatabaseName: string
  /** Driver: how long an operation waits for a reachable server before failing. */
  serverSelectionTimeoutMs: number
  /** Add the demo organization and users (embedded development database only). */
  seedDemoData?: boolean | undefined
  phoneNumbers: Omit<OrgPhoneNumbersOptions, 'db'>
}

/** The database named in the URI's path, if any (`mongodb://host:port/name?opts`). */
export function databaseNameOf (uri: string): string | undefined {
  const afterScheme = uri.slice(uri.indexOf('://') + 3)
  const slash = afterScheme.indexOf('/')
  if (slash === -1) return undefined
  const name = decodeURIComponent(afterScheme.slice(slash + 1).split('?')[0] ?? '')
  return name === '' ? undefined : name
}

const app: FastifyPluginAsyncTypebox<AppOptions> = async (fastify, options) => {
  await fastify.register(mongodb, {
    url: options.mongodbUri,
    database: databaseNameOf(options.mongodbUri) ?? options.defaultDatabaseName,
    // Requests fail fast (503) instead of queueing while the database is down.
    serverSelectionTimeoutMS: options.serverSelectionTimeoutMs,
    forceClose: true
  })
  if (options.seedDemoData === true) {
    await seedDemoData(fastify.mongo.db!, options.phoneNumbers.usersCollection ?? 'users', options.phoneNumbers.organizationsCollection ?? 'organizations')
  }
  await fastify.register(orgPhoneNumbers, options.phoneNumbers)

  fastify.route({
    ...GetHealth,
    handler: async (request, reply) => {
      try {
        await fastify.mongo.db!.command({ ping: 1 }, { timeoutMS: options.serverSelectionTimeoutMs })
        return { status: 'ok', database: 'up' } as const
      } catch (error) {
        request.log.warn({ err: error }, 'health check: database ping failed')
        return reply.code(503).send({ status: 'unavailable', database: 'down' })
      }
    }
  })
}

export default app
