/**
 * Prometheus metrics of the standalone server (METRICS=true), on a registry of
 * the app's own (several apps in one process, as in the tests, never share
 * counters): request durations by route pattern, the driver's command
 * monitoring, compare-and-swap retries, the event outbox backlog, failed
 * webhook deliveries and prom-client's process defaults. Served without auth
 * at /metrics, on the API port or on a separate internal port.
 */
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { CommandFailedEvent, CommandSucceededEvent, MongoClient } from 'mongodb'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client'
import type { RouteCacheOptions, RouteCacheStatus } from '../plugins/phone-numbers/index.js'

/** The route label of requests no route matched: raw URLs (with their ids) never become labels. */
export const UNMATCHED_ROUTE = 'unmatched'
export const METRICS_PATH = '/metrics'

// Database commands mostly take well under the HTTP defaults' 5 ms first bucket.
const COMMAND_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10]

export interface Metrics {
  registry: Registry
  /** Store hook: a compare-and-swap missed and the write is tried again. */
  onWriteRetry: () => void
  /** Plugin hook: a delivery failed; without an event id it was the database read of a delivery pass (counted with the commands). */
  onDeliveryFailure: (error: unknown, eventId: string | undefined) => void
  /** Where the backlog gauge reads its value when scraped. */
  readBacklog: (() => number) | undefined
  /** The route cache's callbacks: hits, misses, evictions and follower restarts counted. */
  routeCacheHooks: Required<Pick<RouteCacheOptions, 'onLookup' | 'onEviction' | 'onFollowerRestart'>>
  /** Where the route cache's gauges read when scraped (null: the cache is off). */
  readRouteCache: (() => RouteCacheStatus | null) | undefined
  requests: Histogram<'route' | 'method' | 'status_code'>
  commands: Histogram<'command'>
  commandFailures: Counter<'command'>
}

export function createMetrics (): Metrics {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  const registers = [registry]
  const writeRetries = new Counter({ name: 'phone_numbers_write_retries_total', help: 'Compare-and-swap writes of a user document that missed and were retried', registers })
  const deliveryFailures = new Counter({ name: 'phone_numbers_webhook_delivery_failures_total', help: 'Failed webhook delivery attempts (each is retried with backoff)', registers })
  const routeLookups = new Counter({ name: 'phone_numbers_route_cache_lookups_total', help: 'Inbound-route lookups through the route cache, by result (hit, or miss: read from the database)', labelNames: ['result'], registers })
  const routeEvictions = new Counter({ name: 'phone_numbers_route_cache_evictions_total', help: 'Route cache entries pushed out by its bound (least recently used first)', registers })
  const followerRestarts = new Counter({ name: 'phone_numbers_route_cache_follower_restarts_total', help: 'Times the route cache lost its place in the change log and was dropped, by reason', labelNames: ['reason'], registers })
  const metrics: Metrics = {
    registry,
    routeCacheHooks: {
      onLookup: (source) => routeLookups.inc({ result: source }),
      onEviction: () => routeEvictions.inc(),
      onFollowerRestart: (reason) => followerRestarts.inc({ reason })
    },
    readRouteCache: undefined,
    onWriteRetry: () => writeRetries.inc(),
    onDeliveryFailure: (_error, eventId) => { if (eventId !== undefined) deliveryFailures.inc() },
    readBacklog: undefined,
    requests: new Histogram({ name: 'http_request_duration_seconds', help: 'HTTP request durations by route pattern, method and status code', labelNames: ['route', 'method', 'status_code'], registers }),
    commands: new Histogram({ name: 'mongodb_command_duration_seconds', help: 'MongoDB command durations (succeeded and failed) by command name', labelNames: ['command'], buckets: COMMAND_BUCKETS, registers }),
    commandFailures: new Counter({ name: 'mongodb_command_failures_total', help: 'Failed MongoDB commands by command name', labelNames: ['command'], registers })
  }
  // eslint-disable-next-line no-new -- registered on the registry, read at collect time
  new Gauge({
    name: 'phone_numbers_event_backlog',
    help: 'Users whose change events wait in this process to be moved to the event log',
    registers,
    collect () { this.set(metrics.readBacklog?.() ?? 0) }
  })
  // eslint-disable-next-line no-new -- registered on the registry, read at collect time
  new Gauge({
    name: 'phone_numbers_route_cache_entries',
    help: 'Entries the route cache holds',
    registers,
    collect () { this.set(metrics.readRouteCache?.()?.size() ?? 0) }
  })
  // eslint-disable-next-line no-new -- registered on the registry, read at collect time
  new Gauge({
    name: 'phone_numbers_route_cache_follower_lag_seconds',
    help: 'Time since the route cache last read the change log through (how old its news of other processes\' changes may be)',
    registers,
    collect () { this.set((metrics.readRouteCache?.()?.followerLagMs() ?? 0) / 1000) }
  })
  return metrics
}

export interface MetricsPluginOptions {
  metrics: Metrics
  /** The client registered with `monitorCommands: true`. */
  client: MongoClient
  /** Serve /metrics on this port (and `host`) instead of the API port. */
  port?: number | undefined
  host: string
}

function watchCommands (client: MongoClient, { commands, commandFailures }: Metrics): void {
  client.on('commandSucceeded', (event: CommandSucceededEvent) => commands.observe({ command: event.commandName }, event.duration / 1000))
  client.on('commandFailed', (event: CommandFailedEvent) => {
    commands.observe({ command: event.commandName }, event.duration / 1000)
    commandFailures.inc({ command: event.commandName })
  })
}

/** The internal listener: GET /metrics, and `{ error, details }` 404s for anything else. */
function metricsServer (registry: Registry): Server {
  return createServer((request: IncomingMessage, response: ServerResponse) => {
    if (request.method !== 'GET' || request.url?.split('?')[0] !== METRICS_PATH) {
      response.writeHead(404, { 'content-type': 'application/json; charset=utf-8' })
      response.end(JSON.stringify({ error: 'Not Found', details: `only GET ${METRICS_PATH} is served on the metrics port` }))
      return
    }
    registry.metrics().then((text) => {
      response.writeHead(200, { 'content-type': registry.contentType })
      response.end(text)
    }, (error: unknown) => {
      response.writeHead(500, { 'content-type': 'application/json; charset=utf-8' })
      response.end(JSON.stringify({ error: 'Internal Server Error', details: error instanceof Error ? error.message : String(error) }))
    })
  })
}

async function listenSeparately (fastify: FastifyInstance, registry: Registry, port: number, host: string): Promise<void> {
  const server = metricsServer(registry)
  // Bound when the app is ready (listen() waits for that): a taken port fails the start.
  fastify.addHook('onReady', async () => {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, host, () => {
        server.off('error', reject)
        resolve()
      })
    })
    fastify.log.info({ port, host }, `metrics at http://${host}:${port}${METRICS_PATH}`)
  })
  fastify.addHook('onClose', async () => {
    if (!server.listening) return
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  })
}

async function metricsPlugin (fastify: FastifyInstance, options: MetricsPluginOptions): Promise<void> {
  const { metrics } = options
  watchCommands(options.client, metrics)
  // Read when scraped: the phone-number plugin is registered after this one.
  metrics.readBacklog = () => fastify.hasDecorator('orgPhoneNumbers') ? fastify.orgPhoneNumbers.eventBacklog() : 0
  metrics.readRouteCache = () => fastify.hasDecorator('orgPhoneNumbersRouteCache') ? fastify.orgPhoneNumbersRouteCache : null
  fastify.addHook('onResponse', async (request, reply) => {
    metrics.requests.observe({
      route: request.routeOptions.url ?? UNMATCHED_ROUTE,
      method: request.method,
      status_code: String(reply.statusCode)
    }, reply.elapsedTime / 1000)
  })
  if (options.port !== undefined) {
    await listenSeparately(fastify, metrics.registry, options.port, options.host)
    return
  }
  fastify.get(METRICS_PATH, { schema: { hide: true } }, async (_request, reply) => {
    return await reply.type(metrics.registry.contentType).send(await metrics.registry.metrics())
  })
}

// Not encapsulated: the request hook must see every route of the app.
export default fp(metricsPlugin, { name: 'org-phone-numbers-metrics', fastify: '5.x' })
