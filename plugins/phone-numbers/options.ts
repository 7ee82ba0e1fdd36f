/**
 * The plugin's options: their type, their defaults (one object, reused by the
 * standalone server's configuration) and the checks run at registration, each
 * failing with a message that says what to change.
 */
import type { Db } from 'mongodb'
import { DEFAULT_STORE_OPTIONS, isReservedUserField, isValidName, RESERVED_USER_FIELDS } from '../../src/domain/store.js'
import type { CallerClaims, PhoneNumbersAuthOptions } from './auth.js'
import type { EventHandler } from '../../src/domain/event-delivery.js'
import type { RouteCacheOptions } from './route-cache.js'

export const DEFAULT_OPTIONS = {
  ...DEFAULT_STORE_OPTIONS,
  bodyLimit: 16_384,
  deliveriesCollection: 'phoneNumberEventDeliveries',
  eventSweepIntervalMs: 30_000,
  idempotencyCollection: 'phoneNumberIdempotency',
  idempotencyTtlMs: 86_400_000,
  idempotencyLeaseMs: 60_000
} as const

/** How events reach `onEvent`; every field has a default. */
export interface EventDeliveryOptions {
  /** Collection of the pending deliveries. Default `phoneNumberEventDeliveries`. */
  collection?: string | undefined
  /** How long one attempt owns its event, in ms; the handler's signal aborts at half of it. Default 30000. */
  leaseMs?: number | undefined
  /** Attempts running at once (for different numbers). Default 8. */
  concurrency?: number | undefined
  /** Attempts before an event is marked failed and left for an operator. Default 25. */
  maxAttempts?: number | undefined
  /** First retry pause in ms, doubled per attempt (with full jitter). Default 1000. */
  retryBaseMs?: number | undefined
  /** Longest retry pause in ms. Default 300000. */
  retryMaxMs?: number | undefined
  /** How often pending deliveries are looked for (retries, other processes' events), in ms. Default 1000. */
  pollIntervalMs?: number | undefined
  /** How long a delivered event's document is kept, so that a late second copy of it is not delivered again, in ms. Default 900000. */
  keepDeliveredMs?: number | undefined
}

export interface OrgPhoneNumbersOptions {
  /** How callers authenticate. Required. */
  auth: PhoneNumbersAuthOptions
  /** Database to use. Default: `fastify.mongo.db` from @fastify/mongodb, registered before this plugin. */
  db?: Db | undefined
  /** Path prefix for every route of the plugin. Default `''` (routes at /api/organizations/...). */
  prefix?: string
  /**
   * Put before each operationId in a host's @fastify/swagger document (only
   * there: the served openapi.yaml keeps the contract's ids), e.g. `v2_`.
   * Give each registration its own when several share one document. Default `''`.
   */
  operationIdPrefix?: string | undefined
  /** Users collection. Default `DEFAULT_OPTIONS.usersCollection` (`users`). */
  usersCollection?: string | undefined
  /** Organizations collection. Default `organizations`. */
  organizationsCollection?: string | undefined
  /** User field holding the assignments array. Default `phoneNumbers`. */
  phoneNumbersField?: string | undefined
  /** Who may call the API. Default: `claims.role === 'SUPERADMIN'`. */
  isSuperAdmin?: ((claims: CallerClaims) => boolean) | undefined
  /**
   * Who may call GET /api/phone-numbers/{phoneNumber}/inbound-route, for
   * example a telephony gateway's service token. Default: `isSuperAdmin`.
   */
  canLookUpInboundRoutes?: ((claims: CallerClaims) => boolean) | undefined
  /** Collection of the number claims (which organization holds a number, which assignment routes it). Default `phoneNumberClaims`. */
  claimsCollection?: string | undefined
  /** How long a step another server process recorded on a number is given to land before this process fences it and goes on, in ms. Default 100. */
  inFlightGraceMs?: number | undefined
  /**
   * Key that signs the listing's cursors (32+ characters or bytes). Default:
   * derived from `auth.secret`, so every process of a deployment accepts the
   * others' cursors; with other auth modes a random key per process (set it
   * when several processes serve one API).
   */
  cursorSecret?: string | Buffer | undefined
  /** Re-check the caller's role in the users collection on every request (one extra query). Default false. */
  verifyRoleInDatabase?: boolean | undefined
  /** Create the indexes the store relies on at startup. Default true. */
  createIndexes?: boolean | undefined
  /** Largest accepted request body, in bytes. Default `DEFAULT_OPTIONS.bodyLimit` (16384). */
  bodyLimit?: number | undefined
  /** Compare-and-swap attempts per write under contention before answering 409. Default 10. */
  maxWriteAttempts?: number | undefined
  /** Most numbers one user may hold; a new one beyond it answers 409 "Phone number limit reached". Default 100. */
  maxNumbersPerUser?: number | undefined
  /** Also serve GET /openapi.json and /openapi.yaml. Default false. */
  serveOpenapi?: boolean | undefined
  /** Collection of the change log. Default `phoneNumberEvents`. */
  eventsCollection?: string | undefined
  /** The log shows events at least this old, in ms, so that none lands behind a reader's cursor. Default 1000. */
  eventVisibilityDelayMs?: number | undefined
  /** Delete events older than this many days (checked hourly). Default: keep them. */
  eventRetentionDays?: number | undefined
  /** How often events a crashed process left in user documents are looked for, in ms. Default 30000. */
  eventSweepIntervalMs?: number | undefined
  /**
   * Called with every change event after it is in the log, at least once
   * (de-duplicate on `event.id`), off the request path: a slow or throwing
   * handler never affects a request. A throw (or no answer within half the
   * lease) is retried with backoff; events of one number are handed over in
   * order. Pending events are kept in the database, so they survive a restart
   * and are shared by the processes of one database.
   */
  onEvent?: EventHandler | undefined
  eventDelivery?: EventDeliveryOptions | undefined
  /** Called each time a delivery to `onEvent` fails (it is logged and retried), e.g. to count failures; must not throw. */
  onDeliveryFailure?: ((error: unknown, eventId: string | undefined) => void) | undefined
  /** Called each time a compare-and-swap write of a user document misses and is retried, e.g. to count contention; must not throw. */
  onWriteRetry?: (() => void) | undefined
  /** Names this process to the others sharing the database (claims and delivery leases record it). Default: a random UUID. */
  instanceId?: string | undefined
  /**
   * An in-process cache of the inbound-route lookup (docs/route-cache.md):
   * `true` or its settings. Off by default: a host that looks routes up from
   * its own code, or runs many small processes, decides whether each should
   * follow the change log (4 reads a second). With it, a change made through
   * this process shows at once, one made through another process within
   * 1.5 s, a write other code makes straight into the users within `ttlMs`.
   */
  routeCache?: boolean | RouteCacheOptions | undefined
  /** Collection of the `Idempotency-Key` records (one per key, with the answer kept for replays). Default `phoneNumberIdempotency`. */
  idempotencyCollection?: string | undefined
  /** How long the answer of a request with an `Idempotency-Key` is replayed, in ms. Default 86400000 (24 h). */
  idempotencyTtlMs?: number | undefined
  /**
   * How long a running request keeps its `Idempotency-Key`, in ms: a repeat
   * meanwhile answers 409; past it (the process running it died, say) a repeat
   * takes the key over and runs. Keep it above the slowest request (a 1,000-item
   * bulk assign). Default 60000.
   */
  idempotencyLeaseMs?: number | undefined
}

export function optionError (message: string): Error {
  return new Error(`org-phone-numbers: ${message}`)
}

function checkName (name: string, value: unknown): void {
  if (value !== undefined && !isValidName(value)) {
    throw optionError(`${name} must be a non-empty name without '$', '.' or NUL, got ${JSON.stringify(value)}`)
  }
}

function checkPositiveInteger (name: string, value: unknown): void {
  if (value !== undefined && (typeof value !== 'number' || !Number.isInteger(value) || value < 1)) {
    throw optionError(`${name} must be a positive integer, got ${JSON.stringify(value)}`)
  }
}

function checkAuth (auth: unknown): void {
  if (typeof auth !== 'object' || auth === null) {
    throw optionError('auth is required: { secret }, { publicKey, algorithms }, { getKey, algorithms } or { useHostJwt: true }')
  }
  const given = auth as Record<string, unknown>
  const kinds = ['secret', 'publicKey', 'getKey', 'useHostJwt'].filter((kind) => given[kind] !== undefined)
  if (kinds.length !== 1) {
    throw optionError(`auth needs exactly one of secret, publicKey, getKey or useHostJwt, got ${kinds.length === 0 ? 'none' : kinds.join(', ')}`)
  }
  if (given['secret'] !== undefined && (typeof given['secret'] === 'string' ? given['secret'].length < 32 : !Buffer.isBuffer(given['secret']))) {
    throw optionError('auth.secret must be a string of at least 32 characters or a Buffer')
  }
  if (given['maxLifetimeSeconds'] !== undefined) checkPositiveInteger('auth.maxLifetimeSeconds', given['maxLifetimeSeconds'])
  if ((given['publicKey'] !== undefined || given['getKey'] !== undefined) && (!Array.isArray(given['algorithms']) || given['algorithms'].length === 0)) {
    throw optionError('auth.algorithms is required with publicKey or getKey, e.g. [\'RS256\']')
  }
  if (given['algorithms'] !== undefined && Array.isArray(given['algorithms']) && given['algorithms'].some((alg) => typeof alg !== 'string' || alg === 'none')) {
    throw optionError('auth.algorithms must list algorithm names; "none" is never accepted')
  }
}

function checkRouteCache (routeCache: unknown): void {
  if (routeCache === undefined || typeof routeCache === 'boolean') return
  if (typeof routeCache !== 'object' || routeCache === null) throw optionError(`routeCache must be true, false or { maxEntries, ttlMs, followIntervalMs, maxFollowerLagMs }, got ${JSON.stringify(routeCache)}`)
  const given = routeCache as Record<string, unknown>
  for (const name of ['maxEntries', 'ttlMs', 'followIntervalMs', 'maxFollowerLagMs'] as const) checkPositiveInteger(`routeCache.${name}`, given[name])
  for (const name of ['onLookup', 'onEviction', 'onFollowerRestart'] as const) {
    if (given[name] !== undefined && typeof given[name] !== 'function') throw optionError(`routeCache.${name} must be a function`)
  }
}

export function checkOptions (options: OrgPhoneNumbersOptions): void {
  checkAuth(options.auth)
  checkName('usersCollection', options.usersCollection)
  checkName('organizationsCollection', options.organizationsCollection)
  checkName('phoneNumbersField', options.phoneNumbersField)
  if (typeof options.phoneNumbersField === 'string' && isReservedUserField(options.phoneNumbersField)) {
    throw optionError(`phoneNumbersField ${JSON.stringify(options.phoneNumbersField)} would overwrite a user field the plugin reads (${RESERVED_USER_FIELDS.join(', ')})`)
  }
  checkName('claimsCollection', options.claimsCollection)
  const claimsCollection = options.claimsCollection ?? DEFAULT_STORE_OPTIONS.claimsCollection
  if ([options.usersCollection ?? DEFAULT_STORE_OPTIONS.usersCollection, options.organizationsCollection ?? DEFAULT_STORE_OPTIONS.organizationsCollection].includes(claimsCollection)) {
    throw optionError(`claimsCollection ${JSON.stringify(claimsCollection)} must differ from the users and organizations collections`)
  }
  checkPositiveInteger('inFlightGraceMs', options.inFlightGraceMs)
  checkName('eventsCollection', options.eventsCollection)
  const ownCollections = [
    options.usersCollection ?? DEFAULT_STORE_OPTIONS.usersCollection,
    options.organizationsCollection ?? DEFAULT_STORE_OPTIONS.organizationsCollection,
    claimsCollection,
    options.eventsCollection ?? DEFAULT_STORE_OPTIONS.eventsCollection,
    ...(options.onEvent === undefined ? [] : [options.eventDelivery?.collection ?? DEFAULT_OPTIONS.deliveriesCollection]),
    options.idempotencyCollection ?? DEFAULT_OPTIONS.idempotencyCollection
  ]
  if (new Set(ownCollections).size !== ownCollections.length) {
    throw optionError(`the users, organizations, claims, events, deliveries and idempotency collections must all be different collections, got ${ownCollections.join(', ')}`)
  }
  checkName('eventDelivery.collection', options.eventDelivery?.collection)
  checkName('idempotencyCollection', options.idempotencyCollection)
  checkPositiveInteger('idempotencyTtlMs', options.idempotencyTtlMs)
  checkPositiveInteger('idempotencyLeaseMs', options.idempotencyLeaseMs)
  checkPositiveInteger('eventVisibilityDelayMs', options.eventVisibilityDelayMs)
  checkPositiveInteger('eventRetentionDays', options.eventRetentionDays)
  checkPositiveInteger('eventSweepIntervalMs', options.eventSweepIntervalMs)
  for (const name of ['leaseMs', 'concurrency', 'maxAttempts', 'retryBaseMs', 'retryMaxMs', 'pollIntervalMs', 'keepDeliveredMs'] as const) {
    checkPositiveInteger(`eventDelivery.${name}`, options.eventDelivery?.[name])
  }
  if (options.onEvent !== undefined && typeof options.onEvent !== 'function') {
    throw optionError('onEvent must be a function (event, { signal, attempt }) => void | Promise<void>')
  }
  if (options.cursorSecret !== undefined && !((typeof options.cursorSecret === 'string' || Buffer.isBuffer(options.cursorSecret)) && options.cursorSecret.length >= 32)) {
    throw optionError('cursorSecret must be a string or Buffer of at least 32 characters or bytes')
  }
  checkPositiveInteger('bodyLimit', options.bodyLimit)
  checkRouteCache(options.routeCache)
  checkPositiveInteger('maxWriteAttempts', options.maxWriteAttempts)
  checkPositiveInteger('maxNumbersPerUser', options.maxNumbersPerUser)
  if (options.isSuperAdmin !== undefined && typeof options.isSuperAdmin !== 'function') {
    throw optionError('isSuperAdmin must be a function (claims) => boolean')
  }
  if (options.canLookUpInboundRoutes !== undefined && typeof options.canLookUpInboundRoutes !== 'function') {
    throw optionError('canLookUpInboundRoutes must be a function (claims) => boolean')
  }
  // Letters, digits, `_`, `.` and `-`: the ids stay valid identifiers' material for code generators.
  if (options.operationIdPrefix !== undefined && (typeof options.operationIdPrefix !== 'string' || !/^[\w.-]*$/.test(options.operationIdPrefix))) {
    throw optionError(`operationIdPrefix must be letters, digits, '_', '.' or '-', e.g. 'v2_', got ${JSON.stringify(options.operationIdPrefix)}`)
  }
  if (options.prefix !== undefined && (typeof options.prefix !== 'string' || (options.prefix !== '' && !options.prefix.startsWith('/')))) {
    throw optionError(`prefix must be '' or start with '/', got ${JSON.stringify(options.prefix)}`)
  }
}
