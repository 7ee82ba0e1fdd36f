/**
 * Crash between the steps of the store's multi-step writes, transfer, on a real
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
import t from 'tap'
import { createPhoneNumberStore } from '../../src/domain/store.js'
import { createTestDatabasePair } from '../helper-database.js'
import { checkSafe, claimSummary, crashWorlds, entryOf, expectCrash, holdingsOf, PROVIDER, restartedStore, routeOf, summarize, type CrashSwitch, type World } from './ownership-crash-helper.js'

t.setTimeout(600_000)

// otherDb: the same database over its own connection pool, as a second server process would use it.
const { db, otherDb } = await createTestDatabasePair(t)
await createPhoneNumberStore(db).ensureIndexes()
const { seedWorld, crashingStore } = crashWorlds(db, otherDb)

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
