/**
 * The standalone app plugin in-process: demo data, health, the served
 * contract, router-level URL errors, and the development helpers.
 */
import Fastify from 'fastify'
import { ObjectId } from 'mongodb'
import t from 'tap'
import { openapiDocument, openapiYaml } from '../../schemas/generated/openapi-document.js'
import app, { appOptions, serverOptions } from '../../server/app.js'
import { readConfig } from '../../server/config.js'
import { DEMO_ADMIN_ID, DEMO_ORGANIZATION_ID, DEMO_USER_ID, developmentSecret, seedDemoData, superAdminToken } from '../../server/development.js'
import { createTestDatabase, uriForDatabase } from '../helper-database.js'

t.test('app: demo data, health, contract documents and router errors in the contract shape', async (t) => {
  const { db, dbName } = await createTestDatabase(t)
  const secret = await developmentSecret()
  // The server's own configuration path: environment → config → Fastify and app options.
  const config = readConfig({ MONGODB_URI: uriForDatabase(dbName), JWT_SECRET: secret, LOG_LEVEL: 'silent', SERVE_OPENAPI: 'true' })
  const server = Fastify(serverOptions(config))
  await server.register(app, appOptions(config, { mongodbUri: uriForDatabase(dbName), jwtSecret: secret, seedDemoData: true }))
  await server.ready()
  t.teardown(() => server.close())

  const health = await server.inject({ method: 'GET', url: '/health' })
  t.same(health.json(), { status: 'ok', database: 'up' })

  const json = await server.inject({ method: 'GET', url: '/openapi.json' })
  t.match(json.headers['content-type'], /^application\/json/)
  t.same(json.json(), openapiDocument)
  const yaml = await server.inject({ method: 'GET', url: '/openapi.yaml' })
  t.match(yaml.headers['content-type'], /^application\/yaml/)
  t.equal(yaml.body, openapiYaml)

  // The demo data and a development token are enough to use the API at once.
  const token = await superAdminToken(secret)
  const assigned = await server.inject({
    method: 'POST',
    url: `/api/organizations/${DEMO_ORGANIZATION_ID}/phone-numbers`,
    headers: { authorization: `Bearer ${token}` },
    payload: { targetUserId: DEMO_USER_ID, provider: 'twilio', phoneNumber: '+14165550102' }
  })
  t.equal(assigned.statusCode, 200)
  const users = db.collection('users')
  t.match(await users.findOne({ _id: new ObjectId(DEMO_ADMIN_ID) }), { role: 'SUPERADMIN', organizationId: new ObjectId(DEMO_ORGANIZATION_ID) })

  await seedDemoData(db, 'users', 'organizations')
  t.equal(await users.countDocuments(), 3, 'seeding again adds nothing')
  t.match(await users.findOne({ _id: new ObjectId(DEMO_USER_ID) }), { phoneNumbers: [{ phoneNumber: '+14165550102' }] }, 'and overwrites nothing')

  const long = await server.inject({ method: 'GET', url: `/api/organizations/${'a'.repeat(101)}/phone-numbers`, headers: { authorization: `Bearer ${token}` } })
  t.equal(long.statusCode, 400)
  t.same(Object.keys(long.json()).sort(), ['details', 'error'])
  const broken = await server.inject({ method: 'GET', url: '/api/organizations/%E0%A4%A/phone-numbers' })
  t.equal(broken.statusCode, 400)
  t.equal(broken.json().error, 'Validation error')
})

t.test('the development secret is created once and then reused', async (t) => {
  const first = await developmentSecret()
  t.match(first, /^[0-9a-f]{64}$/)
  t.equal(await developmentSecret(), first)
})
