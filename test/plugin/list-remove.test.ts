import t from 'tap'
import { MongoClient, ObjectId } from 'mongodb'
import { build, injectEveryOperation, phoneNumbersUrl, type Built } from '../helper.js'
import { uriForDatabase } from '../helper-database.js'

async function assign (built: Built, userId: string, provider: string, phoneNumber: string, extra: Record<string, unknown> = {}): Promise<void> {
  const response = await built.app.inject({
    method: 'POST',
    url: phoneNumbersUrl(built.fixture.organizationId),
    headers: built.headers,
    payload: { targetUserId: userId, provider, phoneNumber, ...extra }
  })
  if (response.statusCode !== 200) throw new Error(`assign failed: ${response.body}`)
}

t.test('GET lists the organization\'s assignments only, filterable by user and provider', async (t) => {
  const built = await build(t)
  const { app, fixture, authorization } = built
  await assign(built, fixture.userId, 'twilio', '+14165550001', { label: 'Desk' })
  await assign(built, fixture.userId, 'sinch', '+14165550002')
  await assign(built, fixture.otherUserId, 'twilio', '+14165550003', { isInboundEnabled: false })
  // A user of another organization holding numbers must never show up.
  await built.db.collection('users').updateOne(
    { _id: new ObjectId(fixture.foreignUserId) },
    { $set: { phoneNumbers: [{ provider: 'twilio', phoneNumber: '+15550000000', isDefault: true, isInboundEnabled: true, createdAt: new Date(), updatedAt: new Date() }] } }
  )
  const url = phoneNumbersUrl(fixture.organizationId)

  const all = await app.inject({ method: 'GET', url, headers: { authorization } })
  t.equal(all.statusCode, 200)
  const listed = all.json().phoneNumbers as Array<Record<string, unknown>>
  t.same(listed.map((entry) => [entry['userId'], entry['provider'], entry['phoneNumber']]).sort(), [
    [fixture.otherUserId, 'twilio', '+14165550003'],
    [fixture.userId, 'sinch', '+14165550002'],
    [fixture.userId, 'twilio', '+14165550001']
  ].sort())
  t.match(listed.find((entry) => entry['phoneNumber'] === '+14165550001'), {
    isDefault: true, isInboundEnabled: true, label: 'Desk', createdAt: /Z$/, updatedAt: /Z$/
  })
  t.equal(listed.find((entry) => entry['phoneNumber'] === '+14165550003')?.['isInboundEnabled'], false)

  const byUser = await app.inject({ method: 'GET', url: `${url}?targetUserId=${fixture.userId}`, headers: { authorization } })
  t.same((byUser.json().phoneNumbers as Array<{ phoneNumber: string }>).map((entry) => entry.phoneNumber).sort(), ['+14165550001', '+14165550002'])

  const byProvider = await app.inject({ method: 'GET', url: `${url}?provider=twilio`, headers: { authorization } })
  t.same((byProvider.json().phoneNumbers as Array<{ phoneNumber: string }>).map((entry) => entry.phoneNumber).sort(), ['+14165550001', '+14165550003'])

  const both = await app.inject({ method: 'GET', url: `${url}?provider=sinch&targetUserId=${fixture.otherUserId}`, headers: { authorization } })
  t.same(both.json(), { phoneNumbers: [], nextCursor: null })

  const foreign = await app.inject({ method: 'GET', url: `${url}?targetUserId=${fixture.foreignUserId}`, headers: { authorization } })
  t.same(foreign.json(), { phoneNumbers: [], nextCursor: null }, 'a user of another org is invisible')

  const missingOrg = await app.inject({ method: 'GET', url: phoneNumbersUrl(new ObjectId().toHexString()), headers: { authorization } })
  t.equal(missingOrg.statusCode, 404)
  t.equal(missingOrg.json().error, 'Organization not found')
})

t.test('DELETE removes one assignment; removing the default leaves the provider without one', async (t) => {
  const built = await build(t)
  const { app, fixture, headers, phoneNumbersOf } = built
  await assign(built, fixture.userId, 'twilio', '+14165550001', { isDefault: false })
  await assign(built, fixture.userId, 'twilio', '+14165550002')
  await assign(built, fixture.userId, 'sinch', '+14165550002', { isInboundEnabled: false })
  const url = phoneNumbersUrl(fixture.organizationId)

  const removed = await app.inject({ method: 'DELETE', url, headers, payload: { targetUserId: fixture.userId, provider: 'twilio', phoneNumber: '+14165550002' } })
  t.equal(removed.statusCode, 200)
  t.same(removed.json(), { success: true, message: 'twilio phone number removed' })

  const stored = await phoneNumbersOf(fixture.userId) as Array<Record<string, unknown>>
  t.same(stored.map((entry) => [entry['provider'], entry['phoneNumber'], entry['isDefault']]), [
    ['twilio', '+14165550001', false],
    ['sinch', '+14165550002', true]
  ], 'the sinch entry with the same number stays; twilio has no default now')

  const again = await app.inject({ method: 'DELETE', url, headers, payload: { targetUserId: fixture.userId, provider: 'twilio', phoneNumber: '+14165550002' } })
  t.equal(again.statusCode, 404)
  t.same(again.json(), { error: 'Phone number not found', details: 'The target user holds no twilio number +14165550002' })
})

t.test('DELETE: 404 outside the organization, 400 on bad input, nothing changed', async (t) => {
  const built = await build(t)
  const { app, fixture, headers, userDocument } = built
  await built.db.collection('users').updateOne(
    { _id: new ObjectId(fixture.foreignUserId) },
    { $set: { phoneNumbers: [{ provider: 'twilio', phoneNumber: '+15550000000', isDefault: true, isInboundEnabled: true, createdAt: new Date(), updatedAt: new Date() }] } }
  )
  const foreignBefore = await userDocument(fixture.foreignUserId)
  const url = phoneNumbersUrl(fixture.organizationId)

  const foreign = await app.inject({ method: 'DELETE', url, headers, payload: { targetUserId: fixture.foreignUserId, provider: 'twilio', phoneNumber: '+15550000000' } })
  t.equal(foreign.statusCode, 404)
  t.equal(foreign.json().error, 'Target user not found in organization')

  const missingOrg = await app.inject({ method: 'DELETE', url: phoneNumbersUrl(new ObjectId().toHexString()), headers, payload: { targetUserId: fixture.userId, provider: 'twilio', phoneNumber: '+15550000000' } })
  t.equal(missingOrg.statusCode, 404)
  t.equal(missingOrg.json().error, 'Organization not found')

  const bad = await app.inject({ method: 'DELETE', url, headers, payload: { targetUserId: fixture.foreignUserId, provider: 'twilio', phoneNumber: { $ne: null } } })
  t.equal(bad.statusCode, 400)
  t.match(bad.json().details, /body\/phoneNumber must be string/)

  t.same(await userDocument(fixture.foreignUserId), foreignBefore)
})

t.test('the store finds the holder of a number for inbound routing', async (t) => {
  const built = await build(t)
  const { app, fixture } = built
  await assign(built, fixture.userId, 'twilio', '+14165550001')
  await assign(built, fixture.otherUserId, 'sinch', '+14165550001', { isInboundEnabled: false })
  await assign(built, fixture.otherUserId, 'twilio', '+14165550009')

  const holder = await app.orgPhoneNumbers.findHolder({ provider: 'twilio', phoneNumber: '+14165550001' })
  t.equal(holder?.userId.toHexString(), fixture.userId)
  t.equal(String(holder?.organizationId), fixture.organizationId)
  t.match(holder?.assignment, { provider: 'twilio', phoneNumber: '+14165550001', isDefault: true })

  // otherUser holds sinch:+1…0001 and twilio:+1…0009 — provider and number in two different entries.
  t.equal(await app.orgPhoneNumbers.findHolder({ provider: 'sinch', phoneNumber: '+14165550009' }), undefined)
  t.equal(await app.orgPhoneNumbers.findHolder({ provider: 'textgrid', phoneNumber: '+14165550001' }), undefined)

  // Entries other code stored beside ours (null, a string) are skipped, not a 500.
  const users = built.db.collection('users')
  const other = await users.findOne({ _id: new ObjectId(fixture.otherUserId) })
  await users.updateOne({ _id: new ObjectId(fixture.otherUserId) }, { $set: { phoneNumbers: [null, 'note', ...(other?.['phoneNumbers'] as unknown[])] } })
  t.match(await app.orgPhoneNumbers.findHolder({ provider: 'twilio', phoneNumber: '+14165550009' }), { assignment: { phoneNumber: '+14165550009' } }, 'found past foreign entries')

  const indexes = await built.db.collection('users').indexes()
  t.ok(indexes.some((index) => index.name === 'phoneNumbers_phoneNumber_provider'), 'routing index created at startup')
  t.ok(indexes.some((index) => index.name === 'organizationId_1__id_1'), 'organization index (listing order) created at startup')
})

t.test('database failures are clean 5xx answers with no internal detail', async (t) => {
  const built = await build(t)
  const { fixture, headers, db } = built
  // An app on its own connection, which the test then closes under it.
  const connection = new MongoClient(uriForDatabase(db.databaseName), { serverSelectionTimeoutMS: 500 })
  await connection.connect()
  const { app } = await build(t, { db: connection.db(db.databaseName), createIndexes: false })
  await connection.close()
  for (const [method, response] of await injectEveryOperation(app, phoneNumbersUrl(fixture.organizationId), headers, { targetUserId: fixture.userId, provider: 'twilio', phoneNumber: '+14165550001' })) {
    t.equal(response.statusCode, 503, method)
    const body = response.json()
    t.equal(body.error, 'Service unavailable')
    t.match(body.details, /^The database is unreachable; retry later \(request id .+\)$/)
    t.notMatch(response.body, /mongo|Mongo|stack|127\.0\.0\.1|at .*\.js/, 'no driver message, stack or address')
  }
})
