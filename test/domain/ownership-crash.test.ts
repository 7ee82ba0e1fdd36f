/**
 * Crash between the steps of the store's multi-step writes (assign, remove,
 * transfer), on a real database. The store's `onStep` option throws a marker
 * right after the chosen step, so the operation stops there as a crashed
 * process would; then the stored documents (users and claims) are read back,
 * and the next operations, from the same store or from a new store instance
 * (a restarted process: another instanceId, its own connection) at once,
 * with no lease to wait out (the crashed step is fenced after its grace),
 * must find a safe state and repair it:
 * - never held by two organizations,
 * - never routed twice (findInboundRoute resolves any two inbound entries),
 * - never unassignable for good,
 * - a stale claim or a half-done transfer repaired on the next access.
 */
import t, { type Test } from 'tap'
import { ObjectId, type Db } from 'mongodb'
import {
  createPhoneNumberStore,
  type AssignResult,
  type PhoneNumberStore,
  type StoreStep
} from '../../src/domain/store.js'
import type { ClaimDocument } from '../../src/domain/number-claims.js'
import { createTestDatabasePair } from '../helper-database.js'
import { SimulatedCrash } from './simulated-crash.js'

t.setTimeout(600_000)

const PROVIDER = 'twilio' as const

/** Which step the next operation of a store crashes after; disarmed once it fired. */
interface CrashSwitch { at: StoreStep | undefined }

interface World {
  db: Db
  /** The same database over another connection: what a restarted process would use. */
  otherDb: Db
  orgA: ObjectId
  orgB: ObjectId
  /** Users of orgA: A1..A4; of orgB: B1. */
  users: Record<'A1' | 'A2' | 'A3' | 'A4' | 'B1', ObjectId>
  names: Map<string, string>
  phoneNumber: string
}

// otherDb: the same database over its own connection pool, as a second server process would use it.
const { db, otherDb } = await createTestDatabasePair(t)
await createPhoneNumberStore(db).ensureIndexes()

let numberSequence = 0

/** Two fresh organizations with their users, and a number nobody ever touched. */
async function seedWorld (): Promise<World> {
  const orgA = new ObjectId()
  const orgB = new ObjectId()
  await db.collection('organizations').insertMany([{ _id: orgA }, { _id: orgB }])
  const users = { A1: new ObjectId(), A2: new ObjectId(), A3: new ObjectId(), A4: new ObjectId(), B1: new ObjectId() }
  await db.collection('users').insertMany(Object.entries(users).map(([name, _id]) => ({
    _id,
    organizationId: name.startsWith('A') ? orgA : orgB,
    name
  })))
  const names = new Map(Object.entries(users).map(([name, id]) => [id.toHexString(), name]))
  names.set(orgA.toHexString(), 'orgA')
  names.set(orgB.toHexString(), 'orgB')
  numberSequence++
  return { db, otherDb, orgA, orgB, users, names, phoneNumber: `+1416555${String(numberSequence).padStart(4, '0')}` }
}

function crashingStore (crash: CrashSwitch, instanceId = 'crashed-process'): PhoneNumberStore {
  return createPhoneNumberStore(db, {

    instanceId,
    onStep: (step) => {
      if (step !== crash.at) return
      crash.at = undefined
      throw new SimulatedCrash(step)
    }
  })
}

/** Another process started after the crash: its own instanceId and connection. */
function restartedStore (world: World): PhoneNumberStore {
  return createPhoneNumberStore(world.otherDb, { instanceId: 'restarted-process' })
}

/** Awaits an operation that must stop with the simulated crash right after `step`. */
async function expectCrash (t: Test, operation: Promise<unknown>, step: StoreStep): Promise<void> {
  const outcome = await operation.then((result) => ({ result }), (error: unknown) => ({ error }))
  if ('result' in outcome) {
    t.fail(`the operation was to crash after ${step}, it answered ${JSON.stringify(outcome.result)}`)
    return
  }
  t.ok(outcome.error instanceof SimulatedCrash && outcome.error.step === step, `the operation stopped right after ${step}`, { error: String(outcome.error) })
}

function nameOf (world: World, id: unknown): string {
  return id instanceof ObjectId ? world.names.get(id.toHexString()) ?? id.toHexString() : String(id)
}

/** Every entry of the number in the users collection, as `A1:inbound` / `A3:outbound`, sorted. */
async function holdingsOf (world: World): Promise<string[]> {
  const documents = await db.collection('users').find({ 'phoneNumbers.phoneNumber': world.phoneNumber }).toArray()
  const holdings: string[] = []
  for (const document of documents) {
    const entries: unknown = document['phoneNumbers']
    if (!Array.isArray(entries)) continue
    for (const entry of entries as Array<Record<string, unknown>>) {
      if (entry['phoneNumber'] !== world.phoneNumber) continue
      holdings.push(`${nameOf(world, document['_id'])}:${entry['isInboundEnabled'] === true ? 'inbound' : 'outbound'}`)
    }
  }
  return holdings.sort()
}

/** The organizations whose users hold the number. */
async function holdingOrganizations (world: World): Promise<string[]> {
  const documents = await db.collection('users').find({ 'phoneNumbers.phoneNumber': world.phoneNumber }).toArray()
  return [...new Set(documents.map((document) => nameOf(world, document['organizationId'])))].sort()
}

async function entryOf (world: World, user: keyof World['users']): Promise<Record<string, unknown> | undefined> {
  const document = await db.collection('users').findOne({ _id: world.users[user] })
  const entries: unknown = document?.['phoneNumbers']
  if (!Array.isArray(entries)) return undefined
  return (entries as Array<Record<string, unknown>>).find((entry) => entry['phoneNumber'] === world.phoneNumber)
}

async function claimOf (world: World): Promise<ClaimDocument | null> {
  return await db.collection<ClaimDocument>('phoneNumberClaims').findOne({ _id: world.phoneNumber })
}

/** The claim as `org / inbound user / transfer state`, readable in a diff. */
async function claimSummary (world: World): Promise<Record<string, unknown> | null> {
  const claim = await claimOf(world)
  if (claim === null) return null
  return {
    organization: nameOf(world, claim.organizationId),
    inbound: claim.inbound == null ? null : `${nameOf(world, claim.inbound.userId)}:${claim.inbound.provider}`,
    transfer: claim.transfer === undefined
      ? 'none'
      : `${nameOf(world, claim.transfer.fromUserId)}->${nameOf(world, claim.transfer.toUserId)} ${claim.transfer.committed ? 'committed' : 'uncommitted'}`
  }
}

/** findInboundRoute's answer as `routed:A1`, `no-route` or `ambiguous:A1,A2`. */
async function routeOf (world: World, store: PhoneNumberStore): Promise<string> {
  const route = await store.findInboundRoute(world.phoneNumber)
  if (route.status === 'routed') return `routed:${nameOf(world, route.holder.userId)}`
  if (route.status === 'no-route') return 'no-route'
  return `ambiguous:${route.holders.map((holder) => nameOf(world, holder.userId)).sort().join(',')}`
}

/** What the design forbids at every instant: two organizations, an unresolved double route, a route nobody holds. */
async function checkSafe (t: Test, world: World, store: PhoneNumberStore, when: string): Promise<void> {
  const organizations = await holdingOrganizations(world)
  t.ok(organizations.length <= 1, `${when}: held by at most one organization`, { organizations })
  const holdings = await holdingsOf(world)
  const route = await routeOf(world, store)
  const inbound = holdings.filter((holding) => holding.endsWith(':inbound')).map((holding) => holding.split(':')[0])
  if (inbound.length === 0) {
    t.equal(route, 'no-route', `${when}: no inbound entry, no route`)
  } else {
    t.ok(route.startsWith('routed:') && inbound.includes(route.slice('routed:'.length)), `${when}: routed to exactly one of the inbound entries`, { route, holdings })
  }
}

function summarize (world: World, result: AssignResult): string {
  if (result.status === 'other-organization' || result.status === 'inbound-held') {
    return `${result.status}[${result.holders.map((holder) => nameOf(world, holder.userId)).join(',')}]`
  }
  return result.status
}

// ---------------------------------------------------------------------------
// assign
// ---------------------------------------------------------------------------

/** A1's inbound assign, stopped right after its claim was taken (users untouched). */
async function crashAfterAssignClaimed (t: Test): Promise<{ world: World, store: PhoneNumberStore, crashedAt: Date }> {
  const world = await seedWorld()
  const crash: CrashSwitch = { at: 'assign:claimed' }
  const store = crashingStore(crash)
  const crashedAt = new Date()
  await expectCrash(t, store.assign(world.orgA, world.users.A1, { provider: PROVIDER, phoneNumber: world.phoneNumber }, { now: crashedAt }), 'assign:claimed')
  return { world, store, crashedAt }
}

t.test('assign stopped after assign:claimed: a claim nobody backs', async (t) => {
  t.test('the state left behind: no holder, no route, the claim names orgA and A1', async (t) => {
    const { world, store } = await crashAfterAssignClaimed(t)
    t.same(await holdingsOf(world), [], 'no user holds the number')
    t.same(await claimSummary(world), { organization: 'orgA', inbound: 'A1:twilio', transfer: 'none' }, 'the claim names orgA with A1 inbound')
    t.equal(await routeOf(world, store), 'no-route', 'findInboundRoute: no route')
    t.equal(await routeOf(world, restartedStore(world)), 'no-route', 'findInboundRoute from another instance: no route')
  })

  t.test('(a) the same store assigns it to orgB at once: it touched the claim last', async (t) => {
    const { world, store } = await crashAfterAssignClaimed(t)
    const result = await store.assign(world.orgB, world.users.B1, { provider: PROVIDER, phoneNumber: world.phoneNumber })
    t.equal(summarize(world, result), 'assigned', 'orgB gets the number')
    t.same(await holdingsOf(world), ['B1:inbound'], 'B1 holds it, inbound')
    t.same(await claimSummary(world), { organization: 'orgB', inbound: 'B1:twilio', transfer: 'none' }, 'the claim was taken over')
    t.equal(await routeOf(world, store), 'routed:B1')
    await checkSafe(t, world, store, 'after the takeover')
  })

  t.test('(b) a restarted process assigns it to orgB at once: the crashed step is fenced, no lease waited out', async (t) => {
    const { world } = await crashAfterAssignClaimed(t)
    const restarted = restartedStore(world)
    const late = await restarted.assign(world.orgB, world.users.B1, { provider: PROVIDER, phoneNumber: world.phoneNumber })
    t.equal(summarize(world, late), 'assigned', 'on the first request: assigned to orgB')
    t.same(await holdingsOf(world), ['B1:inbound'])
    t.same(await claimSummary(world), { organization: 'orgB', inbound: 'B1:twilio', transfer: 'none' })
    await checkSafe(t, world, restarted, 'after the takeover')
  })

  t.test('(c) same store: another user of orgA takes the inbound route at once', async (t) => {
    const { world, store } = await crashAfterAssignClaimed(t)
    const result = await store.assign(world.orgA, world.users.A2, { provider: PROVIDER, phoneNumber: world.phoneNumber })
    t.equal(summarize(world, result), 'assigned')
    t.same(await holdingsOf(world), ['A2:inbound'])
    t.same(await claimSummary(world), { organization: 'orgA', inbound: 'A2:twilio', transfer: 'none' }, 'the route moved to A2')
    t.equal(await routeOf(world, store), 'routed:A2')
  })

  t.test('(c) restarted process: another user of orgA takes the route at once', async (t) => {
    const { world } = await crashAfterAssignClaimed(t)
    const restarted = restartedStore(world)
    const late = await restarted.assign(world.orgA, world.users.A2, { provider: PROVIDER, phoneNumber: world.phoneNumber })
    t.equal(summarize(world, late), 'assigned')
    t.same(await holdingsOf(world), ['A2:inbound'])
    t.same(await claimSummary(world), { organization: 'orgA', inbound: 'A2:twilio', transfer: 'none' })
    t.equal(await routeOf(world, restarted), 'routed:A2')
  })

  t.test('repairClaim releases the unbacked claim (same store and restarted store, at once)', async (t) => {
    const { world, store } = await crashAfterAssignClaimed(t)
    t.same(await store.repairClaim(world.phoneNumber), { transfer: 'none', claim: 'released' })
    t.equal(await claimOf(world), null, 'the claim is gone')

    const second = await crashAfterAssignClaimed(t)
    const restarted = restartedStore(second.world)
    t.same(await restarted.repairClaim(second.world.phoneNumber), { transfer: 'none', claim: 'released' }, 'the restarted store fences the crashed step and releases the claim at once')
    t.equal(await claimOf(second.world), null, 'the claim is gone')
  })
})

t.test('assign stopped after assign:user-written (inbound on): the state is complete, both rules hold', async (t) => {
  const world = await seedWorld()
  const crash: CrashSwitch = { at: 'assign:user-written' }
  const store = crashingStore(crash)
  await expectCrash(t, store.assign(world.orgA, world.users.A1, { provider: PROVIDER, phoneNumber: world.phoneNumber }), 'assign:user-written')
  t.same(await holdingsOf(world), ['A1:inbound'])
  t.same(await claimSummary(world), { organization: 'orgA', inbound: 'A1:twilio', transfer: 'none' })
  t.equal(await routeOf(world, store), 'routed:A1')
  const restarted = restartedStore(world)
  for (const [name, candidate] of [['same store', store], ['restarted store', restarted]] as const) {
    const foreign = await candidate.assign(world.orgB, world.users.B1, { provider: PROVIDER, phoneNumber: world.phoneNumber })
    t.equal(summarize(world, foreign), 'other-organization[A1]', `${name}: orgB is refused, A1 holds it`)
    const second = await candidate.assign(world.orgA, world.users.A2, { provider: PROVIDER, phoneNumber: world.phoneNumber })
    t.equal(summarize(world, second), 'inbound-held[A1]', `${name}: a second inbound route is refused`)
  }
  t.same(await holdingsOf(world), ['A1:inbound'], 'the refusals wrote nothing')
  await checkSafe(t, world, restarted, 'after the refusals')
})

/** A1 holds the number inbound; A1's request switching inbound off stops right after the user write. */
async function crashAfterInboundSwitchedOff (t: Test): Promise<{ world: World, store: PhoneNumberStore, crashedAt: Date }> {
  const world = await seedWorld()
  const crash: CrashSwitch = { at: undefined }
  const store = crashingStore(crash)
  t.equal((await store.assign(world.orgA, world.users.A1, { provider: PROVIDER, phoneNumber: world.phoneNumber })).status, 'assigned')
  crash.at = 'assign:user-written'
  const crashedAt = new Date()
  await expectCrash(t, store.assign(world.orgA, world.users.A1, { provider: PROVIDER, phoneNumber: world.phoneNumber, isInboundEnabled: false }, { now: crashedAt }), 'assign:user-written')
  return { world, store, crashedAt }
}

t.test('assign stopped after assign:user-written when the request switched inbound off', async (t) => {
  t.test('the state left behind: A1 outbound, the claim still names A1 inbound, no route', async (t) => {
    const { world, store } = await crashAfterInboundSwitchedOff(t)
    t.same(await holdingsOf(world), ['A1:outbound'])
    t.same(await claimSummary(world), { organization: 'orgA', inbound: 'A1:twilio', transfer: 'none' }, 'the stale route is left on the claim')
    t.equal(await routeOf(world, store), 'no-route', 'the users route nothing')
    const foreign = await store.assign(world.orgB, world.users.B1, { provider: PROVIDER, phoneNumber: world.phoneNumber })
    t.equal(summarize(world, foreign), 'other-organization[A1]', 'A1 still holds it for orgA')
  })

  t.test('same store: another user\'s inbound assign succeeds at once', async (t) => {
    const { world, store } = await crashAfterInboundSwitchedOff(t)
    const result = await store.assign(world.orgA, world.users.A2, { provider: PROVIDER, phoneNumber: world.phoneNumber })
    t.equal(summarize(world, result), 'assigned')
    t.same(await holdingsOf(world), ['A1:outbound', 'A2:inbound'])
    t.same(await claimSummary(world), { organization: 'orgA', inbound: 'A2:twilio', transfer: 'none' })
    t.equal(await routeOf(world, store), 'routed:A2')
    await checkSafe(t, world, store, 'after the new route')
  })

  t.test('restarted store: another user\'s inbound assign succeeds at once', async (t) => {
    const { world } = await crashAfterInboundSwitchedOff(t)
    const restarted = restartedStore(world)
    const late = await restarted.assign(world.orgA, world.users.A2, { provider: PROVIDER, phoneNumber: world.phoneNumber })
    t.equal(summarize(world, late), 'assigned')
    t.same(await holdingsOf(world), ['A1:outbound', 'A2:inbound'])
    t.same(await claimSummary(world), { organization: 'orgA', inbound: 'A2:twilio', transfer: 'none' })
    t.equal(await routeOf(world, restarted), 'routed:A2')
  })

  t.test('repairClaim clears the unbacked route and keeps the claim', async (t) => {
    const { world, store } = await crashAfterInboundSwitchedOff(t)
    t.same(await store.repairClaim(world.phoneNumber), { transfer: 'none', claim: 'route-cleared' })
    t.same(await claimSummary(world), { organization: 'orgA', inbound: null, transfer: 'none' })
    t.same(await holdingsOf(world), ['A1:outbound'], 'the user documents are not touched')
  })
})

// ---------------------------------------------------------------------------
// remove
// ---------------------------------------------------------------------------

/** A1 holds the number; A1's removal stops right after the user write (the claim is left behind). */
async function crashAfterRemoveWritten (t: Test): Promise<{ world: World, store: PhoneNumberStore, crashedAt: Date }> {
  const world = await seedWorld()
  const crash: CrashSwitch = { at: undefined }
  const store = crashingStore(crash)
  const crashedAt = new Date()
  t.equal((await store.assign(world.orgA, world.users.A1, { provider: PROVIDER, phoneNumber: world.phoneNumber }, { now: crashedAt })).status, 'assigned')
  crash.at = 'remove:user-written'
  await expectCrash(t, store.remove(world.orgA, world.users.A1, { provider: PROVIDER, phoneNumber: world.phoneNumber }), 'remove:user-written')
  return { world, store, crashedAt }
}

t.test('remove stopped after remove:user-written: the claim outlives the last holder', async (t) => {
  t.test('the state left behind', async (t) => {
    const { world, store } = await crashAfterRemoveWritten(t)
    t.same(await holdingsOf(world), [])
    t.same(await claimSummary(world), { organization: 'orgA', inbound: 'A1:twilio', transfer: 'none' })
    t.equal(await routeOf(world, store), 'no-route')
  })

  t.test('same store: orgB assigns it at once', async (t) => {
    const { world, store } = await crashAfterRemoveWritten(t)
    const result = await store.assign(world.orgB, world.users.B1, { provider: PROVIDER, phoneNumber: world.phoneNumber })
    t.equal(summarize(world, result), 'assigned')
    t.same(await holdingsOf(world), ['B1:inbound'])
    t.same(await claimSummary(world), { organization: 'orgB', inbound: 'B1:twilio', transfer: 'none' })
    t.equal(await routeOf(world, store), 'routed:B1')
  })

  t.test('restarted store: orgB assigns it at once', async (t) => {
    const { world } = await crashAfterRemoveWritten(t)
    const restarted = restartedStore(world)
    const late = await restarted.assign(world.orgB, world.users.B1, { provider: PROVIDER, phoneNumber: world.phoneNumber })
    t.equal(summarize(world, late), 'assigned')
    t.same(await holdingsOf(world), ['B1:inbound'])
    t.same(await claimSummary(world), { organization: 'orgB', inbound: 'B1:twilio', transfer: 'none' })
  })

  t.test('repairClaim: released (same store and restarted store, at once)', async (t) => {
    const { world, store } = await crashAfterRemoveWritten(t)
    t.same(await store.repairClaim(world.phoneNumber), { transfer: 'none', claim: 'released' })
    t.equal(await claimOf(world), null)

    const second = await crashAfterRemoveWritten(t)
    const restarted = restartedStore(second.world)
    t.same(await restarted.repairClaim(second.world.phoneNumber), { transfer: 'none', claim: 'released' }, 'released at once')
    t.equal(await claimOf(second.world), null)
  })
})

// ---------------------------------------------------------------------------
// transfer
// ---------------------------------------------------------------------------

const TRANSFER_STEPS = ['transfer:begun', 'transfer:target-written', 'transfer:committed', 'transfer:source-removed'] as const
type TransferStep = typeof TRANSFER_STEPS[number]

/** Past the commit point the transfer is finished; before it, undone. */
function isCommitted (step: TransferStep): boolean {
  return step === 'transfer:committed' || step === 'transfer:source-removed'
}

/** The users' entries right after the crash: A3's outbound copy beside the transfer's. */
const HOLDINGS_AFTER: Record<TransferStep, string[]> = {
  'transfer:begun': ['A1:inbound', 'A3:outbound'],
  'transfer:target-written': ['A1:inbound', 'A2:inbound', 'A3:outbound'],
  'transfer:committed': ['A1:inbound', 'A2:inbound', 'A3:outbound'],
  'transfer:source-removed': ['A2:inbound', 'A3:outbound']
}

type NextAccess = 'repairClaim' | 'assign by the live holder' | 'outbound-only assign by another user' | 'transfer on from the live holder' | 'remove of another copy' | 'remove by the live holder'
const NEXT_ACCESSES: readonly NextAccess[] = [
  'repairClaim', 'assign by the live holder', 'outbound-only assign by another user', 'transfer on from the live holder', 'remove of another copy', 'remove by the live holder'
]

for (const step of TRANSFER_STEPS) {
  const committed = isCommitted(step)
  // The holder of the route: the source before the commit, the target after.
  const live = committed ? 'A2' : 'A1'
  const dead = committed ? 'A1' : 'A2'

  t.test(`transfer A1->A2 stopped after ${step}`, async (t) => {
    for (const restart of [false, true]) {
      for (const next of NEXT_ACCESSES) {
        t.test(`${restart ? 'restarted store, at once' : 'same store'}: ${next}`, async (t) => {
          const world = await seedWorld()
          const crash: CrashSwitch = { at: undefined }
          const crashed = crashingStore(crash)
          const number = { provider: PROVIDER, phoneNumber: world.phoneNumber }
          t.equal((await crashed.assign(world.orgA, world.users.A1, { ...number, label: 'source' })).status, 'assigned', 'A1 holds it inbound')
          t.equal((await crashed.assign(world.orgA, world.users.A3, { ...number, isInboundEnabled: false, isDefault: false })).status, 'assigned', 'A3 holds an outbound-only copy')
          crash.at = step
          await expectCrash(t, crashed.transfer(world.orgA, { ...number, fromUserId: world.users.A1, toUserId: world.users.A2 }), step)

          // Right after the crash: one route, the live one, from either instance.
          const restarted = restartedStore(world)
          t.equal(await routeOf(world, crashed), `routed:${live}`, `routed to ${live} only (${committed ? 'target after' : 'source before'} the commit)`)
          t.equal(await routeOf(world, restarted), `routed:${live}`, `another instance routes it to ${live} too`)
          t.same(await holdingsOf(world), HOLDINGS_AFTER[step], 'the user documents as the crash left them')
          t.same(await claimSummary(world), {
            organization: 'orgA',
            inbound: `${live}:twilio`,
            transfer: `A1->A2 ${committed ? 'committed' : 'uncommitted'}`
          }, 'the claim records the transfer and the live route')
          await checkSafe(t, world, crashed, 'right after the crash')

          let actor = crashed
          if (restart) actor = restarted

          // The next access to this number finishes or undoes the transfer.
          let inboundHolder: string | null = live
          let expected: string[]
          switch (next) {
            case 'repairClaim': {
              t.same(await actor.repairClaim(world.phoneNumber), { transfer: committed ? 'rolled-forward' : 'rolled-back', claim: 'kept' })
              expected = [`${live}:inbound`, 'A3:outbound']
              break
            }
            case 'assign by the live holder': {
              const result = await actor.assign(world.orgA, world.users[live], { ...number, label: 'renamed' })
              t.equal(summarize(world, result), 'assigned', `${live}, who holds the route, may update its assignment`)
              expected = [`${live}:inbound`, 'A3:outbound']
              break
            }
            case 'outbound-only assign by another user': {
              const result = await actor.assign(world.orgA, world.users.A4, { ...number, isInboundEnabled: false, isDefault: false })
              t.equal(summarize(world, result), 'assigned', 'A4 adds an outbound-only copy')
              expected = [`${live}:inbound`, 'A3:outbound', 'A4:outbound']
              break
            }
            case 'transfer on from the live holder': {
              const result = await actor.transfer(world.orgA, { ...number, fromUserId: world.users[live], toUserId: world.users.A4 })
              t.equal(result.status, 'transferred', `${live}, who holds the route, may transfer it on to A4`, { result })
              inboundHolder = 'A4'
              expected = ['A3:outbound', 'A4:inbound']
              break
            }
            case 'remove of another copy': {
              const result = await actor.remove(world.orgA, world.users.A3, number)
              t.equal(result.status, 'removed', 'A3 removes its outbound copy')
              expected = [`${live}:inbound`]
              break
            }
            case 'remove by the live holder': {
              const result = await actor.remove(world.orgA, world.users[live], number)
              t.equal(result.status, 'removed', `${live}, who holds the route, removes its copy`)
              // The transfer's other copy is dead (the undone target, or the finished source): it must not take the route.
              inboundHolder = null
              expected = ['A3:outbound']
              break
            }
          }
          t.same(await holdingsOf(world), expected, `the transfer was ${committed ? 'finished' : 'undone'}: ${dead}'s copy is gone, one inbound holder`)
          t.same(await claimSummary(world), { organization: 'orgA', inbound: inboundHolder === null ? null : `${inboundHolder}:twilio`, transfer: 'none' }, 'the claim\'s transfer record is gone')
          t.equal(await routeOf(world, actor), inboundHolder === null ? 'no-route' : `routed:${inboundHolder}`, `no route but the live one (${dead}'s copy does not come back)`)
          if (next === 'assign by the live holder') t.equal((await entryOf(world, live))?.['label'], 'renamed', 'the update was stored')
          await checkSafe(t, world, actor, 'after the next access')

          // Never unassignable for good: once its holders let it go, orgB can have it.
          if (next === 'repairClaim' || next.startsWith('remove')) {
            for (const holding of await holdingsOf(world)) {
              const user = holding.split(':')[0] as keyof World['users']
              t.equal((await actor.remove(world.orgA, world.users[user], number)).status, 'removed', `${user} lets it go`)
            }
            const foreign = await actor.assign(world.orgB, world.users.B1, number)
            t.equal(summarize(world, foreign), 'assigned', 'orgB assigns it once orgA let it go')
            t.same(await holdingsOf(world), ['B1:inbound'])
          }
        })
      }
    }
  })
}
