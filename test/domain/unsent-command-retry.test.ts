/**
 * A command the driver never sent (its pool was cleared while it waited for a
 * connection, because another command failed on the network) is run again by
 * the store, as the driver itself would on a replica set with retryable
 * writes. The first test breaks real connections through a TCP proxy; the
 * others raise the driver's own error from the store's step hook, to stop an
 * operation at an exact point, and show that once a user write was sent, the
 * error reaches the caller instead.
 */
import t from 'tap'
import { MongoClient, MongoNetworkError, ObjectId, type Db } from 'mongodb'
import { createPhoneNumberStore, type StoreStep } from '../../src/domain/store.js'
import { createTestDatabase, testServerUri } from '../helper-database.js'
import { firstHost, startTcpProxy } from './tcp-proxy.js'

const { db, dbName } = await createTestDatabase(t)
let sequence = 0

async function seedUsers (count: number): Promise<{ organizationId: ObjectId, userIds: ObjectId[] }> {
  const organizationId = new ObjectId()
  await db.collection('organizations').insertOne({ _id: organizationId })
  const userIds = Array.from({ length: count }, () => new ObjectId())
  await db.collection('users').insertMany(userIds.map((_id) => ({ _id, organizationId, name: 'user' })))
  return { organizationId, userIds }
}

function nextNumber (): string {
  sequence++
  return `+1416556${String(sequence).padStart(4, '0')}`
}

async function holdersOf (phoneNumber: string): Promise<string[]> {
  const users = await db.collection('users').find({ 'phoneNumbers.phoneNumber': phoneNumber }).toArray()
  return users.map((user) => String(user['_id']))
}

/** The error the driver gives a command that waited for a connection of a pool that was then cleared. */
function poolClearedError (): MongoNetworkError {
  const error = new MongoNetworkError('Connection pool was cleared because another operation failed with: "connection closed"')
  error.addErrorLabel('PoolRequestedRetry')
  return error
}

/** A store whose next operation gets `error` right after `step`, once. */
function failingAfter (database: Db, at: { step: StoreStep | undefined }, error: () => Error) {
  return createPhoneNumberStore(database, {
    onStep: (step) => {
      if (step !== at.step) return
      at.step = undefined
      throw error()
    }
  })
}

t.test('connections cut while commands wait for one: the operations that never sent theirs succeed', async (t) => {
  const proxy = await startTcpProxy(firstHost(testServerUri()))
  t.teardown(proxy.close)
  // One connection, so the second operation's commands wait in the pool while the first one's is held.
  const client = new MongoClient(`mongodb://127.0.0.1:${proxy.port}/${dbName}?directConnection=true&maxPoolSize=1`, { serverSelectionTimeoutMS: 10_000 })
  await client.connect()
  t.teardown(async () => { await client.close() })
  const store = createPhoneNumberStore(client.db(dbName))
  const { organizationId, userIds } = await seedUsers(2)
  const [first, second] = [nextNumber(), nextNumber()]
  t.equal((await store.assign(organizationId, userIds[0]!, { provider: 'twilio', phoneNumber: nextNumber() })).status, 'assigned', 'warm-up: the pool has its connection')

  const held = proxy.hold()
  const operations = [
    store.assign(organizationId, userIds[0]!, { provider: 'twilio', phoneNumber: first }),
    store.assign(organizationId, userIds[1]!, { provider: 'twilio', phoneNumber: second })
  ].map(async (operation) => await operation.then((result) => result.status, (error: unknown) => `threw ${(error as Error).name}`))
  await held
  proxy.cut()
  const outcomes = await Promise.all(operations)

  t.same(outcomes, ['assigned', 'assigned'], 'both assigned: neither command that failed had reached the server')
  t.same(await holdersOf(first), [String(userIds[0])], 'the first number is held once')
  t.same(await holdersOf(second), [String(userIds[1])], 'the second number is held once')
})

t.test('never sent, before any user write: the operation runs again and answers as if nothing failed', async (t) => {
  const at: { step: StoreStep | undefined } = { step: 'assign:claimed' }
  const store = failingAfter(db, at, poolClearedError)
  const { organizationId, userIds } = await seedUsers(1)
  const phoneNumber = nextNumber()
  const result = await store.assign(organizationId, userIds[0]!, { provider: 'twilio', phoneNumber, label: 'Desk' })
  t.equal(at.step, undefined, 'the error was raised')
  t.equal(result.status, 'assigned')
  t.same(await holdersOf(phoneNumber), [String(userIds[0])], 'one entry')
  const route = await store.findInboundRoute(phoneNumber)
  t.equal(route.status, 'routed', 'and the number routes to it')
})

t.test('never sent, but after a user write: the error reaches the caller (the change may have landed)', async (t) => {
  const at: { step: StoreStep | undefined } = { step: undefined }
  const store = failingAfter(db, at, poolClearedError)
  const { organizationId, userIds } = await seedUsers(1)
  const phoneNumber = nextNumber()
  t.equal((await store.assign(organizationId, userIds[0]!, { provider: 'twilio', phoneNumber })).status, 'assigned')
  at.step = 'remove:user-written'
  const outcome = await store.remove(organizationId, userIds[0]!, { provider: 'twilio', phoneNumber }).then(
    (result) => `answered ${result.status}`,
    (error: unknown) => (error as Error).name)
  t.equal(outcome, 'MongoNetworkError', 'the removal is not reported as not found')
  t.same(await holdersOf(phoneNumber), [], 'its write had landed')
  t.equal((await store.assign(organizationId, userIds[0]!, { provider: 'twilio', phoneNumber })).status, 'assigned', 'the number is usable at once')
})

t.test('any other error is not retried', async (t) => {
  const at: { step: StoreStep | undefined } = { step: 'assign:claimed' }
  const store = failingAfter(db, at, () => new MongoNetworkError('connection reset while the command was on its way'))
  const { organizationId, userIds } = await seedUsers(1)
  const phoneNumber = nextNumber()
  const outcome = await store.assign(organizationId, userIds[0]!, { provider: 'twilio', phoneNumber }).then(
    (result) => `answered ${result.status}`,
    (error: unknown) => (error as Error).message)
  t.equal(outcome, 'connection reset while the command was on its way')
  t.same(await holdersOf(phoneNumber), [], 'nothing written')
  t.equal((await store.assign(organizationId, userIds[0]!, { provider: 'twilio', phoneNumber })).status, 'assigned', 'the number is usable at once')
})
