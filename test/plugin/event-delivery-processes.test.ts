/**
 * Event delivery, black box: the plugin with `onEvent` (a signed webhook or a
 * plain handler) on a real database, sending to a real node:http receiver on
 * 127.0.0.1 (event-delivery-helper.ts). A restart with a
 * receiver that was down, and two processes sharing the deliveries.
 */
import t from 'tap'
import { TEST_BACKEND } from '../helper.js'
import { createTestDatabase } from '../helper-database.js'
import { allDelivered, closedPort, DELIVERIES, FAST, readLog, send, setUpDatabase, startApp, startReceiver, waitFor, webhook, type App, type DeliveryRecord } from './event-delivery-helper.js'

t.setTimeout(180_000)

t.test('survives a restart: events recorded while the receiver was down are delivered by a new app', async (t) => {
  const s = await setUpDatabase(t)
  const { userId, otherUserId } = s.fixture
  const downUrl = `http://127.0.0.1:${await closedPort()}/hooks/phone-numbers`
  const first = await startApp(t, s.db, { instanceId: 'before-restart', onEvent: webhook(downUrl), eventDelivery: { retryBaseMs: 50, pollIntervalMs: 50 } })
  t.equal(await send(s, first, 'POST', '', { targetUserId: userId, provider: 'twilio', phoneNumber: '+14165550701' }), 200)
  t.equal(await send(s, first, 'POST', '', { targetUserId: otherUserId, provider: 'sinch', phoneNumber: '+14165550702' }), 200)
  t.equal(await send(s, first, 'POST', '', { targetUserId: userId, provider: 'twilio', phoneNumber: '+14165550701', label: 'Desk' }), 200)
  const log = await readLog(s, first)
  t.equal(log.length, 3)
  const deliveries = s.db.collection<DeliveryRecord>(DELIVERIES)
  await waitFor('a failed attempt against the closed port', async () => await deliveries.countDocuments({ attempts: { $gte: 1 }, lastError: { $exists: true } }) > 0)
  await first.close()

  const stored = await deliveries.find({}).toArray()
  t.strictSame(stored.map((delivery) => delivery._id).sort(), log.map((event) => event.id).sort(), 'the deliveries collection holds every event')
  t.ok(stored.every((delivery) => delivery.pending === true && delivery.deliveredAt === undefined && delivery.failedAt === undefined && delivery.leaseToken == null), 'all pending: none delivered, given up or left leased')

  // The new process: its own connection to the same database, and a receiver that is up.
  const { db } = await createTestDatabase(t, s.dbName)
  const receiver = await startReceiver(t)
  const second = await startApp(t, db, { instanceId: 'after-restart', onEvent: webhook(receiver), eventDelivery: FAST })
  await waitFor('the events from before the restart', allDelivered(receiver, log))
  for (const request of receiver.requests) t.strictSame(JSON.parse(request.body), log.find((event) => event.id === request.id), 'the body is the logged event')
  await waitFor('no pending delivery', async () => await deliveries.countDocuments({ pending: true }) === 0)
  t.equal(await deliveries.countDocuments({ deliveredAt: { $exists: true } }), log.length, 'every event marked delivered')
  await second.close()
})

t.test('two apps on one database: every event delivered, never twice at once', {
  skip: TEST_BACKEND === 'ferretdb'
    ? 'FerretDB 1.24 applies a compare-and-swap non-atomically across connections, so several processes on one FerretDB are unsupported'
    : false
}, async (t) => {
  const s = await setUpDatabase(t)
  const { db } = await createTestDatabase(t, s.dbName)
  const receiver = await startReceiver(t, { holdMs: 30 })
  const options = { onEvent: webhook(receiver), eventDelivery: { ...FAST, concurrency: 4 } }
  const a = await startApp(t, s.db, { ...options, instanceId: 'instance-a' })
  const b = await startApp(t, db, { ...options, instanceId: 'instance-b' })
  const { userId, otherUserId } = s.fixture

  // Each app changes its own numbers (a number another process touched stays its claim for a while).
  const changes = async (app: App, targetUserId: string, base: number): Promise<number[]> => {
    const statuses: number[] = []
    for (let i = 0; i < 6; i++) {
      const phoneNumber = `+1416555${String(base + i).padStart(4, '0')}`
      statuses.push(await send(s, app, 'POST', '', { targetUserId, provider: 'sinch', phoneNumber, isDefault: false }))
      if (i % 2 === 0) statuses.push(await send(s, app, 'POST', '', { targetUserId, provider: 'sinch', phoneNumber, isDefault: false, label: 'relabelled' }))
    }
    return statuses
  }
  const statuses = (await Promise.all([changes(a, userId, 800), changes(b, otherUserId, 900)])).flat()
  t.ok(statuses.every((status) => status === 200), 'every change answered 200')

  const log = await readLog(s, a)
  t.equal(log.length, 18)
  await waitFor('every event delivered', allDelivered(receiver, log))
  t.strictSame(receiver.overlaps, [], 'no event id was ever in flight twice at the same moment')
  t.ok(receiver.requests.every((request) => log.some((event) => event.id === request.id)), 'only logged events arrive')
  t.comment(`requests: ${receiver.requests.length} for ${log.length} events, at most ${receiver.maxInFlight} in flight at once`)
})
