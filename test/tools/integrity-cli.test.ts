/** The integrity check's CLI (tools/check-integrity.ts), as a child process. */
import t from 'tap'
import { spawn } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ObjectId, type Document } from 'mongodb'
import type { IntegrityReport } from '../../tools/integrity/index.js'
import { createTestDatabase, uriForDatabase } from '../helper-database.js'
import { NUMBERS as N, seedClean, seedViolations } from './integrity-seed.js'
import { expectedUserViolations, hex, snapshot, userViolations } from './integrity-helper.js'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')

// The CLI tests start a tsx child process per run.
t.setTimeout(240_000)

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
