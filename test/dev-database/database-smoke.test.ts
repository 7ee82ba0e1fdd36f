/**
 * Runs the everyday driver operations against whatever server npm test started (mongod,
 * FerretDB or mongo-java-server), so a backend that lacks one shows up here first.
 */
import t from 'tap'
import { MongoClient, MongoServerError, type ObjectId } from 'mongodb'
import { startMongo, type MongoBackendName } from '../../dev-database/index.js'
import { createTestDatabase, testServerUri, uniqueDatabaseName, uriForDatabase } from '../helper-database.js'

interface PhoneNumber {
  provider: string
  phoneNumber: string
}

interface Org {
  _id?: ObjectId
  orgId: string
  slug: string
  plan: string
  seats: number
  tags: string[]
  phoneNumbers: PhoneNumber[]
  updatedBy?: string
}

const backend = process.env['TEST_MONGO_BACKEND_NAME'] ?? '(unknown)'
t.comment(`backend: ${backend} ${process.env['TEST_MONGO_SERVER_VERSION'] ?? ''}`)

t.test('driver operations against the test server', async (t) => {
  const { db, dbName } = await createTestDatabase(t)
  t.match(dbName, /^test_database_smoke_\d+_[0-9a-f]{8}$/, 'database name is unique per test file')
  const orgs = db.collection<Org>('orgs')

  const names = [
    await orgs.createIndex({ plan: 1 }),
    await orgs.createIndex({ orgId: 1, slug: 1 }, { unique: true, name: 'orgId_slug_unique' }),
    await orgs.createIndex({ 'phoneNumbers.provider': 1, 'phoneNumbers.phoneNumber': 1 }, { name: 'phone_lookup' }),
  ]
  t.same(names, ['plan_1', 'orgId_slug_unique', 'phone_lookup'], 'createIndex returns the index names')
  const indexes = await orgs.listIndexes().toArray()
  const byName = new Map(indexes.map((index) => [String(index['name']), index]))
  t.same(byName.get('orgId_slug_unique')?.['key'], { orgId: 1, slug: 1 }, 'compound index key')
  t.equal(byName.get('orgId_slug_unique')?.['unique'], true, 'compound index is unique')
  t.same(byName.get('phone_lookup')?.['key'], { 'phoneNumbers.provider': 1, 'phoneNumbers.phoneNumber': 1 }, 'index on array subdocument fields')

  const inserted = await orgs.insertMany([
    { orgId: 'o1', slug: 'acme', plan: 'pro', seats: 5, tags: ['a'], phoneNumbers: [{ provider: 'twilio', phoneNumber: '+15550001' }] },
    { orgId: 'o1', slug: 'beta', plan: 'free', seats: 1, tags: [], phoneNumbers: [] },
    { orgId: 'o2', slug: 'acme', plan: 'pro', seats: 2, tags: ['x', 'y'], phoneNumbers: [{ provider: 'sinch', phoneNumber: '+15550002' }] },
  ])
  t.equal(inserted.insertedCount, 3)

  const duplicate = await orgs.insertOne({ orgId: 'o1', slug: 'acme', plan: 'free', seats: 0, tags: [], phoneNumbers: [] })
    .then(() => undefined, (error: unknown) => error)
  t.ok(duplicate instanceof MongoServerError && duplicate.code === 11000, 'unique compound index rejects a duplicate with E11000')

  const pro = await orgs.find({ plan: 'pro' }, { projection: { _id: 0, orgId: 1, slug: 1 } }).sort({ orgId: 1 }).toArray()
  t.same(pro, [{ orgId: 'o1', slug: 'acme' }, { orgId: 'o2', slug: 'acme' }], 'find with a filter, projection and sort')

  const byPhone = await orgs.find({ 'phoneNumbers.provider': 'sinch', 'phoneNumbers.phoneNumber': '+15550002' }).toArray()
  t.same(byPhone.map((org) => org.orgId), ['o2'], 'find by array subdocument fields (dot notation)')

  // Known gap, kept visible rather than hidden: FerretDB 1.24 rejects field conditions inside
  // $elemMatch ("unknown operator: provider").
  const elemMatchGap = backend === 'ferretdb' ? 'FerretDB 1.24 lacks $elemMatch on subdocument fields' : false
  await t.test('$elemMatch on array subdocuments', { todo: elemMatchGap }, async (t) => {
    const found = await orgs.find({ phoneNumbers: { $elemMatch: { provider: 'sinch', phoneNumber: '+15550002' } } }).toArray()
    t.same(found.map((org) => org.orgId), ['o2'])
  })

  const update = await orgs.updateOne(
    { orgId: 'o1', slug: 'acme' },
    {
      $set: { plan: 'enterprise' },
      $inc: { seats: 3 },
      $push: { phoneNumbers: { provider: 'textgrid', phoneNumber: '+15550003' } },
      $pull: { tags: 'a' },
    }
  )
  t.equal(update.matchedCount, 1)
  t.equal(update.modifiedCount, 1)
  const updated = await orgs.findOne({ orgId: 'o1', slug: 'acme' }, { projection: { _id: 0 } })
  t.same(updated, {
    orgId: 'o1',
    slug: 'acme',
    plan: 'enterprise',
    seats: 8,
    tags: [],
    phoneNumbers: [{ provider: 'twilio', phoneNumber: '+15550001' }, { provider: 'textgrid', phoneNumber: '+15550003' }],
  }, 'updateOne applied $set, $inc, $push and $pull')

  const pulled = await orgs.updateOne({ orgId: 'o1', slug: 'acme' }, { $pull: { phoneNumbers: { provider: 'twilio', phoneNumber: '+15550001' } } })
  t.equal(pulled.modifiedCount, 1)
  const afterPull = await orgs.findOne({ orgId: 'o1', slug: 'acme' })
  t.same(afterPull?.phoneNumbers, [{ provider: 'textgrid', phoneNumber: '+15550003' }], '$pull removes a matching subdocument')

  const after = await orgs.findOneAndUpdate(
    { orgId: 'o2', slug: 'acme' },
    { $set: { updatedBy: 'smoke' }, $inc: { seats: -1 } },
    { returnDocument: 'after' }
  )
  t.match(after, { orgId: 'o2', seats: 1, updatedBy: 'smoke' }, 'findOneAndUpdate returns the document after the update')

  // Known gap: FerretDB 1.24 rejects findAndModify's "fields" (the driver's `projection`).
  const projectionGap = backend === 'ferretdb' ? 'FerretDB 1.24 lacks findAndModify with a projection' : false
  await t.test('findOneAndUpdate with a projection', { todo: projectionGap }, async (t) => {
    const projected = await orgs.findOneAndUpdate(
      { orgId: 'o2', slug: 'acme' },
      { $inc: { seats: 1 } },
      { returnDocument: 'after', projection: { _id: 0, seats: 1, updatedBy: 1 } }
    )
    t.same(projected, { seats: 2, updatedBy: 'smoke' })
    await orgs.updateOne({ orgId: 'o2', slug: 'acme' }, { $set: { seats: 1 } })
  })
  const missing = await orgs.findOneAndUpdate({ orgId: 'nope' }, { $set: { plan: 'x' } }, { returnDocument: 'after' })
  t.equal(missing, null, 'findOneAndUpdate without a match returns null')

  t.equal(await orgs.countDocuments(), 3)
  t.equal(await orgs.countDocuments({ orgId: 'o1' }), 2)

  const deleted = await orgs.deleteOne({ orgId: 'o1', slug: 'beta' })
  t.equal(deleted.deletedCount, 1)
  t.equal(await orgs.countDocuments({ orgId: 'o1' }), 1)

  t.equal(await orgs.drop(), true)
  const collections = await db.listCollections({}, { nameOnly: true }).toArray()
  t.notOk(collections.some((c) => c.name === 'orgs'), 'dropped collection is gone')
})

t.test('launcher: MONGODB_URI is used as is, without starting anything', async (t) => {
  const uri = testServerUri()
  const lines: string[] = []
  const running = await startMongo({ log: (line) => lines.push(line) })
  t.equal(running.backend, 'uri')
  t.equal(running.uri, uri)
  t.match(running.serverVersion, /^\d+\.\d+/)
  const expected = process.env['TEST_MONGO_SERVER_VERSION']
  if (expected !== undefined) t.equal(running.serverVersion, expected, 'same buildInfo version the runner saw')

  const forced = await startMongo({ backend: 'uri', log: (line) => lines.push(line) })
  t.equal(forced.uri, uri)
  await running.stop()
  await forced.stop()
  t.same(lines, [], 'nothing was started or logged')

  // stop() is a no-op for a server we don't own: it still answers.
  const again = await startMongo({ backend: 'uri' })
  t.equal(again.serverVersion, running.serverVersion)
})

t.test('launcher: clear errors for bad input', async (t) => {
  await t.rejects(startMongo({ backend: 'nope' as MongoBackendName }), {
    message: 'unknown MongoDB backend "nope": expected one of mongod, ferretdb, java, uri',
  })

  const saved = process.env['MONGODB_URI']
  t.teardown(() => { process.env['MONGODB_URI'] = saved })
  delete process.env['MONGODB_URI']
  await t.rejects(startMongo({ backend: 'uri' }), { message: /needs MONGODB_URI.*MONGODB_URI=mongodb:\/\/127\.0\.0\.1:27017\/tether/ })
  await t.rejects(createTestDatabase(t), { message: /run tests with npm test/ })

  process.env['MONGODB_URI'] = 'mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=500'
  await t.rejects(startMongo({}), { message: /does not answer/ }, 'an unreachable MONGODB_URI is reported, not silently replaced')
})

t.test('helper: database names and URIs', async (t) => {
  t.equal(uriForDatabase('db1', 'mongodb://127.0.0.1:27017/tether?retryWrites=false'), 'mongodb://127.0.0.1:27017/db1?retryWrites=false')
  t.equal(uriForDatabase('db1', 'mongodb://127.0.0.1:27017'), 'mongodb://127.0.0.1:27017/db1')
  t.equal(uriForDatabase('db1', 'mongodb://u:p@h1:1,h2:2/?replicaSet=rs'), 'mongodb://u:p@h1:1,h2:2/db1?replicaSet=rs')
  t.throws(() => uriForDatabase('db1', 'http://example.invalid'), /does not look like a MongoDB connection string/)
  const name = uniqueDatabaseName('/x/phone-numbers.test.ts')
  t.match(name, /^test_phone_numbers_\d+_[0-9a-f]{8}$/)
  t.not(uniqueDatabaseName('/x/a.test.ts'), uniqueDatabaseName('/x/a.test.ts'), 'names differ between calls')
  t.ok(Buffer.byteLength(uniqueDatabaseName('/x/' + 'y'.repeat(200) + '.test.ts')) < 64, 'fits MongoDB\'s 63-byte limit')
})

t.test('launcher: starts a second server of the backend under test and stops it', async (t) => {
  const name = process.env['TEST_MONGO_BACKEND_NAME']
  if (name !== 'ferretdb' && name !== 'java') {
    t.pass(`skipped: the runner's backend is ${name ?? 'unknown'}, not one this test starts cheaply`)
    return
  }
  const lines: string[] = []
  const second = await startMongo({ backend: name, log: (line) => lines.push(line) })
  t.teardown(() => second.stop())
  t.equal(second.backend, name)
  t.not(second.uri, testServerUri(), 'a server of its own, on another port')
  t.equal(second.serverVersion, process.env['TEST_MONGO_SERVER_VERSION'])
  t.same(lines, [], 'already installed: nothing to build or fetch')

  await second.stop()
  await second.stop() // idempotent
  const probe = new MongoClient(`${second.uri}?serverSelectionTimeoutMS=500`)
  await t.rejects(probe.db('admin').command({ ping: 1 }), 'the stopped server no longer answers')
  await probe.close()
})
