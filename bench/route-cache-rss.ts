/**
 * npm run bench:route-cache-rss [-- 100000]: the memory of a full route cache.
 * Fills the cache (src/domain/route-cache.ts) with N routed answers shaped as
 * the store returns them (ObjectIds, a stored assignment with dates and a
 * label), in this process and without a database, then prints the process's
 * RSS and V8 heap before and after (after a full GC when run with
 * --expose-gc, as the npm script does).
 */
import { ObjectId } from 'mongodb'
import { createRouteCache } from '../src/domain/route-cache.js'
import type { RouteResult } from '../src/domain/store.js'

const entries = Number(process.argv[2] ?? 100_000)
if (!Number.isInteger(entries) || entries < 1) throw new Error(`the entry count must be a positive integer, got ${process.argv[2] ?? ''}`)

function routeOf (index: number): RouteResult {
  const phoneNumber = `+1${String(2_000_000_000 + index)}`
  const at = new Date()
  return {
    status: 'routed',
    holder: {
      userId: new ObjectId(),
      organizationId: new ObjectId(),
      assignment: { provider: 'twilio', phoneNumber, isDefault: true, isInboundEnabled: true, label: `Desk ${index}`, createdAt: at, updatedAt: at }
    }
  }
}

function memory (): { rssMb: number, heapUsedMb: number } {
  globalThis.gc?.()
  const { rss, heapUsed } = process.memoryUsage()
  return { rssMb: rss / 1024 / 1024, heapUsedMb: heapUsed / 1024 / 1024 }
}

const cache = createRouteCache({ maxEntries: entries, ttlMs: 3_600_000, lookUp: async (phoneNumber) => routeOf(Number(phoneNumber.slice(2)) - 2_000_000_000) })
const before = memory()
for (let index = 0; index < entries; index++) await cache.findInboundRoute(`+1${String(2_000_000_000 + index)}`, undefined)
const after = memory()
process.stdout.write(`${JSON.stringify({ entries: cache.size(), gc: globalThis.gc !== undefined, before, after, perEntryBytes: Math.round((after.rssMb - before.rssMb) * 1024 * 1024 / entries) })}\n`)
