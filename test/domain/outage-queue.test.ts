/**
 * While the database is down, work queued behind an operation that waited out
 * its server selection answers at once: it is never the one sent to find out
 * whether the database is back, which would add a second full selection
 * timeout to its answer. The outage is real: a TCP proxy in front of the test
 * database drops every connection, so the driver's own monitor sees it.
 */
import t from 'tap'
import { MongoClient, ObjectId } from 'mongodb'
import { setTimeout as sleep } from 'node:timers/promises'
import { DatabaseUnavailableError, watchAvailability } from '../../src/domain/database-availability.js'
import { createPhoneNumberStore, type StoreStep } from '../../src/domain/store.js'
import { createTestDatabase, testServerUri } from '../helper-database.js'
import { firstHost, startTcpProxy } from './tcp-proxy.js'

const SELECTION_TIMEOUT_MS = 1500

const { db, dbName } = await createTestDatabase(t)

t.test('two operations on one number during an outage: the second answers when the first does', async (t) => {
  const proxy = await startTcpProxy(firstHost(testServerUri()))
  t.teardown(proxy.close)
  const client = new MongoClient(`mongodb://127.0.0.1:${proxy.port}/${dbName}?directConnection=true`, {
    serverSelectionTimeoutMS: SELECTION_TIMEOUT_MS,
    heartbeatFrequencyMS: 500
  })
  await client.connect()
  t.teardown(async () => { await client.close() })
  const availability = watchAvailability(client.db(dbName))
  const waitUntil = async (down: boolean): Promise<boolean> => {
    for (let waited = 0; availability.isDown() !== down && waited < 10_000; waited += 50) await sleep(50)
    return availability.isDown() === down
  }
  // The first operation is caught by the outage after its claim: it fails once the monitor has
  // seen the database go, as one waiting out its server selection would.
  let outageAt: StoreStep | undefined
  const store = createPhoneNumberStore(client.db(dbName), {
    onStep: async (step) => {
      if (step !== outageAt) return
      outageAt = undefined
      proxy.down()
      t.ok(await waitUntil(true), 'the driver\'s monitor has seen the outage')
      await sleep(400)
      throw new Error('the database went away')
    }
  })
  const organizationId = new ObjectId()
  const userId = new ObjectId()
  await db.collection('organizations').insertOne({ _id: organizationId })
  await db.collection('users').insertOne({ _id: userId, organizationId, name: 'user' })
  const phoneNumber = '+14165550101'
  t.equal((await store.assign(organizationId, userId, { provider: 'twilio', phoneNumber })).status, 'assigned', 'assigned while the database is up')

  outageAt = 'assign:claimed'
  const started = Date.now()
  const settle = async (operation: Promise<unknown>): Promise<{ error: unknown, ms: number }> =>
    await operation.then(() => ({ error: undefined, ms: Date.now() - started }), (error: unknown) => ({ error, ms: Date.now() - started }))
  // Both on the same number: the second waits in the number's queue while the first is stuck.
  const [first, second] = await Promise.all([
    settle(store.assign(organizationId, userId, { provider: 'twilio', phoneNumber, label: 'first' })),
    settle(store.remove(organizationId, userId, { provider: 'twilio', phoneNumber }))
  ])

  t.match(first.error, { message: 'the database went away' }, `the first failed in the outage after ${first.ms} ms`)
  // Without the rule it would be let through to fence the first one's step, and wait a full selection for it.
  t.ok(second.error instanceof DatabaseUnavailableError,
    `the queued second answered without a server selection of its own, ${second.ms - first.ms} ms after the first: ${String(second.error)}`)

  proxy.up()
  t.ok(await waitUntil(false), 'the monitor sees the database back')
  t.equal((await store.remove(organizationId, userId, { provider: 'twilio', phoneNumber })).status, 'removed', 'and the number is usable again')
})
