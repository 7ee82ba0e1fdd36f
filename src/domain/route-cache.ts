/**
 * The inbound-route cache of one process: both answers (a route, and "no
 * route") by number and provider, LRU-bounded, each kept at most `ttlMs` (the
 * floor for writes other code makes straight into the users, which log no
 * event). Changes made through this process or heard from the change log
 * invalidate a number; the next lookup then reads the database.
 *
 * Two rules keep it from ever answering what the database never did:
 * - A read that was in flight when its number was invalidated (or the cache
 *   cleared) answers its own callers but is not kept: it may predate the change.
 * - "Ambiguous" is never kept. The store resolves a transfer's two holders
 *   through the claim, so a move reads as the old route or the new one; if a
 *   read still meets a move half seen, the route known just before is
 *   answered rather than a 409.
 */
import { LRUCache } from 'lru-cache'
import { PROVIDERS, type Provider } from './assignments.js'
import type { RouteResult } from './store-api.js'

/** How long after it was read a route may stand in for an ambiguous read (a transfer takes milliseconds). */
const TRANSFER_GRACE_MS = 2000

export type RouteLookupSource = 'hit' | 'miss'

export interface RouteCacheOptions {
  maxEntries: number
  ttlMs: number
  lookUp: (phoneNumber: string, provider: Provider | undefined) => Promise<RouteResult>
  /** False while the cache cannot vouch for its entries (the change log is not followed): every lookup then reads the database. */
  isCurrent?: (() => boolean) | undefined
  onLookup?: ((source: RouteLookupSource) => void) | undefined
  onEviction?: (() => void) | undefined
}

export interface RouteCache {
  /** `fresh`: read the database whatever the cache holds, and keep the answer. */
  findInboundRoute (phoneNumber: string, provider: Provider | undefined, fresh?: boolean): Promise<RouteResult>
  /** The number changed: every provider's entry must be read again. */
  invalidate (phoneNumber: string): void
  /** Forget everything (the change log's place was lost). */
  clear (): void
  size (): number
}

interface Entry {
  result: Exclude<RouteResult, { status: 'ambiguous' }>
  readAt: number
  /** Invalidated: kept only as the route known before a move. */
  stale: boolean
}

interface Flight {
  key: string
  promise: Promise<RouteResult>
  /** Invalidated while in flight: its answer is not kept. */
  discarded: boolean
}

const ANY_PROVIDER = ''
const KEY_PROVIDERS: ReadonlyArray<Provider | typeof ANY_PROVIDER> = [ANY_PROVIDER, ...PROVIDERS]

function keyOf (phoneNumber: string, provider: Provider | typeof ANY_PROVIDER | undefined): string {
  return `${phoneNumber}\u0000${provider ?? ANY_PROVIDER}`
}

export function createRouteCache (options: RouteCacheOptions): RouteCache {
  const { ttlMs, lookUp, onLookup, onEviction } = options
  const isCurrent = options.isCurrent ?? (() => true)
  const entries = new LRUCache<string, Entry>({
    max: options.maxEntries,
    dispose: (_entry, _key, reason) => { if (reason === 'evict') onEviction?.() }
  })
  /** The read a lookup of a key may share (the newest one started). */
  const flights = new Map<string, Flight>()
  /** Every read under way, shared or not (a no-cache read is not shared): all must hear of an invalidation. */
  const running = new Set<Flight>()

  function usable (entry: Entry | undefined, now: number): entry is Entry {
    return entry !== undefined && !entry.stale && now - entry.readAt < ttlMs
  }

  async function read (key: string, phoneNumber: string, provider: Provider | undefined): Promise<RouteResult> {
    const startedAt = Date.now()
    const flight: Flight = { key, promise: lookUp(phoneNumber, provider), discarded: false }
    flights.set(key, flight)
    running.add(flight)
    let result: RouteResult
    try {
      result = await flight.promise
    } finally {
      running.delete(flight)
      if (flights.get(key) === flight) flights.delete(key)
    }
    const known = entries.peek(key)
    if (result.status === 'ambiguous') {
      const before = known?.result
      return before?.status === 'routed' && startedAt - known!.readAt < TRANSFER_GRACE_MS ? before : result
    }
    if (!flight.discarded && isCurrent()) entries.set(key, { result, readAt: startedAt, stale: false })
    return result
  }

  async function findInboundRoute (phoneNumber: string, provider: Provider | undefined, fresh = false): Promise<RouteResult> {
    const key = keyOf(phoneNumber, provider)
    if (!fresh && isCurrent()) {
      const entry = entries.get(key)
      if (usable(entry, Date.now())) {
        onLookup?.('hit')
        return entry.result
      }
      onLookup?.('miss')
      // Lookups of one number share one read (a burst of calls to a number cached a moment ago).
      const flight = flights.get(key)
      if (flight !== undefined) return await flight.promise
    } else {
      onLookup?.('miss')
    }
    return await read(key, phoneNumber, provider)
  }

  function invalidate (phoneNumber: string): void {
    const keys = new Set(KEY_PROVIDERS.map((provider) => keyOf(phoneNumber, provider)))
    for (const flight of running) if (keys.has(flight.key)) flight.discarded = true
    for (const key of keys) {
      flights.delete(key)
      const entry = entries.peek(key)
      if (entry !== undefined) entry.stale = true
    }
  }

  function clear (): void {
    for (const flight of running) flight.discarded = true
    flights.clear()
    entries.clear()
  }

  return { findInboundRoute, invalidate, clear, size: () => entries.size }
}
