/**
 * Rate limits (@fastify/rate-limit, RATE_LIMIT_MAX) and CORS (@fastify/cors,
 * CORS_ORIGINS) on the standalone app. A verified token's subject has its own
 * bucket; missing, invalid and forged tokens count against the client address.
 */
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import t, { type Test } from 'tap'
import { mintToken } from '../../tools/tokens.js'
import { buildStandaloneApp, DEMO_NUMBERS_URL } from './shedding-helper.js'

const MAX = 3
const APP_ORIGIN = 'https://app.example.test'
const OTHER_ORIGIN = 'https://evil.example.test'
const OTHER_SUBJECT = '5f7b1c2e8a1d4e0012c3b4ff'

async function list (server: FastifyInstance, remoteAddress: string, token?: string): Promise<LightMyRequestResponse> {
  return await server.inject({ method: 'GET', url: DEMO_NUMBERS_URL, remoteAddress, headers: token === undefined ? {} : { authorization: `Bearer ${token}` } })
}

async function statuses (server: FastifyInstance, times: number, remoteAddress: string, token?: string): Promise<number[]> {
  const seen: number[] = []
  for (let i = 0; i < times; i++) seen.push((await list(server, remoteAddress, token)).statusCode)
  return seen
}

function assertLimited (t: Test, response: LightMyRequestResponse): void {
  t.equal(response.statusCode, 429)
  t.same(Object.keys(response.json()).sort(), ['details', 'error'])
  t.equal(response.json().error, 'Too many requests')
  t.match(response.json().details, `More than ${MAX} requests in 60 s`)
  const retryAfter = Number(response.headers['retry-after'])
  t.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60, `Retry-After ${String(response.headers['retry-after'])} within the window`)
}

function corsHeaders (response: LightMyRequestResponse): string[] {
  return Object.keys(response.headers).filter((name) => name.startsWith('access-control-'))
}

t.test('per verified subject, else per address; /health is never limited', async (t) => {
  const { server, secret } = await buildStandaloneApp(t, { RATE_LIMIT_MAX: String(MAX), RATE_LIMIT_WINDOW_MS: '60000' })
  const admin = await mintToken(secret, { sub: 'rate-limit-admin', role: 'SUPERADMIN' })
  const otherAdmin = await mintToken(secret, { sub: OTHER_SUBJECT, role: 'SUPERADMIN' })

  t.same(await statuses(server, MAX, '10.0.0.1', admin), [200, 200, 200])
  assertLimited(t, await list(server, '10.0.0.1', admin))
  t.equal((await list(server, '10.0.0.9', admin)).statusCode, 429, 'the bucket is the subject\'s, from any address')
  t.equal((await list(server, '10.0.0.1', otherAdmin)).statusCode, 200, 'another subject, same address: its own bucket')

  t.same(await statuses(server, MAX, '10.0.0.1'), [401, 401, 401], 'no token: the address bucket, which the tokens did not touch')
  assertLimited(t, await list(server, '10.0.0.1'))
  t.equal((await list(server, '10.0.0.2')).statusCode, 401, 'another address: its own bucket')

  // A token signed with another secret claims OTHER_SUBJECT: it counts against its address only.
  const forged = await mintToken('another-secret-that-is-at-least-32-characters', { sub: OTHER_SUBJECT, role: 'SUPERADMIN' })
  t.same(await statuses(server, MAX, '10.0.0.3', forged), [401, 401, 401])
  assertLimited(t, await list(server, '10.0.0.3', forged))
  t.same(await statuses(server, MAX - 1, '10.0.0.4', otherAdmin), [200, 200], 'the forged requests spent nothing of the real subject\'s bucket')

  for (let i = 0; i < MAX + 2; i++) t.equal((await server.inject({ method: 'GET', url: '/health', remoteAddress: '10.0.0.1' })).statusCode, 200)
})

t.test('no RATE_LIMIT_MAX and no CORS_ORIGINS: no limit, no CORS headers', async (t) => {
  const { server } = await buildStandaloneApp(t, {})
  t.same(await statuses(server, 20, '10.0.1.1'), Array.from({ length: 20 }, () => 401))
  const response = await server.inject({ method: 'GET', url: '/health', headers: { origin: APP_ORIGIN } })
  t.same(corsHeaders(response), [])
})

t.test('CORS_ORIGINS: preflight and simple requests for a listed origin, nothing for another', async (t) => {
  const { server, secret } = await buildStandaloneApp(t, { CORS_ORIGINS: `${APP_ORIGIN}, https://admin.example.test:8443`, RATE_LIMIT_MAX: String(MAX) })
  const preflight = (origin: string): Promise<LightMyRequestResponse> => server.inject({
    method: 'OPTIONS',
    url: DEMO_NUMBERS_URL,
    remoteAddress: '10.0.2.1',
    headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' }
  })

  const allowed = await preflight(APP_ORIGIN)
  t.equal(allowed.statusCode, 204)
  t.equal(allowed.headers['access-control-allow-origin'], APP_ORIGIN)
  t.same(String(allowed.headers['access-control-allow-methods']).split(/,\s*/).sort(), ['DELETE', 'GET', 'POST'])
  t.same(String(allowed.headers['access-control-allow-headers']).toLowerCase().split(/,\s*/).sort(), ['authorization', 'content-type'])
  t.match(allowed.headers.vary, /Origin/)

  const token = await mintToken(secret, { sub: 'cors-admin', role: 'SUPERADMIN' })
  const simple = await server.inject({ method: 'GET', url: DEMO_NUMBERS_URL, remoteAddress: '10.0.2.2', headers: { origin: APP_ORIGIN, authorization: `Bearer ${token}` } })
  t.equal(simple.statusCode, 200)
  t.equal(simple.headers['access-control-allow-origin'], APP_ORIGIN)
  t.equal(simple.headers['access-control-expose-headers'], 'Retry-After', 'a browser client can read Retry-After')
  const second = await server.inject({ method: 'GET', url: '/health', headers: { origin: 'https://admin.example.test:8443' } })
  t.equal(second.headers['access-control-allow-origin'], 'https://admin.example.test:8443')

  const refused = await preflight(OTHER_ORIGIN)
  t.same(corsHeaders(refused), [], 'another origin\'s preflight gets no CORS header')
  t.not(refused.statusCode, 204)
  const other = await server.inject({ method: 'GET', url: DEMO_NUMBERS_URL, remoteAddress: '10.0.2.3', headers: { origin: OTHER_ORIGIN, authorization: `Bearer ${token}` } })
  t.same(corsHeaders(other), [])
  t.equal(other.statusCode, 200, 'CORS is the browser\'s check: the server still answers')

  // A 429 carries the CORS headers too, so the browser client can read it.
  await statuses(server, MAX, '10.0.2.4')
  const limited = await server.inject({ method: 'GET', url: DEMO_NUMBERS_URL, remoteAddress: '10.0.2.4', headers: { origin: APP_ORIGIN } })
  assertLimited(t, limited)
  t.equal(limited.headers['access-control-allow-origin'], APP_ORIGIN)
})
