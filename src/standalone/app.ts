/**
 * The standalone application as a plugin: the database connection, the
 * phone-number plugin and a health check, plus the mapping from the server's
 * configuration to Fastify's server options and to the app's options (used by
 * server.ts, the tests and the bench alike). server.ts only starts it.
 */
import mongodb from '@fastify/mongodb'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { LogController, type FastifyServerOptions } from 'fastify'
import fp from 'fastify-plugin'
import orgPhoneNumbers, { DEFAULT_OPTIONS, replyToFrameworkError, type OrgPhoneNumbersOptions } from '../../plugins/phone-numbers/index.js'
import { GetHealth } from '../../schemas/generated/typebox.js'
import type { ServerConfig } from './config.js'
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

/** Fastify's own options for the standalone server. */
export function serverOptions (config: Pick<ServerConfig, 'logLevel' | 'requestLogging' | 'bodyLimit'>): FastifyServerOptions {
  return {
    logger: { level: config.logLevel },
    logController: new LogController({ disableRequestLogging: !config.requestLogging }),
    requestIdHeader: 'x-request-id',
    bodyLimit: config.bodyLimit,
    // URLs the router refuses before any route runs still answer { error, details }.
    frameworkErrors: replyToFrameworkError
  }
}

/** What the standalone server knows only once it runs: the database it found and the secret it uses. */
export interface RuntimeSettings {
  mongodbUri: string
  jwtSecret: string
  /** True on the embedded development database only. */
  seedDemoData: boolean
}

/** The app's options for a configuration. */
export function appOptions (config: ServerConfig, runtime: RuntimeSettings): AppOptions {
  return {
    mongodbUri: runtime.mongodbUri,
    defaultDatabaseName: config.defaultDatabaseName,
    serverSelectionTimeoutMs: config.serverSelectionTimeoutMs,
    seedDemoData: runtime.seedDemoData,
    phoneNumbers: {
      auth: {
        secret: runtime.jwtSecret,
        issuer: config.jwtIssuer,
        audience: config.jwtAudience
      },
      usersCollection: config.usersCollection,
      organizationsCollection: config.organizationsCollection,
      phoneNumbersField: config.phoneNumbersField,
      verifyRoleInDatabase: config.verifyRoleInDatabase,
      bodyLimit: config.bodyLimit,
      serveOpenapi: config.serveOpenapi
    }
  }
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
    await seedDemoData(fastify.mongo.db!, options.phoneNumbers.usersCollection ?? DEFAULT_OPTIONS.usersCollection, options.phoneNumbers.organizationsCollection ?? DEFAULT_OPTIONS.organizationsCollection)
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

// Not encapsulated (as in fastify/demo): the server, tests and the bench reach
// `fastify.mongo` and `fastify.orgPhoneNumbers` on the instance they built.
export default fp(app, { name: 'org-phone-numbers-app', fastify: '5.x' })
