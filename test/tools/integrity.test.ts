import t from 'tap'
import { spawn } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { BSON, ObjectId, type Db, type Document } from 'mongodb'
import { checkIntegrity, entryProblem, type IntegrityReport } from '../../tools/integrity/index.js'
import { createPhoneNumberStore } from '../../src/domain/store.js'
import { createTestDatabase, uriForDatabase } from '../helper-database.js'
import { NUMBERS as N, seedClean, seedViolations, type SeededIds } from './integrity-seed.js'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const hex = (id: ObjectId): string => id.toHexString()
const HOUR = 3_600_000

// The CLI tests start a tsx child process per run.
t.setTimeout(240_000)

/** Every document of a collection as stored, by _id: byte-for-byte comparisons. */
async function snapshot (db: Db, collection: string): Promise<Map<string, Buffer>> {
  const documents = await db.collection(collection).find({}).toArray()
  return new Map(documents.map((document) => [String(document._id), Buffer.from(BSON.serialize(document))]))
}

/** What the seeded database must report in user documents (repairs never change these). */
function expectedUserViolations (ids: SeededIds): Pick<IntegrityReport, 'numbersInTwoOrganizations' | 'doubleInboundRoutes' | 'malformedEntries' | 'malformedFields'> {
  return {
    numbersInTwoOrganizations: [{
      phoneNumber: N.twoOrganizations,
      holders: [
        { userId: hex(ids.a1), organizationId: hex(ids.orgA), provider: 'twilio', isInboundEnabled: true },
        { userId: hex(ids.b1), organizationId: hex(ids.orgB), provider: 'sinch', isInboundEnabled: false }
      ]
    }],
    doubleInboundRoutes: [{
      phoneNumber: N.twoInboundRoutes,
      holders: [
        { userId: hex(ids.a1), organizationId: hex(ids.orgA), provider: 'twilio', isInboundEnabled: true },
        { userId: hex(ids.a2), organizationId: hex(ids.orgA), provider: 'sinch', isInboundEnabled: true }
      ]
    }],
    malformedEntries: [
      { userId: hex(ids.a3), index: 0, reason: 'null entry' },
      { userId: hex(ids.a3), index: 1, reason: 'a string, not an object' },
      { userId: hex(ids.a3), index: 2, reason: 'isDefault is missing' }
    ],
    malformedFields: [{ userId: hex(ids.badField), type: 'string', reason: 'phoneNumbers is a string, not an array' }]
  }
}

function userViolations (report: IntegrityReport): ReturnType<typeof expectedUserViolations> {
  const { numbersInTwoOrganizations, doubleInboundRoutes, malformedEntries, malformedFields } = report
  return { numbersInTwoOrganizations, doubleInboundRoutes, malformedEntries, malformedFields }
}

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

// The CLI, as a child process.

interface CliRun { code: number | null, stdout: string, stderr: string }

const CLI_VARIABLES = ['MONGODB_URI', 'MONGODB_DATABASE', 'USERS_COLLECTION', 'ORGANIZATIONS_COLLECTION', 'PHONE_NUMBERS_FIELD', 'CLAIMS_COLLECTION', 'IN_FLIGHT_GRACE_MS']

async function runCli (args: string[], env: Record<string, string>): Promise<CliRun> {
  const childEnv: NodeJS.ProcessEnv = { ...process.env }
  for (const name of CLI_VARIABLES) delete childEnv[name]
  Object.assign(childEnv, env)
  const child = spawn('npx', ['tsx', 'tools/check-integrity.ts', ...args], { cwd: root, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString('utf8') })
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString('utf8') })
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject)
    child.once('close', (exitCode) => resolve(exitCode))
  })
  return { code, stdout, stderr }
}

t.test('CLI on a seeded database: exit 1 and every section; --json parses; --repair says what it did', async (t) => {
  const { db, uri } = await createTestDatabase(t)
  const ids = await seedViolations(db)
  const claimsBefore = await snapshot(db, 'phoneNumberClaims')

  const human = await runCli([], { MONGODB_URI: uri })
  t.equal(human.code, 1, human.stderr)
  for (const line of [
    'Numbers held in two organizations: 1',
    'Numbers with more than one inbound route: 1',
    'Malformed entries: 3',
    'Malformed phoneNumbers fields: 1',
    'Stale claims: 5',
    `  ${N.twoOrganizations}: user ${hex(ids.a1)} (org ${hex(ids.orgA)}, twilio, inbound); user ${hex(ids.b1)} (org ${hex(ids.orgB)}, sinch)`,
    `  user ${hex(ids.a3)} phoneNumbers[2]: isDefault is missing`,
    `  user ${hex(ids.badField)}: phoneNumbers is a string, not an array`,
    `  ${N.claimNoHolder}: no user holds it (claim of org ${hex(ids.orgA)}, last step 60 min ago by instance-that-crashed)`,
    'FOUND 11 problems: 1 number in two organizations, 1 number with two inbound routes, 3 malformed entries, 1 malformed field, 5 stale claims.'
  ]) {
    t.ok(human.stdout.split('\n').includes(line), `prints ${JSON.stringify(line)}`)
  }
  t.notMatch(human.stdout, /Repairs:/, 'no repair section without --repair')
  t.same(await snapshot(db, 'phoneNumberClaims'), claimsBefore, 'the check alone changed no claim')

  const json = await runCli(['--json'], { MONGODB_URI: uri })
  t.equal(json.code, 1, json.stderr)
  const parsed = JSON.parse(json.stdout) as IntegrityReport
  t.equal(parsed.ok, false)
  t.same(userViolations(parsed), expectedUserViolations(ids))
  t.same(parsed.staleClaims.map((claim) => [claim.phoneNumber, claim.reasons]), [
    [N.claimOtherOrganization, ['other-organization']],
    [N.claimRouteNotBacked, ['route-not-backed']],
    [N.transferBegun, ['pending-transfer']],
    [N.transferCommitted, ['pending-transfer']],
    [N.claimNoHolder, ['no-holder']]
  ])

  const repair = await runCli(['--repair'], { MONGODB_URI: uri })
  t.equal(repair.code, 1, 'the user-document problems remain')
  for (const line of [
    'Repairs: 5',
    `  ${N.claimRouteNotBacked}: transfer none, claim route-cleared (fixed)`,
    `  ${N.transferBegun}: transfer rolled-back, claim kept (fixed)`,
    `  ${N.transferCommitted}: transfer rolled-forward, claim kept (fixed)`,
    `  ${N.claimNoHolder}: transfer none, claim released (fixed)`,
    'The problems in user documents above were left as they are: which holder keeps a number is a business decision.'
  ]) {
    t.ok(repair.stdout.split('\n').includes(line), `prints ${JSON.stringify(line)}`)
  }
  t.match(repair.stdout, /^Repair: \d of 5 stale claims fixed\. User documents were changed only to finish or undo 2 unfinished transfers: each lost the extra copy of the number the transfer had left\.$/m)
  t.equal(await db.collection<Document>('phoneNumberClaims').findOne({ _id: N.claimNoHolder } as Document), null, 'the repair reached the database')
  t.equal((await db.collection<Document>('phoneNumberClaims').findOne({ _id: N.claimRouteNotBacked } as Document))?.['inbound'], null)
})

t.test('CLI on a clean database: exit 0; the database comes from MONGODB_DATABASE when the URI names none', async (t) => {
  const { db, uri, dbName } = await createTestDatabase(t)
  await seedClean(db)
  const clean = await runCli([], { MONGODB_URI: uri })
  t.equal(clean.code, 0, clean.stderr)
  t.match(clean.stdout, /^OK: no problems found\.$/m)
  t.match(clean.stdout, /^Stale claims: 0$/m)

  const serverOnly = uriForDatabase('', uri)
  const named = await runCli(['--json'], { MONGODB_URI: serverOnly, MONGODB_DATABASE: dbName })
  t.equal(named.code, 0, named.stderr)
  const parsed = JSON.parse(named.stdout) as IntegrityReport
  t.equal(parsed.database, dbName)
  t.same(parsed.scanned, { users: 3, numbers: 1, claims: 1 }, 'it read the seeded database')
})

t.test('CLI honours the collection and field variables', async (t) => {
  const { db, uri } = await createTestDatabase(t)
  const orgA = new ObjectId()
  await db.collection('people').insertOne({ _id: new ObjectId(), organizationId: orgA, numbers: [null] })
  await db.collection('users').insertOne({ _id: new ObjectId(), organizationId: orgA, phoneNumbers: 'not read' })
  const run = await runCli(['--json'], { MONGODB_URI: uri, USERS_COLLECTION: 'people', PHONE_NUMBERS_FIELD: 'numbers', CLAIMS_COLLECTION: 'numberClaims', IN_FLIGHT_GRACE_MS: '1000' })
  t.equal(run.code, 1, run.stderr)
  const parsed = JSON.parse(run.stdout) as IntegrityReport
  t.same([parsed.usersCollection, parsed.phoneNumbersField, parsed.claimsCollection, parsed.inFlightGraceMs], ['people', 'numbers', 'numberClaims', 1000])
  t.same(parsed.malformedEntries.map((m) => [m.index, m.reason]), [[0, 'null entry']])
  t.same(parsed.malformedFields, [])
})

t.test('CLI usage and connection errors exit 2', async (t) => {
  const { uri } = await createTestDatabase(t)
  const [missing, unknown, badLease, unreachable] = await Promise.all([
    runCli([], {}),
    runCli(['--fix'], { MONGODB_URI: uri }),
    runCli([], { MONGODB_URI: uri, IN_FLIGHT_GRACE_MS: 'soon' }),
    runCli([], { MONGODB_URI: 'mongodb://127.0.0.1:1/tether' })
  ])
  t.equal(missing.code, 2)
  t.match(missing.stderr, /MONGODB_URI is required/)
  t.equal(missing.stdout, '')
  t.equal(unknown.code, 2)
  t.match(unknown.stderr, /unknown argument "--fix"/)
  t.equal(badLease.code, 2)
  t.match(badLease.stderr, /IN_FLIGHT_GRACE_MS=soon/)
  t.equal(unreachable.code, 2)
  t.match(unreachable.stderr, /cannot connect to MONGODB_URI/)
})
