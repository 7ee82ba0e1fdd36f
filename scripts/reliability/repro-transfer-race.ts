/**
 * Reproduction of two races the ownership run (ownership.ts) found between
 * server processes sharing one database. Three stores (three instance ids,
 * three MongoClients: three "processes") on one mongo-java-server database.
 * Each round, on a fresh number and fresh users: the source user is assigned
 * the number inbound through two of the stores (so the claim is shared, as
 * it is under multi-process traffic), then:
 *
 *  transfer-transfer  the three stores each transfer it from the source to
 *                     their own target at once (random 0-3 ms stagger). At
 *                     most one may succeed; the number must end on one user.
 *  transfer-remove    store 0 transfers it to a target while store 1 removes
 *                     it from the source. At most one may succeed: a transfer
 *                     whose source was already removed is "Phone number not
 *                     found", and a remove after the move finds nothing.
 *
 *   npx tsx scripts/reliability/repro-transfer-race.ts   (REPRO_ROUNDS per scenario, default 200)
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { MongoClient, ObjectId } from 'mongodb'
import { createPhoneNumberStore } from '../../src/domain/store.js'
import { startMongo } from '../../dev-database/index.js'
import { uriForDatabase } from '../../test/helper-database.js'
import { envNumber, finish, log } from './report.js'

const rounds = envNumber('REPRO_ROUNDS', 200)
const mongo = await startMongo({ backend: 'java', log: (line) => log(`[java] ${line}`) })
const uri = uriForDatabase('repro', mongo.uri)
const clients = [new MongoClient(uri), new MongoClient(uri), new MongoClient(uri)]
const stores = clients.map((client, i) => createPhoneNumberStore(client.db(), { instanceId: `process-${i}` }))
const organizationId = new ObjectId()
const db = clients[0]!.db()
await db.collection('organizations').insertOne({ _id: organizationId })
await stores[0]!.ensureIndexes()

let serial = 0
const stagger = async (): Promise<void> => { await sleep(Math.random() * 3) }

/** A fresh number held inbound by a fresh source user, its claim touched by stores 0 and 1; and three fresh targets. */
async function setUp (): Promise<{ phoneNumber: string, source: ObjectId, targets: ObjectId[] }> {
  const phoneNumber = `+1416556${String(serial++).padStart(4, '0')}`
  const source = new ObjectId()
  const targets = [new ObjectId(), new ObjectId(), new ObjectId()]
  await db.collection('users').insertMany([source, ...targets].map((_id) => ({ _id, organizationId })))
  const input = { provider: 'twilio' as const, phoneNumber, isDefault: false, isInboundEnabled: true }
  for (const store of stores.slice(0, 2)) {
    const result = await store.assign(organizationId, source, input)
    if (result.status !== 'assigned') throw new Error(`set-up assign of ${phoneNumber}: ${result.status}`)
  }
  return { phoneNumber, source, targets }
}

async function holdersOf (phoneNumber: string): Promise<Array<{ userId: string, isInboundEnabled: boolean }>> {
  const users = await db.collection('users').find({ 'phoneNumbers.phoneNumber': phoneNumber }).toArray()
  return users.flatMap((user) => (user['phoneNumbers'] as Array<{ phoneNumber: string, isInboundEnabled: boolean }>)
    .filter((entry) => entry.phoneNumber === phoneNumber)
    .map((entry) => ({ userId: String(user._id), isInboundEnabled: entry.isInboundEnabled })))
}

const problems: string[] = []
const figures: Record<string, unknown> = { rounds }

// --- transfer-transfer ---------------------------------------------------------------------
{
  const outcomes: Record<string, number> = {}
  let bothSucceeded = 0
  let twoHolders = 0
  let twoInbound = 0
  for (let round = 0; round < rounds; round++) {
    const { phoneNumber, source, targets } = await setUp()
    const results = await Promise.all(stores.map(async (store, i) => {
      await stagger()
      return await store.transfer(organizationId, { provider: 'twilio', phoneNumber, fromUserId: source, toUserId: targets[i]! })
    }))
    for (const result of results) outcomes[result.status] = (outcomes[result.status] ?? 0) + 1
    const holders = await holdersOf(phoneNumber)
    if (results.filter((result) => result.status === 'transferred').length > 1) bothSucceeded++
    if (holders.length > 1) twoHolders++
    if (holders.filter((holder) => holder.isInboundEnabled).length > 1) {
      twoInbound++
      if (twoInbound <= 2) log(`transfer-transfer ${phoneNumber}: answers ${results.map((r) => r.status).join(', ')}; held by ${JSON.stringify(holders)}`)
    }
  }
  figures['transferTransfer'] = { outcomes, roundsWithTwoSuccessfulTransfers: bothSucceeded, roundsEndingOnTwoUsers: twoHolders, roundsEndingWithTwoInboundRoutes: twoInbound }
  if (bothSucceeded > 0) problems.push(`transfer-transfer: ${bothSucceeded}/${rounds} rounds where two transfers of one assignment both answered transferred (${twoInbound} ending with two inbound routes)`)
}

// --- transfer-remove -----------------------------------------------------------------------
{
  const outcomes: Record<string, number> = {}
  let bothSucceeded = 0
  for (let round = 0; round < rounds; round++) {
    const { phoneNumber, source, targets } = await setUp()
    const [moved, removed] = await Promise.all([
      (async () => { await stagger(); return await stores[0]!.transfer(organizationId, { provider: 'twilio', phoneNumber, fromUserId: source, toUserId: targets[0]! }) })(),
      (async () => { await stagger(); return await stores[1]!.remove(organizationId, source, { provider: 'twilio', phoneNumber }) })()
    ])
    const key = `${moved.status}+${removed.status}`
    outcomes[key] = (outcomes[key] ?? 0) + 1
    if (moved.status === 'transferred' && removed.status === 'removed') {
      bothSucceeded++
      if (bothSucceeded <= 2) log(`transfer-remove ${phoneNumber}: transfer answered transferred, remove answered removed; held by ${JSON.stringify(await holdersOf(phoneNumber))}`)
    }
  }
  figures['transferRemove'] = { outcomes, roundsWhereBothSucceeded: bothSucceeded }
  if (bothSucceeded > 0) problems.push(`transfer-remove: ${bothSucceeded}/${rounds} rounds where the transfer and the remove of one assignment both succeeded`)
}

for (const client of clients) await client.close()
await mongo.stop()
finish('repro-transfer-race', figures, problems)
