/**
 * The query-plan contract, engine-independent: every query the plugin and
 * its store send while they run every operation (each route, the listing
 * with each filter and by cursor, the event log, the inbound-route lookup,
 * two store instances meeting on one number, a transfer recovered from
 * another process, the background flush and the retention sweep) must be
 * served by an index the plugin itself creates, judged by MongoDB's prefix
 * rules (index-rules.ts) rather than by the test engine, which plans
 * differently. A deliberately unindexed query must fail the same check.
 */
import t from 'tap'
import Fastify from 'fastify'
import { MongoClient, ObjectId } from 'mongodb'
import orgPhoneNumbers from '../../plugins/phone-numbers/index.js'
import { createPhoneNumberStore } from '../../src/domain/store.js'
import { createSigner, eventsSettled, seedFixture, TEST_SECRET } from '../helper.js'
import { uniqueDatabaseName, uriForDatabase } from '../helper-database.js'
import { judge, type QueryShape } from './index-rules.js'
import { recordQueries } from './recorder.js'

const dbName = uniqueDatabaseName()
const client = new MongoClient(uriForDatabase(dbName), { monitorCommands: true, serverSelectionTimeoutMS: 10_000 })
await client.connect()
const db = client.db(dbName)
const otherClient = new MongoClient(uriForDatabase(dbName), { monitorCommands: true, serverSelectionTimeoutMS: 10_000 })
await otherClient.connect()
t.teardown(async () => {
  await db.dropDatabase()
  await Promise.all([client.close(), otherClient.close()])
})

const fixture = await seedFixture(db)
const recording = recordQueries(client)
const otherRecording = recordQueries(otherClient)
const signer = await createSigner()
t.teardown(() => signer.close())
const headers = { authorization: `Bearer ${signer.sign({ sub: fixture.adminId, role: 'SUPERADMIN' })}`, 'content-type': 'application/json' }
const base = `/api/organizations/${fixture.organizationId}/phone-numbers`

const app = Fastify({ logger: false })
await recording.run(async () => {
  await app.register(orgPhoneNumbers, { db, auth: { secret: TEST_SECRET }, eventSweepIntervalMs: 100, routeCache: { followIntervalMs: 20, maxFollowerLagMs: 500 } })
  await app.ready()
})
t.teardown(() => app.close())

/** Every operation of the API, with the answers checked so the workload is what it claims. */
await t.test('the workload: every route', async (t) => await recording.run(async () => {
  const send = async (method: 'GET' | 'POST' | 'DELETE', url: string, payload?: object): Promise<number> =>
    (await app.inject({ method, url, headers, ...(payload === undefined ? {} : { payload }) })).statusCode
  const number = '+14165550199'
  t.equal(await send('POST', base, { targetUserId: fixture.userId, provider: 'twilio', phoneNumber: number }), 200, 'assign')
  t.equal(await send('POST', base, { targetUserId: fixture.userId, provider: 'twilio', phoneNumber: number, label: 'desk' }), 200, 'update')
  t.equal(await send('POST', base, { targetUserId: fixture.otherUserId, provider: 'twilio', phoneNumber: number }), 409, 'a second inbound route is refused')
  t.equal(await send('POST', `/api/organizations/${fixture.otherOrganizationId}/phone-numbers`, { targetUserId: fixture.foreignUserId, provider: 'twilio', phoneNumber: number }), 409, 'another organization is refused')
  t.equal(await send('POST', base, { targetUserId: fixture.otherUserId, provider: 'sinch', phoneNumber: '+14165550198', isInboundEnabled: false }), 200, 'an outbound-only assign')
  t.equal(await send('POST', `${base}/transfer`, { fromUserId: fixture.userId, toUserId: fixture.otherUserId, provider: 'twilio', phoneNumber: number }), 200, 'transfer')
  t.equal(await send('GET', `/api/phone-numbers/${encodeURIComponent(number)}/inbound-route`), 200, 'lookup')
  t.equal(await send('GET', `/api/phone-numbers/${encodeURIComponent(number)}/inbound-route?provider=twilio`), 200, 'lookup by provider')
  const first = await app.inject({ method: 'GET', url: `${base}?limit=1`, headers })
  t.equal(first.statusCode, 200, 'listing')
  const cursor = (first.json() as { nextCursor?: string }).nextCursor
  t.type(cursor, 'string', 'the first page has a cursor')
  t.equal(await send('GET', `${base}?limit=1&cursor=${encodeURIComponent(cursor ?? '')}`), 200, 'the next page')
  t.equal(await send('GET', `${base}?provider=sinch&isInboundEnabled=false&phoneNumberPrefix=%2B1416&label=desk&isDefault=true`), 200, 'listing with every filter')
  t.equal(await send('GET', `${base}?targetUserId=${fixture.otherUserId}`), 200, 'one user\'s listing')
  await eventsSettled(db)
  t.equal(await send('GET', `${base}/events`), 200, 'the change log')
  t.equal(await send('GET', `${base}/events?phoneNumber=${encodeURIComponent(number)}`), 200, 'one number\'s change log')
  // The route cache's follower reads the log of every organization (and checks its place is still there).
  await new Promise((resolve) => setTimeout(resolve, 200))
  t.ok(recording.shapes.some((shape) => shape.collection === 'phoneNumberEvents' && 'position' in shape.filter && !('organizationId' in shape.filter)), 'the route cache followed the change log')
  t.equal(await send('DELETE', base, { targetUserId: fixture.otherUserId, provider: 'twilio', phoneNumber: number }), 200, 'remove')
  t.equal(await send('DELETE', base, { targetUserId: fixture.otherUserId, provider: 'twilio', phoneNumber: number }), 404, 'a second remove finds nothing')
  await app.orgPhoneNumbers.flushPendingEvents()
  await app.orgPhoneNumbers.expireEvents(new Date(0))
}))

// Two processes on one number: the second meets the first's steps (fences them), recovers a transfer it left.
await t.test('the workload: two processes on one number', async (t) => await otherRecording.run(async () => {
  const organizationId = new ObjectId(fixture.organizationId)
  const [one, two] = [new ObjectId(fixture.userId), new ObjectId(fixture.otherUserId)]
  const mine = createPhoneNumberStore(db, { instanceId: 'first' })
  const theirs = createPhoneNumberStore(otherClient.db(dbName), { instanceId: 'second', inFlightGraceMs: 1 })
  t.equal((await recording.run(async () => await mine.assign(organizationId, one, { provider: 'textgrid', phoneNumber: '+14165550197' }))).status, 'assigned')
  t.equal((await theirs.transfer(organizationId, { provider: 'textgrid', phoneNumber: '+14165550197', fromUserId: one, toUserId: two })).status, 'transferred', 'the other process transfers on its first request')
  const crashing = createPhoneNumberStore(db, { instanceId: 'crashing', onStep: (step) => { if (step === 'transfer:target-written') throw new Error('stopped here') } })
  await t.rejects(recording.run(async () => await crashing.transfer(organizationId, { provider: 'textgrid', phoneNumber: '+14165550197', fromUserId: two, toUserId: one })))
  t.same(await theirs.repairClaim('+14165550197'), { transfer: 'rolled-back', claim: 'kept' }, 'the other process undoes the half-done transfer at once')
  t.equal((await theirs.remove(organizationId, two, { provider: 'textgrid', phoneNumber: '+14165550197' })).status, 'removed')
  await theirs.eventsFlushed()
}))

const indexes = new Map([...recording.indexes].map(([collection, keys]) => [collection, keys]))
const shapes: QueryShape[] = [...recording.shapes, ...otherRecording.shapes]

/** Each distinct shape once: collection, command, filter keys (values dropped), sort. */
function shapeKey (shape: QueryShape): string {
  const skeleton = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(skeleton)
    if (typeof value === 'object' && value !== null && !('_bsontype' in value) && !(value instanceof Date)) {
      return Object.fromEntries(Object.entries(value).map(([key, inner]) => [key, key.startsWith('$') || typeof inner === 'object' ? skeleton(inner) : '?']))
    }
    return '?'
  }
  return JSON.stringify([shape.collection, shape.command, skeleton(shape.filter), shape.sort ?? null])
}

const distinct = new Map<string, QueryShape>()
for (const shape of shapes) distinct.set(shapeKey(shape), shape)

t.test('every query of the plugin and store is served by an index it creates', async (t) => {
  t.ok(distinct.size >= 15, `the workload sent ${distinct.size} distinct query shapes`)
  for (const [key, shape] of distinct) {
    const verdict = judge(shape, indexes.get(shape.collection) ?? [])
    t.ok(verdict.served, `${key} → ${verdict.index ?? verdict.reason ?? ''}`)
  }
})

t.test('a deliberately unindexed query fails the check', async (t) => {
  await recording.run(async () => await db.collection('users').find({ 'phoneNumbers.label': 'desk' }).toArray())
  const unindexed = recording.shapes.filter((shape) => 'phoneNumbers.label' in shape.filter)
  t.equal(unindexed.length, 1, 'the query was recorded')
  const verdict = judge(unindexed[0]!, indexes.get('users') ?? [])
  t.equal(verdict.served, false, `refused: ${verdict.reason ?? ''}`)
  // And one that sorts on a field no index orders, after an indexed equality.
  const sorted = judge({ filter: { organizationId: new ObjectId() }, sort: { name: 1 } }, indexes.get('users') ?? [])
  t.equal(sorted.served, false, `a sort no index serves is refused: ${sorted.reason ?? ''}`)
  // The listing's page query without its index: the _id index alone would walk every organization's users.
  const page = { filter: { $and: [{ organizationId: new ObjectId() }, { _id: { $gt: new ObjectId() } }] }, sort: { _id: 1 as const } }
  const withoutIndex = (indexes.get('users') ?? []).filter((keys) => keys[0]?.[0] !== 'organizationId')
  t.equal(judge(page, withoutIndex).served, false, 'a listing page without organizationId_1__id_1 is refused')
  t.equal(judge(page, indexes.get('users') ?? []).index, 'organizationId_1__id_1', 'and served by it when it is there')
})
