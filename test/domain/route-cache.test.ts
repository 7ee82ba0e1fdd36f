/**
 * The route cache's own rules, with a scripted lookup in place of the store
 * (no database: this is the pure in-memory part): a read in flight when its
 * number is invalidated answers its callers but is not kept; an ambiguous read
 * right after a known route answers that route and is never kept; the TTL;
 * no serving or keeping while the follower is not current; lookups of one
 * number share one read.
 */
import { ObjectId } from 'mongodb'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import type { Provider } from '../../src/domain/assignments.js'
import { createRouteCache } from '../../src/domain/route-cache.js'
import type { RouteResult } from '../../src/domain/store.js'

function routed (userId: ObjectId): RouteResult {
  const at = new Date()
  return { status: 'routed', holder: { userId, organizationId: new ObjectId(), assignment: { provider: 'twilio', phoneNumber: '+14165550401', isDefault: true, isInboundEnabled: true, createdAt: at, updatedAt: at } } }
}
const NO_ROUTE: RouteResult = { status: 'no-route' }

/** A lookup answering what `answers` holds now, after `delayMs`, counting its calls. */
function scriptedLookup (delayMs = 0): { lookUp: (phoneNumber: string, provider: Provider | undefined) => Promise<RouteResult>, calls: () => number, answer: (result: RouteResult) => void } {
  let current: RouteResult = NO_ROUTE
  let calls = 0
  return {
    lookUp: async () => {
      calls++
      const result = current
      await sleep(delayMs)
      return result
    },
    calls: () => calls,
    answer: (result) => { current = result }
  }
}

const n = '+14165550401'

t.test('a read in flight when the number is invalidated answers its callers, and is not kept', async (t) => {
  const script = scriptedLookup(50)
  const cache = createRouteCache({ maxEntries: 10, ttlMs: 60_000, lookUp: script.lookUp })
  const inFlight = cache.findInboundRoute(n, undefined)
  await sleep(10)
  cache.invalidate(n)
  const user = new ObjectId()
  script.answer(routed(user))
  t.same(await inFlight, NO_ROUTE, 'the read that began before the write answers what it read')
  t.match(await cache.findInboundRoute(n, undefined), { status: 'routed', holder: { userId: user } }, 'the next lookup reads again')
  t.equal(script.calls(), 2)
})

t.test('a read a no-cache lookup did not share still hears of the invalidation', async (t) => {
  const script = scriptedLookup(50)
  const cache = createRouteCache({ maxEntries: 10, ttlMs: 60_000, lookUp: script.lookUp })
  const shared = cache.findInboundRoute(n, undefined)
  const fresh = cache.findInboundRoute(n, undefined, true)
  await sleep(10)
  cache.invalidate(n)
  const user = new ObjectId()
  script.answer(routed(user))
  t.same(await Promise.all([shared, fresh]), [NO_ROUTE, NO_ROUTE], 'both began before the write')
  t.match(await cache.findInboundRoute(n, undefined), { status: 'routed', holder: { userId: user } }, 'neither was kept')
  t.equal(script.calls(), 3)
})

t.test('an ambiguous read right after a route answers the route, and is never kept', async (t) => {
  const script = scriptedLookup()
  const cache = createRouteCache({ maxEntries: 10, ttlMs: 60_000, lookUp: script.lookUp })
  const before = new ObjectId()
  script.answer(routed(before))
  t.match(await cache.findInboundRoute(n, undefined), { holder: { userId: before } })
  cache.invalidate(n)
  script.answer({ status: 'ambiguous', holders: [] })
  t.match(await cache.findInboundRoute(n, undefined), { status: 'routed', holder: { userId: before } }, 'the old route, not a 409')
  t.match(await cache.findInboundRoute(n, undefined), { status: 'routed' }, 'again: the ambiguous answer was not kept')
  t.equal(script.calls(), 3, 'each lookup read the database')
  t.same(await cache.findInboundRoute('+14165550402', undefined), { status: 'ambiguous', holders: [] }, 'with no route known before, ambiguous is answered')
})

t.test('entries expire after the TTL; no-cache reads at once', async (t) => {
  const script = scriptedLookup()
  const cache = createRouteCache({ maxEntries: 10, ttlMs: 100, lookUp: script.lookUp })
  await cache.findInboundRoute(n, undefined)
  await cache.findInboundRoute(n, undefined)
  t.equal(script.calls(), 1, 'kept')
  await cache.findInboundRoute(n, undefined, true)
  t.equal(script.calls(), 2, 'no-cache read')
  await sleep(150)
  await cache.findInboundRoute(n, undefined)
  t.equal(script.calls(), 3, 'read again after the TTL')
})

t.test('while the follower is not current, nothing is answered from memory or kept', async (t) => {
  const script = scriptedLookup()
  let current = false
  const cache = createRouteCache({ maxEntries: 10, ttlMs: 60_000, lookUp: script.lookUp, isCurrent: () => current })
  await cache.findInboundRoute(n, undefined)
  await cache.findInboundRoute(n, undefined)
  t.equal(script.calls(), 2)
  t.equal(cache.size(), 0)
  current = true
  await cache.findInboundRoute(n, undefined)
  await cache.findInboundRoute(n, undefined)
  t.equal(script.calls(), 3, 'kept once current')
})

t.test('concurrent lookups of one number share one read', async (t) => {
  const script = scriptedLookup(30)
  const cache = createRouteCache({ maxEntries: 10, ttlMs: 60_000, lookUp: script.lookUp })
  const answers = await Promise.all(Array.from({ length: 10 }, async () => await cache.findInboundRoute(n, 'twilio')))
  t.equal(script.calls(), 1)
  t.same(answers, Array.from({ length: 10 }, () => NO_ROUTE))
})
