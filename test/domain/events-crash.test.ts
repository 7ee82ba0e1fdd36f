/**
 * The change log's guarantees without transactions, on a real database:
 * no lost event (a stored change always ends up in the log) and no phantom
 * event (none for a change that was not stored), and exactly one log entry
 * per event.
 *
 * Crashes: the store's `onStep` option stops an operation right after a
 * step, as a killed process would (a throw for the user-write steps; a
 * promise that never settles for `events:logged`, a flush frozen between the
 * log insert and the outbox clear). Then a restarted store (another
 * instanceId, its own connection) finds the state and finishes the work.
 *
 * Races: concurrent writers of one user, and a sweeper flushing the same
 * outboxes at the same time, must leave one event per stored change.
 */
import t, { type Test } from 'tap'
import { MongoClient, ObjectId } from 'mongodb'
import { setTimeout as sleep } from 'node:timers/promises'
import { createPhoneNumberStore, type LoggedEvent, type PhoneNumberStore, type StoreStep } from '../../src/domain/store.js'
import { createTestDatabasePair } from '../helper-database.js'
import { SimulatedCrash } from './simulated-crash.js'
import { TEST_BACKEND } from '../helper-database.js'

t.setTimeout(600_000)

const FERRETDB = TEST_BACKEND === 'ferretdb'
const VISIBILITY_MS = 100

// otherDb: the same database over its own connection pool, as a second server process would use it.
const { db, otherDb, uri, dbName } = await createTestDatabasePair(t)
await createPhoneNumberStore(db).ensureIndexes()

let numberSequence = 0
function freshNumber (): string {
  numberSequence++
  return `+1905555${String(numberSequence).padStart(4, '0')}`
}

interface World { org: ObjectId, a: ObjectId, b: ObjectId }

async function seedWorld (): Promise<World> {
  const world = { org: new ObjectId(), a: new ObjectId(), b: new ObjectId() }
  await db.collection('organizations').insertOne({ _id: world.org })
  await db.collection('users').insertMany([{ _id: world.a, organizationId: world.org }, { _id: world.b, organizationId: world.org }])
  return world
}

/** A store that stops after `step`: a throw, or (for the background flush) a freeze. */
function crashingStore (step: StoreStep): PhoneNumberStore {
  let armed = true
  return createPhoneNumberStore(db, {
    instanceId: 'crashed-process',
    eventVisibilityDelayMs: VISIBILITY_MS,
    onStep: async (reached) => {
      if (!armed || reached !== step) return
      armed = false
      if (step === 'events:logged') await new Promise(() => {}) // the process froze here, for good
      throw new SimulatedCrash(step)
    }
  })
}

function restartedStore (): PhoneNumberStore {
  return createPhoneNumberStore(otherDb, { instanceId: 'restarted-process', eventVisibilityDelayMs: VISIBILITY_MS })
}

async function logOf (world: World): Promise<LoggedEvent[]> {
  return await db.collection<LoggedEvent>('phoneNumberEvents').find({ organizationId: world.org }, { sort: { position: 1, _id: 1 } }).toArray()
}

async function outboxOf (userId: ObjectId): Promise<Array<{ _id: string, type: string }>> {
  const user = await db.collection('users').findOne({ _id: userId })
  const outbox: unknown = user?.['phoneNumbersOutbox']
  return Array.isArray(outbox) ? outbox as Array<{ _id: string, type: string }> : []
}

async function entryOf (userId: ObjectId, phoneNumber: string): Promise<Record<string, unknown> | undefined> {
  const user = await db.collection('users').findOne({ _id: userId })
  const entries: unknown = user?.['phoneNumbers']
  return Array.isArray(entries) ? (entries as Array<Record<string, unknown>>).find((entry) => entry['phoneNumber'] === phoneNumber) : undefined
}

async function expectCrash (t: Test, operation: Promise<unknown>, step: StoreStep): Promise<void> {
  const outcome = await operation.then((result) => ({ result }), (error: unknown) => ({ error }))
  t.ok('error' in outcome && outcome.error instanceof SimulatedCrash, `stopped right after ${step}`, { outcome: String('error' in outcome ? outcome.error : JSON.stringify(outcome.result)) })
}

/** Every event of a user's outboxes, then the log: no id twice, and each log entry's id unique. */
function idsOf (events: ReadonlyArray<{ _id: string }>): string[] {
  return events.map((event) => event._id)
}

t.test('crash right after the user write: the event waits in the outbox, never lost', async (t) => {
  for (const next of ['startup sweep', 'next access to the user'] as const) {
    t.test(next, async (t) => {
      const world = await seedWorld()
      const phoneNumber = freshNumber()
      const crashed = crashingStore('assign:user-written')
      await expectCrash(t, crashed.assign(world.org, world.a, { provider: 'twilio', phoneNumber }), 'assign:user-written')
      t.ok(await entryOf(world.a, phoneNumber), 'the change is stored')
      const pending = await outboxOf(world.a)
      t.strictSame(pending.map((event) => event.type), ['assigned'], 'its event is in the same document')
      t.equal((await logOf(world)).length, 0, 'and not yet in the log')

      const restarted = restartedStore()
      if (next === 'startup sweep') {
        t.ok(await restarted.flushPendingEvents() >= 1, 'the sweep finds the user')
      } else {
        t.equal((await restarted.assign(world.org, world.a, { provider: 'sinch', phoneNumber: freshNumber(), isDefault: false })).status, 'assigned')
        await restarted.eventsFlushed()
      }
      const log = await logOf(world)
      const expected = next === 'startup sweep' ? 1 : 2
      t.equal(log.length, expected, 'the log holds the crashed change (and the new one)')
      t.ok(idsOf(log).includes(pending[0]!._id), 'with the id it was recorded with')
      t.strictSame(await outboxOf(world.a), [], 'the outbox is empty')
      await restarted.flushPendingEvents()
      t.equal((await logOf(world)).length, expected, 'another sweep adds nothing')
    })
  }
})

t.test('crash right after a removal: the removed event waits in the outbox', async (t) => {
  const world = await seedWorld()
  const phoneNumber = freshNumber()
  const crashed = crashingStore('remove:user-written')
  t.equal((await crashed.assign(world.org, world.a, { provider: 'twilio', phoneNumber })).status, 'assigned')
  await crashed.eventsFlushed()
  await expectCrash(t, crashed.remove(world.org, world.a, { provider: 'twilio', phoneNumber }), 'remove:user-written')
  t.equal(await entryOf(world.a, phoneNumber), undefined, 'the removal is stored')
  t.strictSame((await outboxOf(world.a)).map((event) => event.type), ['removed'])
  await restartedStore().flushPendingEvents()
  t.strictSame((await logOf(world)).map((event) => event.type), ['assigned', 'removed'])
})

t.test('a flush frozen between the log insert and the outbox clear: the next one finishes, no duplicate', async (t) => {
  const world = await seedWorld()
  const phoneNumber = freshNumber()
  const frozen = crashingStore('events:logged')
  t.equal((await frozen.assign(world.org, world.a, { provider: 'twilio', phoneNumber })).status, 'assigned', 'the request itself is answered')
  // The frozen flush has inserted the event in the log and will never clear the outbox.
  for (let i = 0; i < 100 && (await logOf(world)).length === 0; i++) await sleep(50)
  const log = await logOf(world)
  t.equal(log.length, 1, 'the event is in the log')
  t.strictSame(idsOf(await outboxOf(world.a)), idsOf(log), 'and still in the outbox')

  const restarted = restartedStore()
  await restarted.flushPendingEvents()
  t.strictSame(idsOf(await logOf(world)), idsOf(log), 'the sweep moved it again: still one entry')
  t.strictSame(await outboxOf(world.a), [], 'and cleared the outbox')
})

t.test('the client closes under a flush: the flush stops (no retry loop keeps the process alive), the events wait for the next start', async (t) => {
  const world = await seedWorld()
  const phoneNumber = freshNumber()
  const client = await new MongoClient(uri, { serverSelectionTimeoutMS: 10_000 }).connect()
  t.teardown(async () => { await client.close() })
  // The process stops (its client closes) right after the flush put the event in the log.
  const stopping = createPhoneNumberStore(client.db(dbName), {
    instanceId: 'stopping-process',
    onStep: async (step) => { if (step === 'events:logged') await client.close() }
  })
  t.equal((await stopping.assign(world.org, world.a, { provider: 'twilio', phoneNumber })).status, 'assigned')
  await stopping.eventsFlushed()
  t.equal(stopping.eventBacklog(), 0, 'nothing is left queued to retry against a closed client')
  t.equal((await logOf(world)).length, 1, 'the event reached the log')
  t.equal((await outboxOf(world.a)).length, 1, 'and stays in the outbox, for the next start to clear')
  await restartedStore().flushPendingEvents()
  t.strictSame(await outboxOf(world.a), [], 'which it does')
  t.equal((await logOf(world)).length, 1, 'without logging it twice')
})

const TRANSFER_STEPS: readonly StoreStep[] = ['transfer:begun', 'transfer:target-written', 'transfer:committed', 'transfer:source-removed']

for (const step of TRANSFER_STEPS) {
  t.test(`transfer stopped after ${step}: one transferred event once it is finished, none if undone`, async (t) => {
    const world = await seedWorld()
    const phoneNumber = freshNumber()
    const crashed = crashingStore(step)
    t.equal((await crashed.assign(world.org, world.a, { provider: 'twilio', phoneNumber, label: 'source' })).status, 'assigned')
    await crashed.eventsFlushed()
    await expectCrash(t, crashed.transfer(world.org, { provider: 'twilio', phoneNumber, fromUserId: world.a, toUserId: world.b }), step)

    // No lease to wait out: the restarted store fences the crashed step and finishes or undoes the transfer at once.
    const restarted = restartedStore()
    const repair = await restarted.repairClaim(phoneNumber)
    await restarted.flushPendingEvents()
    const log = await logOf(world)
    const heldByB = await entryOf(world.b, phoneNumber) !== undefined
    const heldByA = await entryOf(world.a, phoneNumber) !== undefined
    t.ok(heldByA !== heldByB, 'one user holds it afterwards', { heldByA, heldByB, repair })
    const transferred = log.filter((event) => event.type === 'transferred')
    if (heldByB) {
      t.equal(transferred.length, 1, 'finished: exactly one transferred event')
      t.match(transferred[0], { userId: world.b, fromUserId: world.a, phoneNumber })
      t.equal(transferred[0]?.before?.label, 'source', 'before is the source entry')
      const stored = await entryOf(world.b, phoneNumber)
      t.equal(transferred[0]?.after?.createdAt.getTime(), (stored?.['createdAt'] as Date).getTime(), 'after is the target entry as stored')
    } else {
      t.equal(transferred.length, 0, 'undone: no transferred event (no phantom)')
    }
    t.strictSame(log.filter((event) => event.type !== 'transferred').map((event) => event.type), ['assigned'], 'no other event')
    t.strictSame([...await outboxOf(world.a), ...await outboxOf(world.b)], [], 'every outbox is empty')
  })
}

t.test('races: concurrent writers of one user and a concurrent sweeper leave one event per stored change', async (t) => {
  const world = await seedWorld()
  // Several processes on one database need atomic single-document updates: FerretDB has none, so it runs one store.
  // (A sweeper in another process would race the writes' read-modify-write there too: on FerretDB it is the writer's own store.)
  const writers = FERRETDB ? [restartedStore()] : [restartedStore(), createPhoneNumberStore(db, { instanceId: 'writer-2', eventVisibilityDelayMs: VISIBILITY_MS })]
  const sweeper = FERRETDB ? writers[0]! : createPhoneNumberStore(otherDb, { instanceId: 'sweeper', eventVisibilityDelayMs: VISIBILITY_MS })
  const numbers = Array.from({ length: FERRETDB ? 4 : 8 }, freshNumber)
  const rounds = FERRETDB ? 3 : 6
  const writing = { done: false }
  const sweeping = (async () => { while (!writing.done) await sweeper.flushPendingEvents() })()

  const outcomes = await Promise.all(numbers.flatMap((phoneNumber, n) => Array.from({ length: rounds }, async (_, round) => {
    const store = writers[(n + round) % writers.length]!
    // Every request changes its entry (a new label), so each 'assigned' answer is one stored change.
    return await store.assign(world.org, world.a, { provider: 'twilio', phoneNumber, isDefault: false, label: `round ${round}` })
  })))
  writing.done = true
  await sweeping
  for (const store of [...writers, sweeper]) await store.eventsFlushed()
  await sweeper.flushPendingEvents()

  const stored = outcomes.filter((outcome) => outcome.status === 'assigned').length
  const log = await logOf(world)
  t.ok(stored > 0, 'some writes were stored', { statuses: outcomes.map((outcome) => outcome.status) })
  t.equal(log.length, stored, 'one event per stored change: none lost, none phantom')
  t.equal(new Set(idsOf(log)).size, log.length, 'no event logged twice')
  t.strictSame(await outboxOf(world.a), [], 'the outbox is empty')
  // The events of each number chain: each one's before is the previous one's after, and the last is what is stored.
  for (const phoneNumber of numbers) {
    const chain = log.filter((event) => event.phoneNumber === phoneNumber)
    t.equal(chain[0]?.type, 'assigned', `${phoneNumber}: starts with assigned`)
    for (let i = 1; i < chain.length; i++) {
      t.equal(chain[i]!.before?.label, chain[i - 1]!.after?.label, `${phoneNumber}: event ${i} follows event ${i - 1}`)
    }
    t.equal(chain[chain.length - 1]?.after?.label, (await entryOf(world.a, phoneNumber))?.['label'], `${phoneNumber}: the last event is the stored entry`)
  }
})
