/**
 * org-phone-numbers: the organization phone-number API as a Fastify plugin.
 *
 *   await app.register(orgPhoneNumbers, { auth: { secret: process.env.JWT_SECRET } })
 *
 * The plugin is wrapped with fastify-plugin only to expose the store as
 * `app.orgPhoneNumbers`; the routes, their auth hook, body parser, validator
 * and error handler live in a child context, so the host's own routes, error
 * format, JWT setup and hooks are left exactly as they were.
 */
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { Db } from 'mongodb'
import { createPhoneNumberStore, type PhoneNumberStore } from '../../src/domain/store.js'
import openapiDocumentRoutes from './openapi-document.js'
import phoneNumbersAuth, { isSuperAdminRole } from './auth.js'
import { replyWithContractError } from './error-handler.js'
import { checkOptions, DEFAULT_OPTIONS, optionError, type OrgPhoneNumbersOptions } from './options.js'
import phoneNumberRoutes from './routes.js'
import { createListCursorCodec, cursorKey } from './list-cursor.js'
import { useStrictJsonBodies } from './validation.js'
import { cacheRoutes, type RouteCacheStatus } from './route-cache.js'
import { createIdempotencyRecords } from '../../src/domain/idempotency-records.js'
import { startIdempotencySweeps, useIdempotencyKeys } from './idempotency.js'

export type { CallerClaims, PhoneNumbersAuthOptions } from './auth.js'
export type { HmacAlgorithm, PublicKeyAlgorithm, SecretAuthOptions, PublicKeyAuthOptions, KeyResolverAuthOptions, HostJwtAuthOptions } from './auth.js'
export { isSuperAdminRole } from './auth.js'
export { createPhoneNumberStore, isReservedUserField, isValidName, RESERVED_USER_FIELDS } from '../../src/domain/store.js'
export type {
  StoredCaller, PhoneNumberStore, PhoneNumberStoreOptions, EventDeliveryOptions, StoreLogger, StoreStep, ClaimRepair, AssignResult, RemoveResult, TransferInput, TransferResult, RouteResult,
  ListResult, ListedAssignment, AssignmentHolder, OtherOrganization, InboundHeld, MalformedField
} from '../../src/domain/store.js'
export type { NumberHolder } from '../../src/domain/number-holders.js'
export { PROVIDERS, type StoredAssignment, type AssignmentInput, type AssignmentKey, type Provider } from '../../src/domain/assignments.js'
export * from './errors.js'
export { replyToFrameworkError } from './error-handler.js'
export { DEFAULT_OPTIONS, type OrgPhoneNumbersOptions } from './options.js'
export type { EventHandler, DeliveryContext } from '../../src/domain/event-delivery.js'
export type { PhoneNumberEvent } from '../../schemas/generated/typebox.js'
export { DEFAULT_ROUTE_CACHE_OPTIONS, type RouteCacheOptions, type RouteCacheStatus, type RouteLookupSource, type FollowerRestartReason } from './route-cache.js'
export { createWebhookHandler, signWebhook, verifyWebhook, type WebhookOptions, type WebhookCheck } from './webhook.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The phone-number store the routes use (also for inbound routing: `findInboundRoute`). */
    orgPhoneNumbers: PhoneNumberStore
    /** The inbound-route cache's state; `null` when the `routeCache` option is off. */
    orgPhoneNumbersRouteCache: RouteCacheStatus | null
  }
}

/** Longest pause between two sweeps of expired Idempotency-Key records. */
const IDEMPOTENCY_SWEEP_MAX_MS = 10 * 60_000

function resolveDb (fastify: FastifyInstance, options: OrgPhoneNumbersOptions): Db {
  if (options.db !== undefined) return options.db
  const mongo = (fastify as FastifyInstance & { mongo?: { db?: Db } }).mongo
  if (mongo?.db === undefined) {
    throw optionError('no database: pass options.db, or register @fastify/mongodb with a database name in its url before this plugin')
  }
  return mongo.db
}

async function orgPhoneNumbers (fastify: FastifyInstance, options: OrgPhoneNumbersOptions): Promise<void> {
  if (fastify.hasDecorator('orgPhoneNumbers')) {
    throw optionError('already registered in this context; register it once, or once per encapsulated context (e.g. inside fastify.register(async (api) => ...))')
  }
  checkOptions(options)
  const db = resolveDb(fastify, options)
  const uncachedStore = createPhoneNumberStore(db, { ...options, log: fastify.log })
  const visibilityDelayMs = options.eventVisibilityDelayMs ?? DEFAULT_OPTIONS.eventVisibilityDelayMs
  const cached = options.routeCache === undefined || options.routeCache === false
    ? undefined
    : cacheRoutes(uncachedStore, options.routeCache === true ? {} : options.routeCache, visibilityDelayMs)
  // With the cache, every write (the routes' and the host's) invalidates its number in this process.
  const store = cached?.store ?? uncachedStore
  const lookUpRoute = cached?.lookUp ?? (async (phoneNumber, provider) => await store.findInboundRoute(phoneNumber, provider))
  const idempotencyTtlMs = options.idempotencyTtlMs ?? DEFAULT_OPTIONS.idempotencyTtlMs
  const idempotency = createIdempotencyRecords(db, {
    collection: options.idempotencyCollection ?? DEFAULT_OPTIONS.idempotencyCollection,
    ttlMs: idempotencyTtlMs,
    leaseMs: options.idempotencyLeaseMs ?? DEFAULT_OPTIONS.idempotencyLeaseMs
  })
  if (options.createIndexes ?? true) {
    await store.ensureIndexes()
    const expiry = await idempotency.ensureIndexes()
    if (!expiry.ttl) fastify.log.info(`org-phone-numbers: the database refused a TTL index on the Idempotency-Key records (${expiry.ttlRefused}); periodic sweeps delete expired ones`)
  }
  fastify.decorate('orgPhoneNumbers', store)
  fastify.decorate('orgPhoneNumbersRouteCache', cached?.status ?? null)
  let stopIdempotencySweeps: (() => Promise<void>) | undefined
  fastify.addHook('onReady', async () => {
    cached?.start(fastify.log)
    stopIdempotencySweeps = startIdempotencySweeps(idempotency, Math.min(Math.max(idempotencyTtlMs, 1000), IDEMPOTENCY_SWEEP_MAX_MS), fastify.log)
    store.start()
  })
  fastify.addHook('onClose', async () => { await Promise.all([store.stop(), cached?.stop(), stopIdempotencySweeps?.()]) })

  await fastify.register(async function phoneNumbersContext (context) {
    useStrictJsonBodies(context)
    context.setErrorHandler(replyWithContractError)
    if (options.serveOpenapi === true) await context.register(openapiDocumentRoutes)
    await context.register(async function securedRoutes (secured) {
      // Answers carry phone numbers: no browser or proxy cache may keep them.
      secured.addHook('onRequest', async (_request, reply) => { reply.header('cache-control', 'no-store') })
      await secured.register(phoneNumbersAuth, {
        auth: options.auth,
        isSuperAdmin: options.isSuperAdmin ?? isSuperAdminRole,
        canLookUpInboundRoutes: options.canLookUpInboundRoutes ?? options.isSuperAdmin ?? isSuperAdminRole,
        verifyRoleInDatabase: options.verifyRoleInDatabase ?? false,
        store
      })
      useIdempotencyKeys(secured, idempotency)
      const cursors = createListCursorCodec(cursorKey(options.cursorSecret, 'secret' in options.auth ? options.auth.secret : undefined))
      await secured.register(phoneNumberRoutes, { store, lookUpRoute, bodyLimit: options.bodyLimit ?? DEFAULT_OPTIONS.bodyLimit, cursors, operationIdPrefix: options.operationIdPrefix })
    })
  }, { prefix: options.prefix ?? '' })
}

export default fp(orgPhoneNumbers, { name: 'org-phone-numbers', fastify: '5.x' })
