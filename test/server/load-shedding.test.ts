/**
 * Load shedding (@fastify/under-pressure): past a threshold every request,
 * authenticated or not, gets 503 { error, details } with Retry-After, and
 * /health answers 503 { status: 'unavailable', database }. The thresholds are
 * set so low that crossing them is certain: a heap of 1 MiB, or an event-loop
 * delay of 5 ms while the test keeps the loop saturated (blocked 50 ms on every
 * turn), so every sample taken meanwhile sees about 40 ms, whenever it lands.
 */
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify'
import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import { superAdminToken } from '../../server/development.js'
import { buildStandaloneApp, DEMO_NUMBERS_URL, saturateEventLoop } from './shedding-helper.js'

// under-pressure samples once a second (its default sampleInterval).
const SAMPLE_MS = 1000
// Each case waits for a state that is certain within two samples; the deadline only stops a broken build.
const DEADLINE_MS = 20 * SAMPLE_MS
// Blocked per loop turn: the saturated loop's sampled delay is about this minus the 10 ms resolution, far above 5 ms.
const BLOCK_MS = 50

/** Polls `request` until it answers `status` (not a timed assertion: a deadline for a certain state); at the deadline, its last answer. */
async function answerOnce (server: FastifyInstance, request: InjectOptions, status: number): Promise<LightMyRequestResponse> {
  const deadline = Date.now() + DEADLINE_MS
  for (;;) {
    const answer = await server.inject(request)
    if (answer.statusCode === status || Date.now() > deadline) return answer
    await sleep(10)
  }
}

const HEALTH: InjectOptions = { method: 'GET', url: '/health' }

function assertShed (t: Test, response: LightMyRequestResponse, cause: RegExp, retryAfter: string): void {
  t.equal(response.statusCode, 503)
  t.same(Object.keys(response.json()).sort(), ['details', 'error'])
  t.equal(response.json().error, 'Service unavailable')
  t.match(response.json().details, cause)
  t.equal(response.headers['retry-after'], retryAfter)
}

t.test('heap above MAX_HEAP_USED_MB: every request gets 503 with Retry-After, before auth; /health says unavailable', async (t) => {
  const { server, secret } = await buildStandaloneApp(t, { MAX_HEAP_USED_MB: '1', MAX_EVENT_LOOP_DELAY_MS: '0', RETRY_AFTER_S: '7' })
  const health = await answerOnce(server, HEALTH, 503)
  t.equal(health.statusCode, 503)
  t.same(health.json(), { status: 'unavailable', database: 'up' }, 'the contract shape: the database answers, the process refuses work')
  t.equal(health.headers['retry-after'], '7')

  const token = await superAdminToken(secret)
  assertShed(t, await server.inject({ method: 'GET', url: DEMO_NUMBERS_URL, headers: { authorization: `Bearer ${token}` } }), /heap in use/, '7')
  // No token: still 503, not 401, so shedding costs no token check.
  assertShed(t, await server.inject({ method: 'GET', url: DEMO_NUMBERS_URL }), /heap in use/, '7')
  assertShed(t, await server.inject({ method: 'GET', url: '/openapi.json' }), /heap in use/, '7')
})

// The loop stays saturated from before the first shed sample until every shed answer is in, so no
// answer depends on which sample it lands in; pressure then clears once a sample sees an idle loop.
t.test('event-loop delay above MAX_EVENT_LOOP_DELAY_MS: 503 while the loop is saturated, before auth; /health says unavailable; both recover', async (t) => {
  const { server, secret } = await buildStandaloneApp(t, { MAX_EVENT_LOOP_DELAY_MS: '5', MAX_HEAP_USED_MB: '0', MAX_EVENT_LOOP_UTILIZATION: '0' })
  const token = await superAdminToken(secret)
  const api: InjectOptions = { method: 'GET', url: DEMO_NUMBERS_URL, headers: { authorization: `Bearer ${token}` } }

  const stop = saturateEventLoop(BLOCK_MS)
  t.teardown(stop)
  const health = await answerOnce(server, HEALTH, 503)
  t.equal(health.statusCode, 503)
  t.same(health.json(), { status: 'unavailable', database: 'up' })
  t.equal(health.headers['retry-after'], '10', 'RETRY_AFTER_S defaults to 10')
  t.ok(server.memoryUsage().eventLoopDelay > 5, 'the sampled delay is what crossed the threshold')
  assertShed(t, await server.inject(api), /event-loop delay/, '10')
  // No token: still 503, not 401.
  assertShed(t, await server.inject({ method: 'GET', url: DEMO_NUMBERS_URL }), /event-loop delay/, '10')
  stop()

  const recovered = await answerOnce(server, HEALTH, 200)
  t.equal(recovered.statusCode, 200, 'pressure clears once a sample sees an idle loop')
  t.same(recovered.json(), { status: 'ok', database: 'up' })
  const unshed = await answerOnce(server, { method: 'GET', url: DEMO_NUMBERS_URL }, 401)
  t.equal(unshed.statusCode, 401, 'the API is no longer shed: its token check answers again')
})

t.test('every threshold 0: the same saturated loop and heap shed nothing', async (t) => {
  const { server } = await buildStandaloneApp(t, { MAX_EVENT_LOOP_DELAY_MS: '0', MAX_HEAP_USED_MB: '0', MAX_EVENT_LOOP_UTILIZATION: '0' })
  const stop = saturateEventLoop(BLOCK_MS)
  t.teardown(stop)
  // Two full samples of a saturated loop, asked while it still is.
  await sleep(2 * SAMPLE_MS + 100)
  const health = await server.inject(HEALTH)
  t.equal(health.statusCode, 200)
  t.same(health.json(), { status: 'ok', database: 'up' })
  t.equal((await server.inject({ method: 'GET', url: DEMO_NUMBERS_URL })).statusCode, 401, 'the token check answers, not the shedder')
  stop()
})
