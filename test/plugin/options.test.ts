import Fastify from 'fastify'
import t from 'tap'
import orgPhoneNumbers, { type OrgPhoneNumbersOptions } from '../../plugins/phone-numbers/index.js'
import { createTestDatabase } from '../helper-database.js'
import { TEST_SECRET } from '../helper.js'

t.test('options are checked at registration, with a message that says what to change', async (t) => {
  const { db } = await createTestDatabase(t)
  const cases: Array<[string, unknown, RegExp]> = [
    ['no auth', { db }, /auth is required/],
    ['two auth kinds', { db, auth: { secret: TEST_SECRET, useHostJwt: true } }, /exactly one of secret, publicKey, getKey or useHostJwt, got secret, useHostJwt/],
    ['empty auth', { db, auth: {} }, /got none/],
    ['short secret', { db, auth: { secret: 'short' } }, /at least 32 characters/],
    ['public key without algorithms', { db, auth: { publicKey: 'PEM' } }, /auth.algorithms is required/],
    ['alg none', { db, auth: { secret: TEST_SECRET, algorithms: ['none'] } }, /"none" is never accepted/],
    ['bad collection name', { db, auth: { secret: TEST_SECRET }, usersCollection: 'users.$x' }, /usersCollection must be a non-empty name/],
    ['empty field name', { db, auth: { secret: TEST_SECRET }, phoneNumbersField: '' }, /phoneNumbersField must be a non-empty name/],
    ['field that would overwrite the role', { db, auth: { secret: TEST_SECRET }, phoneNumbersField: 'role' }, /phoneNumbersField "role" would overwrite a user field the plugin reads/],
    ['field that would overwrite the organization', { db, auth: { secret: TEST_SECRET }, phoneNumbersField: 'organizationId' }, /would overwrite a user field/],
    ['zero body limit', { db, auth: { secret: TEST_SECRET }, bodyLimit: 0 }, /bodyLimit must be a positive integer/],
    ['fractional attempts', { db, auth: { secret: TEST_SECRET }, maxWriteAttempts: 1.5 }, /maxWriteAttempts must be a positive integer/],
    ['predicate not a function', { db, auth: { secret: TEST_SECRET }, isSuperAdmin: 'SUPERADMIN' }, /isSuperAdmin must be a function/],
    ['prefix without slash', { db, auth: { secret: TEST_SECRET }, prefix: 'v2' }, /prefix must be '' or start with '\/'/],
    ['events in the users collection', { db, auth: { secret: TEST_SECRET }, eventsCollection: 'users' }, /must all be different collections/],
    ['deliveries in the events collection', { db, auth: { secret: TEST_SECRET }, onEvent: () => {}, eventDelivery: { collection: 'phoneNumberEvents' } }, /must all be different collections/],
    ['onEvent not a function', { db, auth: { secret: TEST_SECRET }, onEvent: 'https://example.test/hook' }, /onEvent must be a function/],
    ['zero visibility delay', { db, auth: { secret: TEST_SECRET }, eventVisibilityDelayMs: 0 }, /eventVisibilityDelayMs must be a positive integer/],
    ['fractional retry pause', { db, auth: { secret: TEST_SECRET }, eventDelivery: { retryBaseMs: 0.5 } }, /eventDelivery.retryBaseMs must be a positive integer/],
    ['no database', { auth: { secret: TEST_SECRET } }, /no database: pass options.db, or register @fastify\/mongodb/],
    ['host jwt missing', { db, auth: { useHostJwt: true } }, /auth.useHostJwt needs @fastify\/jwt registered on the host/]
  ]
  for (const [name, options, message] of cases) {
    const app = Fastify({ logger: false })
    await t.rejects(async () => { await app.register(orgPhoneNumbers, options as OrgPhoneNumbersOptions) }, message, name)
    await app.close()
  }
})

t.test('custom collection and field names are used for reads, writes and indexes', async (t) => {
  const { db } = await createTestDatabase(t)
  const app = Fastify({ logger: false })
  await app.register(orgPhoneNumbers, { db, auth: { secret: TEST_SECRET }, usersCollection: 'members', organizationsCollection: 'tenants', phoneNumbersField: 'voiceNumbers' })
  await app.ready()
  t.teardown(() => app.close())
  const { ObjectId } = await import('mongodb')
  const organizationId = new ObjectId()
  const userId = new ObjectId()
  await db.collection('tenants').insertOne({ _id: organizationId })
  await db.collection('members').insertOne({ _id: userId, organizationId })
  const result = await app.orgPhoneNumbers.assign(organizationId, userId, { provider: 'textgrid', phoneNumber: '+33612345678' })
  t.equal(result.status, 'assigned')
  const member = await db.collection('members').findOne({ _id: userId })
  t.match(member, { voiceNumbers: [{ provider: 'textgrid', phoneNumber: '+33612345678' }], voiceNumbersRevision: 1 })
  t.ok((await db.collection('members').indexes()).some((index) => index.name === 'voiceNumbers_phoneNumber_provider'))
})
