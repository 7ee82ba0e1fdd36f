/**
 * Event delivery, black box: the plugin with `onEvent` (a signed webhook or a
 * plain handler) on a real database, sending to a real node:http receiver on
 * 127.0.0.1 (event-delivery-helper.ts). Plain handlers
 * that throw or never answer.
 */
import t from 'tap'
import { DELIVERIES, FAST, readLog, send, setUpDatabase, startApp, waitFor, type DeliveryRecord } from './event-delivery-helper.js'

t.setTimeout(180_000)

t.test('a throwing onEvent: requests answer, the log fills, the handler is called again', async (t) => {
  const s = await setUpDatabase(t)
  const calls = new Map<string, number[]>()
  const app = await startApp(t, s.db, {
    eventDelivery: FAST,
    onEvent: (event, { attempt }) => {
      calls.set(event.id, [...(calls.get(event.id) ?? []), attempt])
      throw new Error('handler broke')
    }
  })
  const { userId } = s.fixture
  t.equal(await send(s, app, 'POST', '', { targetUserId: userId, provider: 'twilio', phoneNumber: '+14165550501' }), 200)
  t.equal(await send(s, app, 'POST', '', { targetUserId: userId, provider: 'sinch', phoneNumber: '+14165550502', isDefault: false }), 200)
  const log = await readLog(s, app)
  t.equal(log.length, 2, 'both events are in the log')
  await waitFor('each event handled three times', () => log.every((event) => (calls.get(event.id)?.length ?? 0) >= 3))
  for (const event of log) {
    const attempts = calls.get(event.id) ?? []
    t.strictSame(attempts.slice(0, 3), [1, 2, 3], 'the attempt counter grows by one per call')
  }
  t.equal(await send(s, app, 'POST', '', { targetUserId: userId, provider: 'textgrid', phoneNumber: '+14165550503', isDefault: false }), 200, 'still answering while the handler fails')
  const pending = await s.db.collection<DeliveryRecord>(DELIVERIES).find({}).toArray()
  t.ok(pending.some((delivery) => delivery.lastError === 'handler broke'), 'the error is kept on the delivery')
})

t.test('an onEvent that never answers: requests answer, the attempt is abandoned and retried', async (t) => {
  const s = await setUpDatabase(t)
  const calls: Array<{ id: string, attempt: number, signal: AbortSignal }> = []
  const app = await startApp(t, s.db, {
    // The handler's wait ends at half the lease: keep it short so retries (and close) come soon.
    eventDelivery: { ...FAST, leaseMs: 400 },
    onEvent: async (event, { attempt, signal }) => {
      calls.push({ id: event.id, attempt, signal })
      await new Promise<never>(() => {})
    }
  })
  const { userId, otherUserId } = s.fixture
  t.equal(await send(s, app, 'POST', '', { targetUserId: userId, provider: 'twilio', phoneNumber: '+14165550601' }), 200)
  await waitFor('the handler to be called', () => calls.length > 0)
  t.equal(await send(s, app, 'POST', '', { targetUserId: otherUserId, provider: 'sinch', phoneNumber: '+14165550602' }), 200, 'a request while the handler hangs')
  t.equal(await send(s, app, 'POST', '', { targetUserId: userId, provider: 'twilio', phoneNumber: '+14165550601', label: 'x' }), 200, 'a change of the hanging number')
  const log = await readLog(s, app)
  t.equal(log.length, 3, 'every event is in the log')
  const first = log[0]!.id
  await waitFor('a second attempt of the first event', () => calls.some((call) => call.id === first && call.attempt >= 2))
  t.equal(calls.find((call) => call.id === first && call.attempt === 1)?.signal.aborted, true, 'the abandoned attempt\'s signal was aborted')
  t.notOk(calls.some((call) => call.id === log[2]!.id), 'the number\'s next event waits behind the hanging one')
  // With a long lease, closing is what ends the hanging attempt: its signal says why, and the event stays pending for the next start.
  const stuck = await setUpDatabase(t)
  const hanging: AbortSignal[] = []
  const slow = await startApp(t, stuck.db, {
    eventDelivery: { ...FAST, leaseMs: 600_000 },
    onEvent: async (_event, { signal }) => {
      hanging.push(signal)
      await new Promise<never>(() => {})
    }
  })
  t.equal(await send(stuck, slow, 'POST', '', { targetUserId: stuck.fixture.userId, provider: 'twilio', phoneNumber: '+14165550603' }), 200)
  await waitFor('the handler to be called', () => hanging.length > 0)
  await app.close()
  await slow.close()
  t.equal(hanging[0]?.aborted, true, 'closing aborts the attempt in flight')
  t.match(String((hanging[0]?.reason as Error | undefined)?.message), /shutting down/)
  const left = await stuck.db.collection<DeliveryRecord>(DELIVERIES).find({}).toArray()
  t.equal(left.length, 1)
  t.match(left[0], { pending: true, leaseToken: null, lastError: 'the server is shutting down' }, 'released for the next start, still pending')
})
