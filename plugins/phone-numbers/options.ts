/**
 * The plugin's options: their type (the store's, plus the HTTP side's),
 * their defaults (one object, reused by the standalone server's
 * configuration) and the checks run at registration, each failing with a
 * message that says what to change.
 */
import type { Db } from 'mongodb'
import { DEFAULT_STORE_OPTIONS, isReservedUserField, isValidName, RESERVED_USER_FIELDS, type PhoneNumberStoreOptions } from '../../src/domain/store.js'
import type { CallerClaims, PhoneNumbersAuthOptions } from './auth.js'
import type { RouteCacheOptions } from './route-cache.js'

export const DEFAULT_OPTIONS = {
  ...DEFAULT_STORE_OPTIONS,
  bodyLimit: 16_384,
  idempotencyCollection: 'phoneNumberIdempotency',
  idempotencyTtlMs: 86_400_000,
  idempotencyLeaseMs: 60_000
} as const

/**
 * The store's options (collections, field, write limits, the change log and
 * its delivery: documented once, in src/domain/store-options.ts) and what
 * only the HTTP side needs. The plugin hands the store its logger.
 */
export interface OrgPhoneNumbersOptions extends Omit<PhoneNumberStoreOptions, 'log'> {
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
  /** Who may call the API. Default: `claims.role === 'SUPERADMIN'`. */
  isSuperAdmin?: ((claims: CallerClaims) => boolean) | undefined
  /**
   * Who may call GET /api/phone-numbers/{phoneNumber}/inbound-route, for
   * example a telephony gateway's service token. Default: `isSuperAdmin`.
   */
  canLookUpInboundRoutes?: ((claims: CallerClaims) => boolean) | undefined
  /**
   * Key that signs the listing's cursors (32+ characters or bytes). Default:
   * derived from `auth.secret`, so every process of a deployment accepts the
   * others' cursors; with other auth modes a random key per process (set it
   * when several processes serve one API).
   */
  cursorSecret?: string | Buffer | undefined
  /** Re-check the caller's role in the users collection on every request (one extra query). Default false. */
  verifyRoleInDatabase?: boolean | undefined
  /** Create the indexes the store relies on at startup (src/domain/store-indexes.ts). Default true. */
  createIndexes?: boolean | undefined
  /** Largest accepted request body, in bytes. Default `DEFAULT_OPTIONS.bodyLimit` (16384). */
  bodyLimit?: number | undefined
  /** Also serve GET /openapi.json and /openapi.yaml. Default false. */
  serveOpenapi?: boolean | undefined
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
