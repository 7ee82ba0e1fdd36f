/**
 * Crash between the steps of the store's multi-step writes, remove, on a real
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
import { claimOf, claimSummary, crashWorlds, expectCrash, holdingsOf, PROVIDER, restartedStore, routeOf, summarize, type CrashSwitch, type World } from './ownership-crash-helper.js'

t.setTimeout(600_000)

// otherDb: the same database over its own connection pool, as a second server process would use it.
const { db, otherDb } = await createTestDatabasePair(t)
await createPhoneNumberStore(db).ensureIndexes()
const { seedWorld, crashingStore } = crashWorlds(db, otherDb)

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
