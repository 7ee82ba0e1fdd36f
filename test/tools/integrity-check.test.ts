/** The integrity check (tools/integrity): what it reports, on a seeded and a clean database, and under other collection names. */
import t from 'tap'
import { ObjectId } from 'mongodb'
import { checkIntegrity, entryProblem } from '../../tools/integrity/index.js'
import { createTestDatabase } from '../helper-database.js'
import { NUMBERS as N, seedClean, seedViolations } from './integrity-seed.js'
import { expectedUserViolations, hex, snapshot, userViolations } from './integrity-helper.js'

const HOUR = 3_600_000

// The timeout of the CLI tests (integrity-cli.test.ts), which these shared one file with.
t.setTimeout(240_000)

t.test('entryProblem names what is wrong with an entry in a few words', async (t) => {
  const at = new Date()
  const good = { provider: 'twilio', phoneNumber: '+14165550100', isDefault: true, isInboundEnabled: true, createdAt: at, updatedAt: at }
  t.equal(entryProblem(good), undefined)
  t.equal(entryProblem({ ...good, label: 'Main' }), undefined)
  t.equal(entryProblem(null), 'null entry')
  t.equal(entryProblem(42), 'a number, not an object')
  t.equal(entryProblem([good]), 'an array, not an object')
  t.equal(entryProblem({ ...good, provider: 'skype' }), 'provider "skype" is not one of twilio, sinch, textgrid')
  t.equal(entryProblem({ ...good, isInboundEnabled: 'yes', label: 7 }), 'isInboundEnabled is a string, not a boolean; label is a number, not a string')
  t.equal(entryProblem({ ...good, createdAt: '2024-01-01', updatedAt: new Date(Number.NaN) }), 'createdAt is a string, not a date; updatedAt is an invalid date')
  t.equal(entryProblem({}), 'phoneNumber is missing; provider is missing; isDefault is missing; isInboundEnabled is missing; createdAt is missing; updatedAt is missing')
})

t.test('each kind of problem is reported exactly, and a check without repair writes nothing', async (t) => {
  const { db } = await createTestDatabase(t)
  const now = new Date()
  const ids = await seedViolations(db, now)
  const usersBefore = await snapshot(db, 'users')
  const claimsBefore = await snapshot(db, 'phoneNumberClaims')

  const report = await checkIntegrity(db, { now })
  t.equal(report.ok, false)
  t.same(userViolations(report), expectedUserViolations(ids))
  t.same(report.scanned, { users: 6, numbers: 8, claims: 6 }, 'users with the field (null included), numbers held, claims')
  t.same(report.staleClaims.map((claim) => [claim.phoneNumber, claim.reasons]), [
    [N.claimOtherOrganization, ['other-organization']],
    [N.claimRouteNotBacked, ['route-not-backed']],
    [N.transferBegun, ['pending-transfer']],
    [N.transferCommitted, ['pending-transfer']],
    [N.claimNoHolder, ['no-holder']]
  ], 'the clean number\'s claim is not reported; each stale one with its reason')
  const longAgo = ids.longAgo.toISOString()
  const common = { writtenBy: 'instance-that-crashed', writtenAt: longAgo, ageMs: HOUR, inFlight: false }
  t.same(report.staleClaims.find((claim) => claim.phoneNumber === N.claimOtherOrganization), {
    phoneNumber: N.claimOtherOrganization,
    reasons: ['other-organization'],
    organizationId: hex(ids.orgA),
    inbound: null,
    holders: [{ userId: hex(ids.b1), organizationId: hex(ids.orgB), provider: 'twilio', isInboundEnabled: true }],
    ...common
  })
  t.same(report.staleClaims.find((claim) => claim.phoneNumber === N.claimRouteNotBacked), {
    phoneNumber: N.claimRouteNotBacked,
    reasons: ['route-not-backed'],
    organizationId: hex(ids.orgA),
    inbound: { userId: hex(ids.a2), provider: 'twilio' },
    holders: [{ userId: hex(ids.a2), organizationId: hex(ids.orgA), provider: 'twilio', isInboundEnabled: false }],
    ...common
  })
  t.same(report.staleClaims.find((claim) => claim.phoneNumber === N.claimNoHolder), {
    phoneNumber: N.claimNoHolder, reasons: ['no-holder'], organizationId: hex(ids.orgA), inbound: null, holders: [], ...common
  })
  t.same(report.staleClaims.find((claim) => claim.phoneNumber === N.transferBegun)?.transfer, {
    provider: 'twilio', fromUserId: hex(ids.a1), toUserId: hex(ids.a2), committed: false, by: 'instance-that-crashed', at: longAgo, ageMs: HOUR
  }, 'the pending transfer with its age')
  t.same(report.staleClaims.find((claim) => claim.phoneNumber === N.transferCommitted)?.transfer, {
    provider: 'twilio', fromUserId: hex(ids.a2), toUserId: hex(ids.a1), committed: true, by: 'instance-that-crashed', at: longAgo, ageMs: HOUR
  })
  t.notOk(report.doubleInboundRoutes.some((v) => v.phoneNumber === N.transferBegun || v.phoneNumber === N.transferCommitted),
    'a transfer\'s source and target routing it are the stale transfer, not a second route')
  t.same(report.repairs, [])
  t.equal(report.repaired, false)

  t.same(await snapshot(db, 'users'), usersBefore, 'users unchanged')
  t.same(await snapshot(db, 'phoneNumberClaims'), claimsBefore, 'claims unchanged')
})

t.test('a clean database reports ok', async (t) => {
  const { db } = await createTestDatabase(t)
  await seedClean(db)
  const report = await checkIntegrity(db)
  t.equal(report.ok, true)
  t.same({ ...userViolations(report), staleClaims: report.staleClaims, repairs: report.repairs }, {
    numbersInTwoOrganizations: [], doubleInboundRoutes: [], malformedEntries: [], malformedFields: [], staleClaims: [], repairs: []
  })
  t.same(report.scanned, { users: 3, numbers: 1, claims: 1 })

  const repaired = await checkIntegrity(db, { repair: true })
  t.equal(repaired.ok, true)
  t.same(repaired.repairs, [], 'nothing to repair')
})

t.test('collection and field names are options', async (t) => {
  const { db } = await createTestDatabase(t)
  const orgA = new ObjectId()
  const orgB = new ObjectId()
  const a1 = new ObjectId()
  const b1 = new ObjectId()
  const at = new Date()
  const entry = { provider: 'textgrid', phoneNumber: N.twoOrganizations, isDefault: true, isInboundEnabled: false, createdAt: at, updatedAt: at }
  await db.collection('people').insertMany([
    { _id: a1, organizationId: orgA, numbers: [entry] },
    { _id: b1, organizationId: orgB, numbers: [entry], phoneNumbers: 'ignored: not the configured field' }
  ])
  await db.collection('numberClaims').insertOne({ _id: N.claimNoHolder, organizationId: orgA, inbound: null, rev: 1, touchedAt: new Date(0), touchedBy: 'x' } as never)
  // The default collections hold nothing wrong: they are not read.
  await db.collection('users').insertOne({ _id: new ObjectId(), organizationId: orgA, phoneNumbers: 'bad' })

  const options = { usersCollection: 'people', phoneNumbersField: 'numbers', claimsCollection: 'numberClaims', organizationsCollection: 'orgs' }
  const report = await checkIntegrity(db, options)
  t.same(report.numbersInTwoOrganizations.map((v) => v.phoneNumber), [N.twoOrganizations])
  t.same(report.malformedFields, [])
  t.same(report.staleClaims.map((claim) => claim.phoneNumber), [N.claimNoHolder])
  const repaired = await checkIntegrity(db, { ...options, repair: true })
  t.same(repaired.repairs, [{ phoneNumber: N.claimNoHolder, transfer: 'none', claim: 'released', fixed: true }], 'the store it creates uses the same names')
  t.equal(await db.collection('numberClaims').countDocuments(), 0)
})
