/**
 * Event delivery, black box: the plugin with `onEvent` (a signed webhook or a
 * plain handler) on a real database, sending to a real node:http receiver on
 * 127.0.0.1 (event-delivery-helper.ts). The signed webhook:
 * signatures (recomputed here with node:crypto), bodies against the log API,
 * retries with backoff, per-number order, and giving up after maxAttempts.
 */
import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { signWebhook, verifyWebhook, type PhoneNumberEvent } from '../../plugins/phone-numbers/index.js'
import { allDelivered, DELIVERIES, expectedSignature, FAST, header, readLog, send, setUpDatabase, startApp, startReceiver, waitFor, webhook, WEBHOOK_SECRET, type DeliveryRecord } from './event-delivery-helper.js'

t.setTimeout(180_000)

t.test('webhook: every event arrives signed, with the body the log shows', async (t) => {
  const s = await setUpDatabase(t)
  const receiver = await startReceiver(t)
  const app = await startApp(t, s.db, { onEvent: webhook(receiver), eventDelivery: FAST })
  const { userId, otherUserId } = s.fixture

  t.equal(await send(s, app, 'POST', '', { targetUserId: userId, provider: 'twilio', phoneNumber: '+14165550301', label: 'Desk' }), 200, 'assign')
  t.equal(await send(s, app, 'POST', '', { targetUserId: userId, provider: 'twilio', phoneNumber: '+14165550301', label: 'Front desk' }), 200, 'update')
  t.equal(await send(s, app, 'POST', '', { targetUserId: userId, provider: 'sinch', phoneNumber: '+14165550302', isDefault: false }), 200, 'assign another')
  t.equal(await send(s, app, 'POST', '/transfer', { fromUserId: userId, toUserId: otherUserId, provider: 'twilio', phoneNumber: '+14165550301' }), 200, 'transfer')
  t.equal(await send(s, app, 'DELETE', '', { targetUserId: userId, provider: 'sinch', phoneNumber: '+14165550302' }), 200, 'remove')

  const log = await readLog(s, app)
  t.strictSame(new Set(log.map((event) => event.type)), new Set(['assigned', 'updated', 'transferred', 'removed']), 'the log holds every kind of change')
  await waitFor('every event at the receiver', allDelivered(receiver, log))
  const byId = new Map(log.map((event) => [event.id, event]))

  for (const request of receiver.requests) {
    const timestamp = header(request, 'x-timestamp')
    const signature = header(request, 'x-signature')
    const body = JSON.parse(request.body) as PhoneNumberEvent
    t.equal(header(request, 'x-event-id'), body.id, 'X-Event-Id is the body\'s id')
    t.match(header(request, 'content-type'), /^application\/json/)
    t.strictSame(body, byId.get(body.id), `the body of ${body.id} is the logged event`)
    t.match(timestamp, /^\d+$/, 'X-Timestamp is Unix seconds')
    t.ok(Math.abs(Date.now() / 1000 - Number(timestamp)) < 300, 'signed just now')
    t.equal(signature, expectedSignature(timestamp ?? '', request.body), 'X-Signature is HMAC-SHA256 of timestamp.body with the secret')

    const check = { secret: WEBHOOK_SECRET, body: request.body, timestamp, signature }
    t.equal(verifyWebhook(check), true, 'verifyWebhook accepts it')
    t.equal(verifyWebhook({ ...check, body: request.body.replace(body.phoneNumber, '+19995550000') }), false, 'a tampered body is rejected')
    t.equal(verifyWebhook({ ...check, secret: `${WEBHOOK_SECRET}-other` }), false, 'a wrong secret is rejected')
    t.equal(verifyWebhook({ ...check, now: (Number(timestamp) + 301) * 1000 }), false, 'the same request replayed 301 s later is rejected')
    const old = String(Number(timestamp) - 600)
    t.equal(verifyWebhook({ ...check, timestamp: old, signature: expectedSignature(old, request.body) }), false, 'a correctly signed 10-minute-old timestamp is rejected')
    t.equal(signWebhook(WEBHOOK_SECRET, timestamp ?? '', request.body), signature, 'signWebhook agrees with node:crypto')
  }
  t.ok(receiver.requests.every((request) => byId.has(request.id)), 'nothing arrives that is not in the log')
  // At least once: a repeat is allowed (the receiver de-duplicates on the id); show it when it happens.
  const repeated = log.filter((event) => receiver.attemptsOf(event.id) > 1)
  if (repeated.length > 0) t.comment(`delivered more than once: ${repeated.map((event) => `${event.type} ${event.id} x${receiver.attemptsOf(event.id)}`).join(', ')}`)
  await waitFor('no pending delivery', async () => await s.db.collection<DeliveryRecord>(DELIVERIES).countDocuments({ pending: true }) === 0)
  const tombstones = await s.db.collection<DeliveryRecord>(DELIVERIES).find({}).toArray()
  t.strictSame(tombstones.map((delivery) => delivery._id).sort(), log.map((event) => event.id).sort(), 'one delivery document per event')
  t.ok(tombstones.every((delivery) => delivery.deliveredAt instanceof Date && delivery.failedAt === undefined), 'each marked delivered')
})

t.test('retries: 503 twice then 200, every event delivered, one number in the log\'s order', async (t) => {
  const s = await setUpDatabase(t)
  const receiver = await startReceiver(t, { answer: (_id, attempt) => attempt <= 2 ? 503 : 200 })
  const app = await startApp(t, s.db, { onEvent: webhook(receiver), eventDelivery: FAST })
  const { userId, otherUserId } = s.fixture
  const number = '+14165550401'

  t.equal(await send(s, app, 'POST', '', { targetUserId: userId, provider: 'twilio', phoneNumber: number, label: 'v1' }), 200)
  t.equal(await send(s, app, 'POST', '', { targetUserId: otherUserId, provider: 'sinch', phoneNumber: '+14165550402' }), 200)
  for (const label of ['v2', 'v3', 'v4']) {
    t.equal(await send(s, app, 'POST', '', { targetUserId: userId, provider: 'twilio', phoneNumber: number, label }), 200, `relabel ${label}`)
  }
  t.equal(await send(s, app, 'POST', '/transfer', { fromUserId: userId, toUserId: otherUserId, provider: 'twilio', phoneNumber: number }), 200)
  t.equal(await send(s, app, 'DELETE', '', { targetUserId: otherUserId, provider: 'twilio', phoneNumber: number }), 200)

  const log = await readLog(s, app)
  await waitFor('every event delivered despite the 503s', allDelivered(receiver, log))
  for (const event of log) {
    t.ok(receiver.attemptsOf(event.id) >= 3, `${event.type} ${event.phoneNumber}: ${receiver.attemptsOf(event.id)} attempts`)
  }
  const numberLog = (await readLog(s, app, { phoneNumber: number })).map((event) => event.id)
  t.ok(numberLog.length >= 6, 'several changes of one number')
  const numberDelivered = receiver.delivered.filter((id) => numberLog.includes(id))
  t.strictSame(numberDelivered, numberLog, 'first successful deliveries of the number come in the log\'s order')
  t.ok(receiver.requests.filter((request) => request.status === 503).every((request) => request.attempt <= 2), 'only the first two attempts were refused')
})

t.test('maxAttempts: a receiver that always fails gets exactly maxAttempts tries, then the delivery is marked failed', async (t) => {
  const s = await setUpDatabase(t)
  const receiver = await startReceiver(t, { answer: () => 500 })
  const app = await startApp(t, s.db, { onEvent: webhook(receiver), eventDelivery: { ...FAST, maxAttempts: 2 } })
  t.equal(await send(s, app, 'POST', '', { targetUserId: s.fixture.userId, provider: 'twilio', phoneNumber: '+14165550901' }), 200)
  const [event] = await readLog(s, app)
  t.ok(event !== undefined, 'the event is logged')
  const deliveries = s.db.collection<DeliveryRecord>(DELIVERIES)
  await waitFor('the delivery to be marked failed', async () => (await deliveries.findOne({ _id: event!.id }))?.failedAt instanceof Date)
  // A few more polls: a given-up delivery must not be tried again.
  await sleep(FAST.pollIntervalMs * 6)
  const delivery = await deliveries.findOne({ _id: event!.id })
  t.match(delivery?.lastError, /500/, 'lastError names the answer')
  t.equal(delivery?.attempts, 2)
  t.equal(delivery?.pending, undefined, 'no longer pending')
  t.equal(delivery?.deliveredAt, undefined, 'not delivered')
  t.equal(receiver.attemptsOf(event!.id), 2, 'the receiver got exactly 2 attempts')
  t.equal(receiver.requests.length, 2)
})
