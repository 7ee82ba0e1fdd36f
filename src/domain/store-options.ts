/**
 * The store's options and their defaults: the one place they are defined and
 * documented. The plugin's options extend these (plugins/phone-numbers/options.ts
 * adds only what is about HTTP), and the standalone server reads its defaults
 * from here through the plugin's `DEFAULT_OPTIONS`.
 */
import type { EventHandler } from './event-delivery.js'
import type { StoreStep } from './store-api.js'

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

/** Where the background work reports; pino's (and so Fastify's) logger fits. Default: nothing is logged. */
export interface StoreLogger {
  info: (details: object, message: string) => void
  warn: (details: object, message: string) => void
  error: (details: object, message: string) => void
}

export interface PhoneNumberStoreOptions {
  /** Users collection; each user has `organizationId` (ObjectId) and the assignments array. Default `users`. */
  usersCollection?: string | undefined
  /** Organizations collection, looked up by `_id`. Default `organizations`. */
  organizationsCollection?: string | undefined
  /** User field holding the assignments array. Default `phoneNumbers`. */
  phoneNumbersField?: string | undefined
  /** Collection of the number claims (one document per number: its organization and inbound route). Default `phoneNumberClaims`. */
  claimsCollection?: string | undefined
  /** Compare-and-swap attempts per write under contention before answering `conflict` (HTTP 409). Default 10. */
  maxWriteAttempts?: number | undefined
  /**
   * Most entries one user may hold; assigning a new number beyond it is refused
   * (`limit-reached`, HTTP 409 "Phone number limit reached"). Keeps a user
   * document far from MongoDB's 16 MB and every rewrite of the array cheap. A
   * user already above it keeps updating and removing. Default 100.
   */
  maxNumbersPerUser?: number | undefined
  /**
   * How long a step another server process recorded on a number's claim is
   * given to land before this store fences it (makes it miss for good) and
   * goes on, in ms. Only a writer really in flight is waited for, and only
   * this long. Default 100.
   */
  inFlightGraceMs?: number | undefined
  /** Collection of the change log (one document per stored change). Default `phoneNumberEvents`. */
  eventsCollection?: string | undefined
  /**
   * The log shows events at least this old, in ms, so that an event a slow
   * flush inserts late never lands behind a reader's cursor (see
   * event-log.ts). Default 1000.
   */
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
  /** Where the background work logs (events it moved, failed deliveries, errors it retries); pino's logger fits. Default: none. */
  log?: StoreLogger | undefined
  /** Names this process to the others sharing the database (claims and delivery leases record it). Default: a random UUID. */
  instanceId?: string | undefined
  /**
   * Called after each step of a multi-step write; a throw stops the
   * operation there, as a crash would. For tests of crash recovery.
   */
  onStep?: ((step: StoreStep) => void | Promise<void>) | undefined
}

export const DEFAULT_STORE_OPTIONS = {
  usersCollection: 'users',
  organizationsCollection: 'organizations',
  phoneNumbersField: 'phoneNumbers',
  claimsCollection: 'phoneNumberClaims',
  maxWriteAttempts: 10,
  maxNumbersPerUser: 100,
  inFlightGraceMs: 100,
  eventsCollection: 'phoneNumberEvents',
  eventVisibilityDelayMs: 1000,
  eventSweepIntervalMs: 30_000,
  deliveriesCollection: 'phoneNumberEventDeliveries'
} as const

/** A usable collection or field name: non-empty, without '$', '.' or NUL (MongoDB reserves them). */
export function isValidName (value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && !/[$.\0]/.test(value)
}

/** User fields the store reads besides the assignments: the assignments field must not be one of them. */
export const RESERVED_USER_FIELDS: readonly string[] = Object.freeze(['_id', 'organizationId', 'role', 'roles'])

export function isReservedUserField (name: string): boolean {
  return RESERVED_USER_FIELDS.includes(name)
}
