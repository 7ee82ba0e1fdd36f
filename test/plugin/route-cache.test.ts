/**
 * The plugin's `routeCache` option through app.inject: off by default (every
 * lookup reads the users, so a host's direct write shows at once), and on:
 * both answers kept, every write through the plugin's routes or the host's
 * calls to the store invalidating its number at once, `Cache-Control:
 * no-cache` reading past the cache, the bound evicting least recently used
 * entries, and bad settings refused at registration.
 */
import Fastify from 'fastify'
import { ObjectId } from 'mongodb'
import t from 'tap'
import orgPhoneNumbers, { type OrgPhoneNumbersOptions, type RouteLookupSource } from '../../plugins/phone-numbers/index.js'
import { createTestDatabase } from '../helper-database.js'
import { build, eventsSettled, phoneNumbersUrl, TEST_SECRET } from '../helper.js'

function routeUrl (phoneNumber: string): string {
  return `/api/phone-numbers/${encodeURIComponent(phoneNumber)}/inbound-route`
}

t.test('off by default: no cache, a host\'s direct write shows on the next lookup', async (t) => {
  const { app, db, fixture, headers } = await build(t)
  t.equal(app.orgPhoneNumbersRouteCache, null, 'no cache decorator state')
  const n = '+14165550301'
  const assigned = await app.inject({ method: 'POST', url: phoneNumbersUrl(fixture.organizationId), headers, payload: { targetUserId: fixture.userId, provider: 'twilio', phoneNumber: n } })
  t.equal(assigned.statusCode, 200)
  t.match((await app.inject({ method: 'GET', url: routeUrl(n), headers })).json(), { userId: fixture.userId })
  await eventsSettled(db)
  await db.collection('users').updateOne({ _id: new ObjectId(fixture.userId) }, { $set: { phoneNumbers: [] } })
  t.equal((await app.inject({ method: 'GET', url: routeUrl(n), headers })).statusCode, 404, 'read from the users every time')
})

t.test('on: both answers cached, writes invalidate at once, no-cache reads past it', async (t) => {
  const lookups: RouteLookupSource[] = []
  const { app, db, fixture, headers } = await build(t, { routeCache: { ttlMs: 60_000, onLookup: (source) => lookups.push(source) } })
  const cache = app.orgPhoneNumbersRouteCache
  t.not(cache, null, 'the cache state is decorated')
  const n = '+14165550302'
  const lookUp = async (extra: Record<string, string> = {}): Promise<{ status: number, userId: unknown }> => {
    const answer = await app.inject({ method: 'GET', url: routeUrl(n), headers: { ...headers, ...extra } })
    return { status: answer.statusCode, userId: answer.statusCode === 200 ? answer.json<{ userId: string }>().userId : undefined }
  }

  t.same(await lookUp(), { status: 404, userId: undefined }, 'no route')
  t.same(await lookUp(), { status: 404, userId: undefined }, 'no route, from the cache')
  t.same(lookups, ['miss', 'hit'], 'the "no route" answer was kept')
  t.equal(cache?.size(), 1)

  const assigned = await app.inject({ method: 'POST', url: phoneNumbersUrl(fixture.organizationId), headers, payload: { targetUserId: fixture.userId, provider: 'twilio', phoneNumber: n } })
  t.equal(assigned.statusCode, 200)
  t.same(await lookUp(), { status: 200, userId: fixture.userId }, 'the assignment shows at once')
  t.same(await lookUp(), { status: 200, userId: fixture.userId })
  t.same(lookups.slice(2), ['miss', 'hit'], 'read again after the write, then kept')

  const moved = await app.inject({ method: 'POST', url: `${phoneNumbersUrl(fixture.organizationId)}/transfer`, headers, payload: { fromUserId: fixture.userId, toUserId: fixture.otherUserId, provider: 'twilio', phoneNumber: n } })
  t.equal(moved.statusCode, 200)
  t.same(await lookUp(), { status: 200, userId: fixture.otherUserId }, 'the transfer shows at once')

  // The host's code writes through the decorated store: invalidated too.
  const removed = await app.orgPhoneNumbers.remove(new ObjectId(fixture.organizationId), new ObjectId(fixture.otherUserId), { provider: 'twilio', phoneNumber: n })
  t.equal(removed.status, 'removed')
  t.same(await lookUp(), { status: 404, userId: undefined }, 'the host\'s store call shows at once')

  // A write straight into the users logs no event: the cache keeps its answer until the TTL, or no-cache.
  await app.orgPhoneNumbers.assign(new ObjectId(fixture.organizationId), new ObjectId(fixture.userId), { provider: 'sinch', phoneNumber: n })
  t.same(await lookUp(), { status: 200, userId: fixture.userId })
  // The background flush rewrites the user's outbox; on FerretDB a write racing it can be lost, so let it finish.
  await eventsSettled(db)
  await db.collection('users').updateOne({ _id: new ObjectId(fixture.userId) }, { $set: { phoneNumbers: [] } })
  t.same(await lookUp(), { status: 200, userId: fixture.userId }, 'the direct write is not seen yet')
  t.same(await lookUp({ 'cache-control': 'no-cache' }), { status: 404, userId: undefined }, 'no-cache reads the users')
  t.same(await lookUp(), { status: 404, userId: undefined }, 'and refreshed the cache')
  t.equal(lookups.at(-1), 'hit')
})

t.test('on: the bound evicts the least recently used entry', async (t) => {
  let evictions = 0
  const { app, headers } = await build(t, { routeCache: { maxEntries: 2, onEviction: () => { evictions++ } } })
  for (const n of ['+14165550311', '+14165550312', '+14165550313']) {
    t.equal((await app.inject({ method: 'GET', url: routeUrl(n), headers })).statusCode, 404)
  }
  t.equal(app.orgPhoneNumbersRouteCache?.size(), 2, 'two entries kept')
  t.equal(evictions, 1, 'one evicted')
})

t.test('bad routeCache settings are refused at registration', async (t) => {
  const { db } = await createTestDatabase(t)
  const cases: Array<[unknown, RegExp]> = [
    [{ ttlMs: 0 }, /routeCache.ttlMs must be a positive integer/],
    [{ maxEntries: 1.5 }, /routeCache.maxEntries must be a positive integer/],
    [{ onLookup: 'count' }, /routeCache.onLookup must be a function/],
    ['yes', /routeCache must be true, false or/]
  ]
  for (const [routeCache, message] of cases) {
    const app = Fastify({ logger: false })
    await t.rejects(async () => { await app.register(orgPhoneNumbers, { db, auth: { secret: TEST_SECRET }, routeCache } as OrgPhoneNumbersOptions) }, message)
    await app.close()
  }
})
