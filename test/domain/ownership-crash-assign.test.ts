/**
 * Crash between the steps of the store's multi-step writes, assign, on a real
 * database. The store's `onStep` option throws a marker
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
 * The other steps: ownership-crash-{assign,remove,transfer}.test.ts.
 */
import t, { type Test } from 'tap'
import { createPhoneNumberStore, type PhoneNumberStore } from '../../src/domain/store.js'
import { createTestDatabasePair } from '../helper-database.js'
import { checkSafe, claimOf, claimSummary, crashWorlds, expectCrash, holdingsOf, PROVIDER, restartedStore, routeOf, summarize, type CrashSwitch, type World } from './ownership-crash-helper.js'

t.setTimeout(600_000)

// otherDb: the same database over its own connection pool, as a second server process would use it.
const { db, otherDb } = await createTestDatabasePair(t)
await createPhoneNumberStore(db).ensureIndexes()
const { seedWorld, crashingStore } = crashWorlds(db, otherDb)

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
