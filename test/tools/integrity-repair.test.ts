/** The integrity check's repair: only the claims are fixed, a step in flight is fenced and repaired. */
import t from 'tap'
import { BSON, ObjectId, type Document } from 'mongodb'
import { checkIntegrity } from '../../tools/integrity/index.js'
import { createPhoneNumberStore } from '../../src/domain/store.js'
import { createTestDatabase } from '../helper-database.js'
import { NUMBERS as N, seedViolations } from './integrity-seed.js'
import { expectedUserViolations, hex, snapshot, userViolations } from './integrity-helper.js'

// The timeout of the CLI tests (integrity-cli.test.ts), which these shared one file with.
t.setTimeout(240_000)

t.test('repair fixes only the claims; a second run reports only the user-document problems', async (t) => {
  const { db } = await createTestDatabase(t)
  const now = new Date()
  const ids = await seedViolations(db, now)
  const usersBefore = await snapshot(db, 'users')
  const a2Before = await db.collection('users').findOne({ _id: ids.a2 }) as Document
  const a1Before = await db.collection('users').findOne({ _id: ids.a1 }) as Document
  const cleanClaimBefore = (await snapshot(db, 'phoneNumberClaims')).get(N.clean)

  const store = createPhoneNumberStore(db)
  const report = await checkIntegrity(db, { repair: true, store, now })
  t.equal(report.repaired, true)
  const answers = Object.fromEntries(report.repairs.map(({ phoneNumber, ...answer }) => [phoneNumber, answer]))
  t.same(Object.keys(answers), [N.claimOtherOrganization, N.claimRouteNotBacked, N.transferBegun, N.transferCommitted, N.claimNoHolder], 'each stale claim, once')
  t.same(answers[N.claimRouteNotBacked], { transfer: 'none', claim: 'route-cleared', fixed: true })
  t.same(answers[N.transferBegun], { transfer: 'rolled-back', claim: 'kept', fixed: true })
  t.same(answers[N.transferCommitted], { transfer: 'rolled-forward', claim: 'kept', fixed: true })
  t.same(answers[N.claimNoHolder], { transfer: 'none', claim: 'released', fixed: true })
  t.same(userViolations(report), expectedUserViolations(ids), 'user-document problems still reported, not repaired')

  // Claims as stored.
  const claims = db.collection<Document>('phoneNumberClaims')
  t.equal(await claims.findOne({ _id: N.claimNoHolder } as Document), null, 'the unheld number\'s claim is gone')
  const routeClaim = await claims.findOne({ _id: N.claimRouteNotBacked } as Document)
  t.equal(routeClaim?.['inbound'], null, 'the unbacked route is cleared')
  t.ok(routeClaim?.['organizationId']?.equals(ids.orgA), 'that claim still names org A, whose user holds the number')
  for (const phoneNumber of [N.transferBegun, N.transferCommitted]) {
    const claim = await claims.findOne({ _id: phoneNumber } as Document)
    t.equal(claim?.['transfer'], undefined, `${phoneNumber}: the transfer record is cleared`)
    t.ok(claim?.['inbound']?.userId?.equals(ids.a1), `${phoneNumber}: routed to a1, the assignment that holds the route now`)
  }
  t.same((await snapshot(db, 'phoneNumberClaims')).get(N.clean), cleanClaimBefore, 'the backed claim is untouched')

  // Users: byte for byte, except the transfers' copies (both on a2) and the fence of the crashed step on the two users it may write.
  const usersAfter = await snapshot(db, 'users')
  t.same([...usersAfter.keys()].sort(), [...usersBefore.keys()].sort())
  for (const [id, bytes] of usersBefore) {
    if (id === hex(ids.a2) || id === hex(ids.a1)) continue
    t.ok(usersAfter.get(id)?.equals(bytes), `user ${id} unchanged byte for byte`)
  }
  const a2Entries = a2Before['phoneNumbers'] as Array<Record<string, unknown>>
  const a2Expected = {
    ...a2Before,
    // Rolled back: the target's copy goes. Rolled forward: the source's copy goes.
    phoneNumbers: a2Entries.filter((entry) => entry['phoneNumber'] !== N.transferBegun && entry['phoneNumber'] !== N.transferCommitted),
    phoneNumbersFences: ['crashed-step'],
    phoneNumbersRevision: 2
  }
  t.same(BSON.deserialize(usersAfter.get(hex(ids.a2)) ?? Buffer.alloc(5)), a2Expected, 'a2 lost exactly the two transfer copies, and the crashed step is fenced')
  t.same(BSON.deserialize(usersAfter.get(hex(ids.a1)) ?? Buffer.alloc(5)), { ...a1Before, phoneNumbersFences: ['crashed-step'] }, 'a1 only gained the fence')

  const again = await checkIntegrity(db)
  t.same(userViolations(again), expectedUserViolations(ids), 'the second run reports the user-document problems')
  t.equal(again.ok, false)

  // Fails while store.repairClaim answers 'kept' for a claim naming an organization none of whose users hold the number.
  t.equal(answers[N.claimOtherOrganization]?.fixed, true, 'a claim of an organization whose users hold the number no more is repaired')
  const otherOrganizationClaim = await claims.findOne({ _id: N.claimOtherOrganization } as Document)
  t.ok(otherOrganizationClaim === null || otherOrganizationClaim['organizationId']?.equals(ids.orgB),
    'that claim is gone or names org B, whose user holds the number')
  t.same(report.staleClaims, [], 'no stale claim left after repair')
  t.same(again.staleClaims, [], 'and no stale claim on the second run')
})

t.test('a step another process just recorded: reported as in flight; a repair waits its grace, fences it and repairs', async (t) => {
  const { db } = await createTestDatabase(t)
  const orgA = new ObjectId()
  const a1 = new ObjectId()
  const a2 = new ObjectId()
  const at = new Date()
  await db.collection('organizations').insertOne({ _id: orgA })
  await db.collection('users').insertMany([
    { _id: a1, organizationId: orgA, phoneNumbers: [{ provider: 'twilio', phoneNumber: N.transferBegun, isDefault: true, isInboundEnabled: true, createdAt: at, updatedAt: at }] },
    { _id: a2, organizationId: orgA, phoneNumbers: [] }
  ])
  // Just recorded by another process: an assign whose user write may still be on its way, and a transfer under way.
  await db.collection('phoneNumberClaims').insertMany([
    { _id: N.claimNoHolder, organizationId: orgA, inbound: null, rev: 1, writer: { id: 'live-assign', by: 'another-instance', userIds: [a2], at } },
    {
      _id: N.transferBegun,
      organizationId: orgA,
      inbound: { userId: a1, provider: 'twilio' },
      rev: 2,
      writer: { id: 'live-transfer', by: 'another-instance', userIds: [a1, a2], at },
      transfer: { id: 'live', by: 'another-instance', writerId: 'live-transfer', at, provider: 'twilio', fromUserId: a1, toUserId: a2, committed: false }
    }
  ] as never[])

  const check = await checkIntegrity(db, { now: at })
  t.same(check.staleClaims.map((claim) => [claim.phoneNumber, claim.reasons, claim.inFlight, claim.writtenBy]), [
    [N.transferBegun, ['pending-transfer'], true, 'another-instance'],
    [N.claimNoHolder, ['no-holder'], true, 'another-instance']
  ], 'reported, marked in flight')

  const report = await checkIntegrity(db, { repair: true })
  t.same(report.repairs, [
    { phoneNumber: N.transferBegun, transfer: 'rolled-back', claim: 'kept', fixed: true },
    { phoneNumber: N.claimNoHolder, transfer: 'none', claim: 'released', fixed: true }
  ], 'no lease waited out: both repaired on the spot')
  t.same(report.staleClaims, [])
  const [user1, user2] = await Promise.all([db.collection('users').findOne({ _id: a1 }), db.collection('users').findOne({ _id: a2 })])
  t.same(user1?.['phoneNumbers'], [{ provider: 'twilio', phoneNumber: N.transferBegun, isDefault: true, isInboundEnabled: true, createdAt: at, updatedAt: at }], 'the source keeps its number (the transfer was undone before its commit)')
  t.same([...(user2?.['phoneNumbersFences'] as string[] | undefined ?? [])].sort(), ['live-assign', 'live-transfer'], 'both steps are fenced on the user they may write')
  // What the fenced steps' late writes would send: they miss.
  for (const [userId, stepId] of [[a2, 'live-assign'], [a2, 'live-transfer'], [a1, 'live-transfer']] as const) {
    const late = await db.collection('users').updateOne({ _id: userId, phoneNumbersFences: { $ne: stepId } }, { $set: { phoneNumbers: [] } })
    t.equal(late.matchedCount, 0, `a late write of ${stepId} to ${userId === a1 ? 'a1' : 'a2'} misses`)
  }
})
