/**
 * The servers under test, each started in its own child process (child.ts):
 *
 * - ours: the standalone app (server/app.ts) on Fastify, request logging off, log level warn;
 * - ours-metrics: the same with METRICS=true (/metrics on the API port), to measure what metrics cost;
 * - ours-tracing: the same with OpenTelemetry on (the child runs with the server's tracing preload,
 *   exporting to the bench's OTLP receiver), to measure what tracing costs;
 * - ours-cached: the same with its route cache on (the standalone default; ours and ours-metrics run
 *   with ROUTE_CACHE=false, so their lookups measure the database path); BENCH_ROUTE_CACHE_TTL_MS
 *   sets its TTL (default 5 s: a hot set refreshes itself from the database every 5 s);
 * - baseline: a bare Fastify route, no auth, no validation, the same store call;
 * - peer: Express 5 + Mongoose (peer.ts);
 * - bare: bare Fastify routes answering the rejections with the plugin's own
 *   bodies, and (when asked) the inbound-route lookup without the plugin: no
 *   auth, no validation, the store's one users query and the same answer.
 *
 * Every server counts database commands per request with a CommandTracer.
 * Each child imports only what its own server needs (its RSS is measured).
 */
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { CommandTracer } from './tracing.js'
import type { AssignBody } from './workload.js'

// workload.ts's own helper would load the MongoDB driver into every child (the peer uses Mongoose's copy).
function phoneNumbersPath (organizationId: string, prefix = ''): string {
  return `${prefix}/api/organizations/${organizationId}/phone-numbers`
}

export const SERVER_KINDS = ['ours', 'ours-metrics', 'ours-tracing', 'ours-cached', 'baseline', 'peer', 'bare'] as const
export type ServerKind = typeof SERVER_KINDS[number]

export function isServerKind (value: unknown): value is ServerKind {
  return typeof value === 'string' && (SERVER_KINDS as readonly string[]).includes(value)
}

/** A canned answer of the bare route: status and exact body bytes. */
export interface CannedResponse {
  status: number
  body: string
}

export interface ServerSettings {
  kind: ServerKind
  /** Server URI with the benchmark database in its path. */
  mongodbUri: string
  jwtSecret: string
  /** bare only: route prefix (e.g. `/401`) → answer. */
  canned?: Record<string, CannedResponse> | undefined
  /** bare only: serve the inbound-route lookup too (connects to the database). */
  lookup?: boolean | undefined
}

export interface RunningServer {
  port: number
  tracer: CommandTracer
  close: () => Promise<void>
}

/** The URI with `monitorCommands=true` added to its query. */
export function withCommandMonitoring (uri: string): string {
  return `${uri}${uri.includes('?') ? '&' : '?'}monitorCommands=true`
}

function tracedFastify (tracer: CommandTracer, options: FastifyServerOptions = { logger: false }): FastifyInstance {
  const fastify = Fastify({ ...options, serverFactory: (handler) => tracer.createServer(handler) })
  // Root hook, inherited by every child context: the handler runs inside the request's trace.
  fastify.addHook('preHandler', (request, _reply, done) => tracer.enter(request.raw, done))
  return fastify
}

async function listen (fastify: FastifyInstance): Promise<number> {
  await fastify.listen({ port: 0, host: '127.0.0.1' })
  return (fastify.server.address() as AddressInfo).port
}

async function startOurs (settings: ServerSettings, tracer: CommandTracer, { metrics = false, routeCache = false } = {}): Promise<RunningServer> {
  const { default: app, appOptions, serverOptions } = await import('../server/app.js')
  const { readConfig } = await import('../server/config.js')
  // The standalone server's own configuration path, as `npm start` takes it.
  const mongodbUri = withCommandMonitoring(settings.mongodbUri)
  // The workload adds a fresh number to a user every other cycle, without end: lift the per-user cap.
  const config = readConfig({ MONGODB_URI: mongodbUri, JWT_SECRET: settings.jwtSecret, LOG_LEVEL: 'warn', REQUEST_LOGGING: 'false', MONGODB_SERVER_SELECTION_TIMEOUT_MS: '10000', MAX_NUMBERS_PER_USER: '10000', METRICS: String(metrics), ROUTE_CACHE: String(routeCache), ROUTE_CACHE_TTL_MS: process.env['BENCH_ROUTE_CACHE_TTL_MS'] })
  const fastify = tracedFastify(tracer, serverOptions(config)).withTypeProvider<TypeBoxTypeProvider>()
  await fastify.register(app, appOptions(config, { mongodbUri, jwtSecret: settings.jwtSecret, seedDemoData: false }))
  await fastify.ready()
  tracer.watch(fastify.mongo.client)
  return { port: await listen(fastify), tracer, close: () => fastify.close() }
}

async function startBaseline (settings: ServerSettings, tracer: CommandTracer): Promise<RunningServer> {
  const { createPhoneNumberStore } = await import('../src/domain/store.js')
  const { MongoClient, ObjectId } = await import('mongodb')
  const client = new MongoClient(settings.mongodbUri, { monitorCommands: true })
  await client.connect()
  tracer.watch(client)
  const store = createPhoneNumberStore(client.db(), { maxNumbersPerUser: 10_000 })
  const fastify = tracedFastify(tracer)
  fastify.post<{ Params: { organizationId: string }, Body: AssignBody }>(phoneNumbersPath(':organizationId'), async (request, reply) => {
    const { targetUserId, provider, phoneNumber, isDefault, isInboundEnabled, label } = request.body
    const result = await store.assign(new ObjectId(request.params.organizationId), new ObjectId(targetUserId), { provider, phoneNumber, isDefault, isInboundEnabled, label })
    if (result.status !== 'assigned') return await reply.code(result.status === 'conflict' ? 409 : 404).send({ error: result.status })
    const entry = result.assignment
    return {
      success: true,
      message: `${provider} phone number assigned`,
      assignment: { userId: targetUserId, ...entry, createdAt: entry.createdAt.toISOString(), updatedAt: entry.updatedAt.toISOString() }
    }
  })
  return {
    port: await listen(fastify),
    tracer,
    close: async () => {
      await fastify.close()
      await client.close()
    }
  }
}

async function startPeer (settings: ServerSettings, tracer: CommandTracer): Promise<RunningServer> {
  const { createPeerApp } = await import('./peer.js')
  const peer = await createPeerApp(settings.mongodbUri, settings.jwtSecret, tracer)
  const server: Server = tracer.createServer(peer.handler)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as AddressInfo).port,
    tracer,
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
      await peer.close()
    }
  }
}

/** An id as the plugin's answer shows it: the hex of an ObjectId. */
function hex (value: unknown): string {
  return (value as { toHexString?: () => string } | null)?.toHexString?.() ?? String(value)
}

async function startBare (settings: ServerSettings, tracer: CommandTracer): Promise<RunningServer> {
  const fastify = tracedFastify(tracer)
  for (const [prefix, canned] of Object.entries(settings.canned ?? {})) {
    fastify.post(phoneNumbersPath(':organizationId', prefix), async (_request, reply) => {
      return await reply.code(canned.status).type('application/json; charset=utf-8').send(canned.body)
    })
  }
  let closeClient = async (): Promise<void> => {}
  if (settings.lookup === true) {
    const { MongoClient } = await import('mongodb')
    const client = new MongoClient(settings.mongodbUri, { monitorCommands: true })
    await client.connect()
    tracer.watch(client)
    closeClient = () => client.close()
    const users = client.db().collection('users')
    // What store.findInboundRoute does for a number without a provider: one
    // query on the indexed phoneNumbers.phoneNumber, the same projection, then
    // the entries that route that number inbound.
    fastify.get<{ Params: { phoneNumber: string } }>('/api/phone-numbers/:phoneNumber/inbound-route', async (request, reply) => {
      const { phoneNumber } = request.params
      const holders = await users.find({ 'phoneNumbers.phoneNumber': phoneNumber }, { projection: { organizationId: 1, phoneNumbers: 1 } }).toArray()
      const routes: Array<{ phoneNumber: string, provider: string, organizationId: string, userId: string, label?: string }> = []
      for (const user of holders) {
        const entries: unknown = user['phoneNumbers']
        if (!Array.isArray(entries)) continue
        for (const entry of entries as Array<Record<string, unknown> | null>) {
          if (entry?.['phoneNumber'] !== phoneNumber || entry['isInboundEnabled'] !== true) continue
          const label = entry['label']
          routes.push({
            phoneNumber,
            provider: String(entry['provider']),
            organizationId: hex(user['organizationId']),
            userId: hex(user['_id']),
            ...(typeof label === 'string' ? { label } : {})
          })
        }
      }
      if (routes.length === 1) return routes[0]
      return await reply.code(routes.length === 0 ? 404 : 409).send({ error: routes.length === 0 ? 'No inbound route' : 'Ambiguous inbound route' })
    })
  }
  return {
    port: await listen(fastify),
    tracer,
    close: async () => {
      await fastify.close()
      await closeClient()
    }
  }
}

export async function startServer (settings: ServerSettings): Promise<RunningServer> {
  const tracer = new CommandTracer()
  switch (settings.kind) {
    case 'ours': return await startOurs(settings, tracer)
    case 'ours-metrics': return await startOurs(settings, tracer, { metrics: true })
    // The tracing itself was set up by the preload the harness gave this child (child-process.ts).
    case 'ours-tracing': return await startOurs(settings, tracer)
    case 'ours-cached': return await startOurs(settings, tracer, { routeCache: true })
    case 'baseline': return await startBaseline(settings, tracer)
    case 'peer': return await startPeer(settings, tracer)
    case 'bare': return await startBare(settings, tracer)
  }
}
