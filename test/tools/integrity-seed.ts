/**
 * A database with one of each kind of integrity problem, written straight
 * through the driver as other code (or a crash) would leave it. Used by
 * test/tools/integrity-*.test.ts and to produce docs/integrity-check-example.txt.
 */
import { ObjectId, type Db } from 'mongodb'

export const NUMBERS = {
  /** Clean: held inbound by a1, an outbound-only copy on a2, and a claim that matches. */
  clean: '+14165550100',
  /** Held by a1 (org A) and b1 (org B). */
  twoOrganizations: '+14165550101',
  /** Routed inbound by a1 and a2. */
  twoInboundRoutes: '+14165550102',
  /** Held by a3 in an entry without isDefault. */
  missingIsDefault: '+14165550103',
  /** Held by b1 (org B) only; its claim names org A. */
  claimOtherOrganization: '+14165550105',
  /** Held outbound-only by a2; its claim routes it to a2. */
  claimRouteNotBacked: '+14165550106',
  /** A transfer a1 → a2 stopped before its commit point: a2 has the copy. */
  transferBegun: '+14165550107',
  /** A transfer a2 → a1 stopped after its commit point: a2 still has the source. */
  transferCommitted: '+14165550108',
  /** Nobody holds it; a claim does. */
  claimNoHolder: '+14165550190'
} as const

export interface SeededIds {
  orgA: ObjectId
  orgB: ObjectId
  a1: ObjectId
  a2: ObjectId
  a3: ObjectId
  b1: ObjectId
  /** phoneNumbers is a string. */
  badField: ObjectId
  /** phoneNumbers is null (no numbers: fine). */
  nullField: ObjectId
  /** No phoneNumbers field (fine). */
  noField: ObjectId
  /** When the stale claims were last touched and the transfers began. */
  longAgo: Date
}

function entry (provider: string, phoneNumber: string, isInboundEnabled: boolean, at: Date, isDefault = false): Record<string, unknown> {
  return { provider, phoneNumber, isDefault, isInboundEnabled, createdAt: at, updatedAt: at }
}

/** Seeds users, organizations and claims with every kind of problem; `longAgo` is an hour before `now`. */
export async function seedViolations (db: Db, now: Date = new Date()): Promise<SeededIds> {
  const ids: SeededIds = {
    orgA: new ObjectId(),
    orgB: new ObjectId(),
    a1: new ObjectId(),
    a2: new ObjectId(),
    a3: new ObjectId(),
    b1: new ObjectId(),
    badField: new ObjectId(),
    nullField: new ObjectId(),
    noField: new ObjectId(),
    longAgo: new Date(now.getTime() - 3_600_000)
  }
  const { orgA, orgB, a1, a2, a3, b1, longAgo } = ids
  const created = new Date(now.getTime() - 86_400_000)
  const N = NUMBERS
  await db.collection('organizations').insertMany([{ _id: orgA, name: 'Acme' }, { _id: orgB, name: 'Globex' }])
  await db.collection('users').insertMany([
    {
      _id: a1,
      organizationId: orgA,
      name: 'Ada',
      phoneNumbers: [
        entry('twilio', N.clean, true, created, true),
        entry('twilio', N.twoOrganizations, true, created),
        entry('twilio', N.twoInboundRoutes, true, created),
        entry('twilio', N.transferBegun, true, created),
        // The committed transfer's target copy.
        entry('twilio', N.transferCommitted, true, longAgo)
      ]
    },
    {
      _id: a2,
      organizationId: orgA,
      name: 'Grace',
      phoneNumbers: [
        entry('twilio', N.clean, false, created, true),
        entry('sinch', N.twoInboundRoutes, true, created, true),
        entry('twilio', N.claimRouteNotBacked, false, created),
        // The begun transfer's target copy (updatedAt = the transfer's time).
        entry('twilio', N.transferBegun, true, longAgo),
        // The committed transfer's source.
        entry('twilio', N.transferCommitted, true, created)
      ]
    },
    {
      _id: a3,
      organizationId: orgA,
      name: 'Edsger',
      phoneNumbers: [
        null,
        '+14165550199',
        { provider: 'twilio', phoneNumber: N.missingIsDefault, isInboundEnabled: true, createdAt: created, updatedAt: created }
      ]
    },
    {
      _id: b1,
      organizationId: orgB,
      name: 'Linus',
      phoneNumbers: [
        entry('sinch', N.twoOrganizations, false, created, true),
        entry('twilio', N.claimOtherOrganization, true, created, true)
      ]
    },
    { _id: ids.badField, organizationId: orgB, name: 'Ken', phoneNumbers: '+14165550198' },
    { _id: ids.nullField, organizationId: orgB, name: 'Dennis', phoneNumbers: null },
    { _id: ids.noField, organizationId: orgB, name: 'Barbara' }
  ])
  const claim = (phoneNumber: string, organizationId: ObjectId, inbound: { userId: ObjectId, provider: string } | null, extra: Record<string, unknown> = {}): Record<string, unknown> =>
    ({ _id: phoneNumber, organizationId, inbound, rev: 3, writer: { id: 'crashed-step', by: 'instance-that-crashed', userIds: [], at: longAgo }, ...extra })
  await db.collection('phoneNumberClaims').insertMany([
    // Backed: not reported.
    claim(N.clean, orgA, { userId: a1, provider: 'twilio' }),
    claim(N.claimNoHolder, orgA, null),
    claim(N.claimOtherOrganization, orgA, null),
    claim(N.claimRouteNotBacked, orgA, { userId: a2, provider: 'twilio' }),
    claim(N.transferBegun, orgA, { userId: a1, provider: 'twilio' }, {
      transfer: { id: 'transfer-begun', by: 'instance-that-crashed', writerId: 'crashed-step', at: longAgo, provider: 'twilio', fromUserId: a1, toUserId: a2, committed: false }
    }),
    claim(N.transferCommitted, orgA, { userId: a1, provider: 'twilio' }, {
      transfer: { id: 'transfer-committed', by: 'instance-that-crashed', writerId: 'crashed-step', at: longAgo, provider: 'twilio', fromUserId: a2, toUserId: a1, committed: true }
    })
  ] as never[])
  return ids
}

/** A database with nothing wrong: numbers held within one organization, one route each, claims that match. */
export async function seedClean (db: Db, now: Date = new Date()): Promise<{ orgA: ObjectId, a1: ObjectId, a2: ObjectId }> {
  const orgA = new ObjectId()
  const a1 = new ObjectId()
  const a2 = new ObjectId()
  await db.collection('organizations').insertOne({ _id: orgA, name: 'Acme' })
  await db.collection('users').insertMany([
    { _id: a1, organizationId: orgA, phoneNumbers: [entry('twilio', NUMBERS.clean, true, now, true)] },
    { _id: a2, organizationId: orgA, phoneNumbers: [entry('sinch', NUMBERS.clean, false, now, true)] },
    { _id: new ObjectId(), organizationId: orgA, phoneNumbers: null },
    { _id: new ObjectId(), organizationId: orgA }
  ])
  await db.collection('phoneNumberClaims').insertOne({ _id: NUMBERS.clean, organizationId: orgA, inbound: { userId: a1, provider: 'twilio' }, rev: 1, writer: { id: 'some-step', by: 'some-instance', userIds: [a1], at: now } } as never)
  return { orgA, a1, a2 }
}
