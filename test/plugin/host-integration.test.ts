/**
 * The plugin inside an existing server: the host keeps its own routes, error
 * format, validation settings, JWT setup, hooks and Mongo connection, and
 * behaves exactly as it did before the plugin was registered.
 */
import jwt from '@fastify/jwt'
import mongodb from '@fastify/mongodb'
import Fastify, { type FastifyInstance, type InjectOptions } from 'fastify'
import { ObjectId } from 'mongodb'
import t from 'tap'
import orgPhoneNumbers from '../../plugins/phone-numbers/index.js'
import { createTestDatabase, uriForDatabase } from '../helper-database.js'
import { createSigner, seedFixture, TEST_SECRET, type Fixture } from '../helper.js'

const HOST_SECRET = 'host-secret-host-secret-host-secret-host'

async function buildHost (dbUri: string, withPlugin: 'none' | 'own-jwt' | 'host-jwt'): Promise<FastifyInstance> {
  const host = Fastify({ logger: false })
  await host.register(mongodb, { url: dbUri, forceClose: true })
  await host.register(jwt, { secret: HOST_SECRET })
  const hookCalls: string[] = []
  host.decorate('hookCalls', hookCalls)
  host.addHook('onRequest', async (request) => { hookCalls.push(request.url) })
  host.setErrorHandler((error: { statusCode?: number, message: string }, _request, reply) => {
    reply.code(error.statusCode ?? 500).send({ hostError: true, message: error.message })
  })
  host.setNotFoundHandler((request, reply) => { reply.code(404).send({ hostNotFound: request.url }) })

  host.get('/host/me', { onRequest: [async (request) => { await request.jwtVerify() }] }, async (request) => ({ user: request.user }))
  host.post('/host/items', {
    schema: {
      querystring: { type: 'object', properties: { limit: { type: 'integer' } } },
      body: { type: 'object', required: ['enabled'], properties: { enabled: { type: 'boolean' } } }
    }
  }, async (request) => ({ query: request.query, body: request.body }))
  host.post('/host/echo', async (request) => ({ body: request.body }))
  host.get('/host/count', async () => ({ users: await host.mongo.db!.collection('users').countDocuments() }))

  if (withPlugin === 'own-jwt') await host.register(orgPhoneNumbers, { auth: { secret: TEST_SECRET } })
  if (withPlugin === 'host-jwt') await host.register(orgPhoneNumbers, { auth: { useHostJwt: true } })
  await host.ready()
  return host
}

async function hostBehaviour (host: FastifyInstance, hostToken: string): Promise<unknown[]> {
  const requests: InjectOptions[] = [
    { method: 'GET', url: '/host/me', headers: { authorization: `Bearer ${hostToken}` } },
    { method: 'GET', url: '/host/me' },
    { method: 'POST', url: '/host/items?limit=5', payload: { enabled: 'true' } }, // host keeps Fastify's coercion
    { method: 'POST', url: '/host/items', payload: { nope: 1 } },
    { method: 'POST', url: '/host/echo', headers: { 'content-type': 'text/plain' }, payload: 'plain text' },
    { method: 'POST', url: '/host/echo', payload: '{"broken":' },
    { method: 'GET', url: '/host/count' },
    { method: 'GET', url: '/nowhere' }
  ]
  const answers: unknown[] = []
  for (const request of requests) {
    const response = await host.inject(request)
    answers.push({ status: response.statusCode, body: response.json() })
  }
  return answers
}

t.test('the host behaves exactly as before, and the plugin works inside it', async (t) => {
  const { db, dbName } = await createTestDatabase(t)
  const fixture: Fixture = await seedFixture(db)
  const dbUri = uriForDatabase(dbName)

  const bare = await buildHost(dbUri, 'none')
  t.teardown(() => bare.close())
  const hostToken = bare.jwt.sign({ sub: 'host-user', scope: 'host' })
  const before = await hostBehaviour(bare, hostToken)
  t.match(before[0], { status: 200, body: { user: { sub: 'host-user' } } }, 'sanity: host JWT works')
  t.match(before[2], { status: 200, body: { query: { limit: 5 }, body: { enabled: true } } }, 'sanity: host coerces')
  t.match(before[4], { status: 200, body: { body: 'plain text' } }, 'sanity: host parses text/plain')
  t.match(before[1], { status: 401, body: { hostError: true } }, 'sanity: host error format')

  for (const mode of ['own-jwt', 'host-jwt'] as const) {
    const host = await buildHost(dbUri, mode)
    t.teardown(() => host.close())
    t.same(await hostBehaviour(host, hostToken), before, `${mode}: host routes, errors, JWT, parsers and 404 unchanged`)
    t.equal(host.jwt.verify<{ sub: string }>(hostToken).sub, 'host-user', `${mode}: host's own jwt.verify unchanged`)

    const signer = await createSigner(mode === 'own-jwt' ? TEST_SECRET : HOST_SECRET)
    t.teardown(() => signer.close())
    const admin = signer.sign({ sub: fixture.adminId, role: 'SUPERADMIN' })
    const assigned = await host.inject({
      method: 'POST',
      url: `/api/organizations/${fixture.organizationId}/phone-numbers`,
      headers: { authorization: `Bearer ${admin}` },
      payload: { targetUserId: fixture.userId, provider: 'twilio', phoneNumber: mode === 'own-jwt' ? '+14165550001' : '+14165550002' }
    })
    t.equal(assigned.statusCode, 200, `${mode}: plugin route works`)
    const invalid = await host.inject({
      method: 'POST',
      url: `/api/organizations/${fixture.organizationId}/phone-numbers`,
      headers: { authorization: `Bearer ${admin}` },
      payload: { targetUserId: fixture.userId, provider: 'twilio', phoneNumber: '+14165550001', isDefault: 'true' }
    })
    t.equal(invalid.statusCode, 400, `${mode}: no coercion inside the plugin`)
    t.equal(invalid.json().error, 'Validation error', `${mode}: contract error format inside the plugin`)

    // A host token that expires (the plugin requires exp in every auth mode).
    const expiringHostToken = host.jwt.sign({ sub: 'host-user', scope: 'host' }, { expiresIn: '5m' })
    const hostTokenOnPlugin = await host.inject({ method: 'GET', url: `/api/organizations/${fixture.organizationId}/phone-numbers`, headers: { authorization: `Bearer ${expiringHostToken}` } })
    t.equal(hostTokenOnPlugin.statusCode, mode === 'own-jwt' ? 401 : 403, `${mode}: a host token is ${mode === 'own-jwt' ? 'not valid for the plugin' : 'valid but not SUPERADMIN'}`)
    const hookCalls = (host as unknown as { hookCalls: string[] }).hookCalls
    t.ok(hookCalls.includes(`/api/organizations/${fixture.organizationId}/phone-numbers`), `${mode}: host hooks still run on plugin routes (plugin is a child, not a sibling)`)
  }

  const stored = await db.collection('users').findOne({ _id: new ObjectId(fixture.userId) })
  t.equal((stored?.['phoneNumbers'] as unknown[]).length, 2, 'both plugin registrations wrote through the host connection')
})

t.test('the plugin can be mounted under a prefix and refuses a second registration on one instance', async (t) => {
  const { db } = await createTestDatabase(t)
  const fixture = await seedFixture(db)
  const host = Fastify({ logger: false })
  await host.register(orgPhoneNumbers, { db, auth: { secret: TEST_SECRET }, prefix: '/v2' })
  await host.ready()
  t.teardown(() => host.close())
  const signer = await createSigner()
  t.teardown(() => signer.close())
  const authorization = `Bearer ${signer.sign({ sub: fixture.adminId, role: 'SUPERADMIN' })}`
  t.equal((await host.inject({ method: 'GET', url: `/v2/api/organizations/${fixture.organizationId}/phone-numbers`, headers: { authorization } })).statusCode, 200)
  t.equal((await host.inject({ method: 'GET', url: `/api/organizations/${fixture.organizationId}/phone-numbers`, headers: { authorization } })).statusCode, 404)

  const twice = Fastify({ logger: false })
  t.teardown(() => twice.close())
  await t.rejects(async () => {
    await twice.register(orgPhoneNumbers, { db, auth: { secret: TEST_SECRET } })
    await twice.register(orgPhoneNumbers, { db, auth: { secret: TEST_SECRET } })
  }, /org-phone-numbers: already registered in this context/)
})

t.test('useHostJwt: the plugin still requires exp on a token the host verified', async (t) => {
  const { db, dbName } = await createTestDatabase(t)
  const fixture = await seedFixture(db)
  const host = await buildHost(uriForDatabase(dbName), 'host-jwt')
  t.teardown(() => host.close())
  const url = `/api/organizations/${fixture.organizationId}/phone-numbers`
  const claims = { sub: fixture.adminId, role: 'SUPERADMIN' }

  const withoutExp = await host.inject({ method: 'GET', url, headers: { authorization: `Bearer ${host.jwt.sign(claims)}` } })
  t.equal(withoutExp.statusCode, 401, 'a host token without exp is refused')
  t.same(withoutExp.json(), { error: 'Unauthorized', details: 'The token has no exp claim; this API accepts only tokens that expire' })

  const withExp = await host.inject({ method: 'GET', url, headers: { authorization: `Bearer ${host.jwt.sign(claims, { expiresIn: '5m' })}` } })
  t.equal(withExp.statusCode, 200, 'the same claims with exp are accepted')
})
