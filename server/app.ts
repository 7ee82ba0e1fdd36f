/**
 * The standalone application as a plugin: the database connection, the
 * phone-number plugin and a health check, plus the mapping from the server's
 * configuration to Fastify's server options and to the app's options (used by
 * server.ts, the tests and the bench alike). server.ts only starts it.
 */
import mongodb from '@fastify/mongodb'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { LogController, type FastifyHttpOptions } from 'fastify'
import fp from 'fastify-plugin'
import { randomUUID } from 'node:crypto'
import type { IncomingMessage, Server } from 'node:http'
import orgPhoneNumbers, { createWebhookHandler, DEFAULT_OPTIONS, replyToFrameworkError, type OrgPhoneNumbersOptions } from '../plugins/phone-numbers/index.js'
import { GetHealth } from '../schemas/generated/typebox.js'
import { type ServerConfig } from './config.js'
import { databaseNameOf } from '../tools/database-uri.js'
import { seedDemoData } from './development.js'
import docs from './docs.js'
import metricsPlugin, { createMetrics, type Metrics } from './metrics.js'
import shedding, { HEALTH_ROUTE_CONFIG, markUnderPressure, sheddingOptions, type SheddingOptions } from './shedding.js'

export interface AppOptions {
  mongodbUri: string
  /** Database used when the URI names none. */
  defaultDatabaseName: string
  /** Driver: how long an operation waits for a reachable server before failing. */
  serverSelectionTimeoutMs: number
  /** Add the demo organization and users (embedded development database only). */
  seedDemoData?: boolean | undefined
  /** The API reference page at /docs. */
  serveDocs?: boolean | undefined
  phoneNumbers: Omit<OrgPhoneNumbersOptions, 'db'>
  /** Prometheus metrics at /metrics, without auth: on the API port, or on `port` (and `host`) alone. */
  metrics?: { port?: number | undefined, host: string } | undefined
  /** Load shedding (503), rate limits (429) and CORS; undefined: none of them. */
  shedding?: SheddingOptions | undefined
}

// A client's x-request-id is used only when it is short and plain; anything
// else (long, odd bytes, text meant for a reader) gets a generated id.
const SAFE_REQUEST_ID = /^[\w.-]{1,64}$/

function requestIdOf (request: IncomingMessage): string {
  const given = request.headers['x-request-id']
  return typeof given === 'string' && SAFE_REQUEST_ID.test(given) ? given : randomUUID()
}

type ServerSettings = Pick<ServerConfig, 'logLevel' | 'requestLogging' | 'bodyLimit' | 'requestTimeoutMs' | 'headersTimeoutMs' | 'keepAliveTimeoutMs'>

/** Fastify's own options for the standalone server. */
export function serverOptions (config: ServerSettings): FastifyHttpOptions<Server> {
  return {
    logger: { level: config.logLevel },
    logController: new LogController({ disableRequestLogging: !config.requestLogging }),
    genReqId: requestIdOf,
    bodyLimit: config.bodyLimit,
    // Slow or endless requests must not hold sockets: Fastify's defaults are no limit.
    requestTimeout: config.requestTimeoutMs,
    keepAliveTimeout: config.keepAliveTimeoutMs,
    // Node checks the request and headers timeouts on this interval (default 30 s).
    http: { headersTimeout: config.headersTimeoutMs, connectionsCheckingInterval: 1000 },
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
    metrics: config.metrics ? { port: config.metricsPort, host: config.host } : undefined,
    serveDocs: config.serveDocs,
    shedding: sheddingOptions(config, runtime.jwtSecret),
    phoneNumbers: {
      auth: {
        secret: runtime.jwtSecret,
        issuer: config.jwtIssuer,
        audience: config.jwtAudience,
        maxLifetimeSeconds: config.jwtMaxLifetimeSeconds
      },
      usersCollection: config.usersCollection,
      organizationsCollection: config.organizationsCollection,
      phoneNumbersField: config.phoneNumbersField,
      verifyRoleInDatabase: config.verifyRoleInDatabase,
      bodyLimit: config.bodyLimit,
      maxNumbersPerUser: config.maxNumbersPerUser,
      claimsCollection: config.claimsCollection,
      inFlightGraceMs: config.inFlightGraceMs,
      // A telephony gateway's service token may carry its own role (ROUTE_LOOKUP_ROLES).
      canLookUpInboundRoutes: (claims) => typeof claims.role === 'string' && config.routeLookupRoles.includes(claims.role),
      serveOpenapi: config.serveOpenapi,
      eventsCollection: config.eventsCollection,
      eventRetentionDays: config.eventRetentionDays,
      eventVisibilityDelayMs: config.eventVisibilityDelayMs,
      eventSweepIntervalMs: config.eventSweepIntervalMs,
      routeCache: config.routeCache ?? false,
      ...(config.webhook === undefined
        ? {}
        : {
            onEvent: createWebhookHandler(config.webhook),
            eventDelivery: {
              maxAttempts: config.webhook.maxAttempts,
              retryBaseMs: config.webhook.retryBaseMs,
              retryMaxMs: config.webhook.retryMaxMs,
              leaseMs: config.webhook.leaseMs
            }
          })
    }
  }
}

/** The route cache's settings with the metrics' counters as its callbacks (when it is on). */
function countedRouteCache (routeCache: OrgPhoneNumbersOptions['routeCache'], metrics: Metrics): OrgPhoneNumbersOptions['routeCache'] {
  if (routeCache === undefined || routeCache === false) return routeCache
  return { ...(routeCache === true ? {} : routeCache), ...metrics.routeCacheHooks }
}

const app: FastifyPluginAsyncTypebox<AppOptions> = async (fastify, options) => {
  const metrics = options.metrics === undefined ? undefined : createMetrics()
  // Before every route, so its hooks run ahead of the phone-number plugin's token check.
  if (options.shedding !== undefined) await fastify.register(shedding, options.shedding)
  await fastify.register(mongodb, {
    url: options.mongodbUri,
    database: databaseNameOf(options.mongodbUri) ?? options.defaultDatabaseName,
    // Requests fail fast (503) instead of queueing while the database is down.
    serverSelectionTimeoutMS: options.serverSelectionTimeoutMs,
    forceClose: true,
    // Command events cost a little on every command: only when they are counted.
    ...(metrics === undefined ? {} : { monitorCommands: true })
  })
  if (metrics !== undefined) await fastify.register(metricsPlugin, { metrics, client: fastify.mongo.client, ...options.metrics! })
  if (options.seedDemoData === true) {
    await seedDemoData(fastify.mongo.db!, options.phoneNumbers.usersCollection ?? DEFAULT_OPTIONS.usersCollection, options.phoneNumbers.organizationsCollection ?? DEFAULT_OPTIONS.organizationsCollection)
  }
  await fastify.register(orgPhoneNumbers, metrics === undefined
    ? options.phoneNumbers
    : { ...options.phoneNumbers, onWriteRetry: metrics.onWriteRetry, onDeliveryFailure: metrics.onDeliveryFailure, routeCache: countedRouteCache(options.phoneNumbers.routeCache, metrics) })
  if (options.serveDocs === true) await fastify.register(docs)

  fastify.route({
    ...GetHealth,
    config: HEALTH_ROUTE_CONFIG,
    handler: async (request, reply) => {
      try {
        await fastify.mongo.db!.command({ ping: 1 }, { timeoutMS: options.serverSelectionTimeoutMs })
        // Shedding load, the process refuses work: not ready, though the database answers.
        if (markUnderPressure(fastify, reply)) return await reply.send({ status: 'unavailable', database: 'up' })
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
