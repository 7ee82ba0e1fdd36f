/**
 * The plugin's inbound-route cache (option `routeCache`): the cache
 * (src/domain/route-cache.ts), the follower of the change log that
 * invalidates other processes' changes (src/domain/route-follower.ts), and a
 * store whose writes invalidate their number as soon as they return, whether
 * the routes or the host's code call them (read-your-writes in this process).
 */
import type { FastifyBaseLogger } from 'fastify'
import type { Provider } from '../../src/domain/assignments.js'
import { createRouteCache, type RouteLookupSource } from '../../src/domain/route-cache.js'
import { startRouteFollower, type FollowerRestartReason, type RouteFollower } from '../../src/domain/route-follower.js'
import type { PhoneNumberStore, RouteResult } from '../../src/domain/store.js'

export type { RouteLookupSource } from '../../src/domain/route-cache.js'
export type { FollowerRestartReason } from '../../src/domain/route-follower.js'

export interface RouteCacheOptions {
  /** Most entries kept (one per number and provider asked for); the least recently used goes first. Default 100000. */
  maxEntries?: number | undefined
  /** Longest an entry is answered, in ms: the bound for writes other code makes straight into the users. Default 5000. */
  ttlMs?: number | undefined
  /** How often the change log is read for other processes' changes, in ms. Default 250. */
  followIntervalMs?: number | undefined
  /** Past this time without a complete read of the log, lookups skip the cache, in ms. Default 1000. */
  maxFollowerLagMs?: number | undefined
  /** Called on every cached lookup (`miss` includes `Cache-Control: no-cache`), e.g. to count them; must not throw. */
  onLookup?: ((source: RouteLookupSource) => void) | undefined
  /** Called when the bound pushes an entry out; must not throw. */
  onEviction?: (() => void) | undefined
  /** Called when the follower starts over and the cache is dropped; must not throw. */
  onFollowerRestart?: ((reason: FollowerRestartReason) => void) | undefined
}

export const DEFAULT_ROUTE_CACHE_OPTIONS = {
  maxEntries: 100_000,
  ttlMs: 5000,
  followIntervalMs: 250,
  maxFollowerLagMs: 1000
} as const

/** What a host (or the standalone server's metrics) may read of the cache. */
export interface RouteCacheStatus {
  /** Entries held now. */
  size (): number
  /** Ms since the follower's last complete read of the change log. */
  followerLagMs (): number
}

export interface InboundRouteLookup {
  /** `fresh`: the caller asked for `Cache-Control: no-cache`. */
  (phoneNumber: string, provider: Provider | undefined, fresh: boolean): Promise<RouteResult>
}

export interface CachedRoutes {
  store: PhoneNumberStore
  lookUp: InboundRouteLookup
  status: RouteCacheStatus
  /** Starts following the log (when the server is ready). */
  start (log: FastifyBaseLogger): void
  stop (): Promise<void>
}

/** The store as given, with every write invalidating its number once it returns (or throws). */
function invalidatingWrites (store: PhoneNumberStore, invalidate: (phoneNumber: string) => void): PhoneNumberStore {
  return {
    ...store,
    assign: async (organizationId, userId, input, change) => {
      try { return await store.assign(organizationId, userId, input, change) } finally { invalidate(input.phoneNumber) }
    },
    remove: async (organizationId, userId, key, change) => {
      try { return await store.remove(organizationId, userId, key, change) } finally { invalidate(key.phoneNumber) }
    },
    transfer: async (organizationId, input, change) => {
      try { return await store.transfer(organizationId, input, change) } finally { invalidate(input.phoneNumber) }
    },
    repairClaim: async (phoneNumber) => {
      try { return await store.repairClaim(phoneNumber) } finally { invalidate(phoneNumber) }
    }
  }
}

export function cacheRoutes (store: PhoneNumberStore, options: RouteCacheOptions, eventVisibilityDelayMs: number): CachedRoutes {
  const settings = {
    maxEntries: options.maxEntries ?? DEFAULT_ROUTE_CACHE_OPTIONS.maxEntries,
    ttlMs: options.ttlMs ?? DEFAULT_ROUTE_CACHE_OPTIONS.ttlMs,
    followIntervalMs: options.followIntervalMs ?? DEFAULT_ROUTE_CACHE_OPTIONS.followIntervalMs,
    maxFollowerLagMs: options.maxFollowerLagMs ?? DEFAULT_ROUTE_CACHE_OPTIONS.maxFollowerLagMs
  }
  let follower: RouteFollower | undefined
  const cache = createRouteCache({
    maxEntries: settings.maxEntries,
    ttlMs: settings.ttlMs,
    lookUp: store.findInboundRoute,
    // Before the follower runs (and while it cannot read the log) nothing is kept or answered from memory.
    isCurrent: () => follower?.isCurrent() ?? false,
    onLookup: options.onLookup,
    onEviction: options.onEviction
  })
  return {
    store: invalidatingWrites(store, cache.invalidate),
    lookUp: async (phoneNumber, provider, fresh) => await cache.findInboundRoute(phoneNumber, provider, fresh),
    status: { size: cache.size, followerLagMs: () => follower?.lagMs() ?? 0 },
    start (log) {
      follower = startRouteFollower({
        feed: store.changeFeed,
        intervalMs: settings.followIntervalMs,
        // Events land at most this far behind positions already read (event-log.ts).
        lookbackMs: eventVisibilityDelayMs,
        maxLagMs: settings.maxFollowerLagMs,
        onChange: cache.invalidate,
        onRestart: (reason) => {
          cache.clear()
          log.warn({ reason }, 'org-phone-numbers: the route cache lost its place in the change log; cache dropped, following from now')
          options.onFollowerRestart?.(reason)
        },
        onError: (error) => log.error({ err: error }, 'org-phone-numbers: reading the change log for the route cache (the cache is skipped while this lasts)')
      })
    },
    async stop () { await follower?.stop() }
  }
}
