/**
 * Number ownership across processes: THREE standalone servers on one
 * mongo-java-server database (same JWT secret, the default in-flight grace),
 * three organizations of ten users.
 *
 * 1. First claims: OWNERSHIP_FRESH_NUMBERS (default 30) numbers nobody holds,
 *    each assigned by nine requests at once, spread over the servers and the
 *    organizations.
 * 2. Load: OWNERSHIP_CONNECTIONS (default 24) keep-alive workers send, for
 *    OWNERSHIP_SECONDS (default 20), a mix of assign (mostly in the
 *    organization that last won the number, else a random one; random user,
 *    provider and isInboundEnabled), remove, transfer between two users of one
 *    organization and inbound-route lookups, all on OWNERSHIP_NUMBERS (default
 *    20) hot numbers; a third of the connections go to each server, so every
 *    number is written by all three at once.
 * Every request and answer is recorded (.cache/reliability/ownership/requests.ndjson).
 *
 * Checks, from the users collection at the end (read directly: the truth)
 * and from the answers:
 * - 0 numbers held by users of two organizations (rule 1), 0 numbers with
 *   two inbound entries (rule 2), at the end;
 * - 0 lookups answering 409 "Ambiguous inbound route" or 5xx during the run;
 *   a lookup's 200 must name an assignment some inbound write created;
 * - 0 lost updates: the final entry of every (user, provider, number) is
 *   what one of its possibly-last operations left, given only what the
 *   request times prove about their order;
 * - history, from the answers and their times (each check can miss a
 *   violation, never invent one): no moment where a number was provably in
 *   two organizations or routed twice, no entry removed or moved away twice
 *   without a write between, no 404 for an entry that provably existed, no
 *   lookup contradicted by a route that provably existed throughout it;
 * - 0 5xx, 0 requests without an answer, no answer outside the contract;
 * - once the load stops, every server's lookup of every number agrees with
 *   the users collection.
 *
 * mongo-java-server only: FerretDB 1.24's updates are not atomic across
 * connections, so several server processes on one FerretDB are unsupported.
 *
 * The load's requests are in ownership-load.ts, the checks in ownership-checks.ts.
 *
 *   npx tsx scripts/reliability/ownership.ts
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ObjectId, type Db } from 'mongodb'
import { mintToken } from '../../tools/tokens.js'
import { startMongo } from '../../dev-database/index.js'
import { uriForDatabase } from '../../test/helper-database.js'
import { exited } from './children.js'
import { withDb } from './consistency.js'
import { call } from './http-client.js'
import {
  checkAnswers,
  checkFinalState,
  checkHistory,
  checkLookupAnswers,
  claimFiguresOf,
  keyOperations,
  lostUpdatesOf,
  numbersThatChangedOrganization,
  successRatesOf,
  type Stored
} from './ownership-checks.js'
import { ownershipLoad, type Organization } from './ownership-load.js'
import { envNumber, finish, log, percentile } from './report.js'
import { JWT_SECRET, startServer, type ServerProcess } from './server-process.js'

const seconds = envNumber('OWNERSHIP_SECONDS', 20)
const connections = envNumber('OWNERSHIP_CONNECTIONS', 24)
const organizationCount = envNumber('OWNERSHIP_ORGANIZATIONS', 3)
const usersPerOrganization = envNumber('OWNERSHIP_USERS', 10)
const numberCount = envNumber('OWNERSHIP_NUMBERS', 20)
const serverCount = 3
// Hard bound on the whole script: whatever hangs, it fails (and its children are killed) by then.
const timeoutS = envNumber('OWNERSHIP_TIMEOUT_S', seconds + 100)
setTimeout(() => {
  log(`FAIL ownership: still running after ${timeoutS} s (OWNERSHIP_TIMEOUT_S)`)
  process.exit(1)
}, timeoutS * 1000).unref()

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const RECORD = join(ROOT, '.cache', 'reliability', 'ownership', 'requests.ndjson')

// --- the database, the organizations and the three servers -------------------------------
const mongo = await startMongo({ backend: 'java', log: (line) => log(`[java] ${line}`) })
const uri = uriForDatabase('ownership', mongo.uri)
const organizations: Organization[] = []
const organizationOf = new Map<string, string>()
const adminId = new ObjectId()
await withDb(uri, async (db) => {
  const users: Array<Record<string, unknown>> = []
  for (let o = 0; o < organizationCount; o++) {
    const organizationId = new ObjectId()
    await db.collection('organizations').insertOne({ _id: organizationId, name: `Ownership ${o}` })
    const members = Array.from({ length: usersPerOrganization }, (_, i) => ({ _id: new ObjectId(), organizationId, name: `org ${o} user ${i}`, role: 'AGENT' }))
    users.push(...members)
    organizations.push({ id: organizationId.toHexString(), userIds: members.map((user) => user._id.toHexString()) })
    for (const member of members) organizationOf.set(member._id.toHexString(), organizationId.toHexString())
  }
  users.push({ _id: adminId, organizationId: new ObjectId(organizations[0]!.id), name: 'root', role: 'SUPERADMIN' })
  await db.collection('users').insertMany(users)
})
const token = await mintToken(JWT_SECRET, { sub: adminId.toHexString(), role: 'SUPERADMIN' }, '2h')
const authorization = `Bearer ${token}`
const numbers = Array.from({ length: numberCount }, (_, i) => `+1416555${String(100 + i).padStart(4, '0')}`)

const servers: ServerProcess[] = await Promise.all(Array.from({ length: serverCount }, async () =>
  // Route cache off: its lookups may trail another process by up to 1.5 s by design (its own test
  // checks that bound), and this run judges every lookup against the writes' times exactly.
  // Load shedding off (0): this run judges ownership under contention, not capacity; on a busy
  // 2-core machine the first-claims burst otherwise trips the 1 s event-loop-delay limit (503).
  await startServer({ MONGODB_URI: uri, JWT_SECRET, LOG_LEVEL: 'warn', MAX_EVENT_LOOP_DELAY_MS: '0', ROUTE_CACHE: 'false' })))
log(`ownership: ${serverCount} servers (pids ${servers.map((s) => s.pid).join(', ')}) on mongo-java-server at ${mongo.uri}, ` +
  `${organizationCount} organizations x ${usersPerOrganization} users, ${numberCount} hot numbers, ${connections} connections, ${seconds} s`)

// --- the load (ownership-load.ts) ----------------------------------------------------------
const load = ownershipLoad({ servers, authorization, organizations, organizationOf, numbers })
const samples = load.samples
const freshNumbers = Array.from({ length: envNumber('OWNERSHIP_FRESH_NUMBERS', 30) }, (_, i) => `+1416557${String(i).padStart(4, '0')}`)
await load.firstClaims(freshNumbers)
const freshWinners = freshNumbers.map((phoneNumber) => new Set(samples.filter((s) => s.phoneNumber === phoneNumber && s.status === 200).map((s) => s.organizationId)).size)
log(`first claims: ${freshNumbers.length} fresh numbers x 9 concurrent assigns, ${samples.filter((s) => s.status === 200).length} succeeded`)
const started = performance.now()

await load.run(connections, started, seconds)
const loadSeconds = (performance.now() - started) / 1000
log(`load done: ${samples.length} requests in ${loadSeconds.toFixed(1)} s`)

// --- the final state, read straight from the users collection ---------------------------
async function readStored (db: Db): Promise<Stored[]> {
  const stored: Stored[] = []
  for (const user of await db.collection('users').find({}).toArray()) {
    const list: unknown = user['phoneNumbers']
    if (!Array.isArray(list)) continue
    for (const entry of list as Array<Record<string, unknown> | null>) {
      if (typeof entry !== 'object' || entry === null) continue
      stored.push({
        userId: String(user._id),
        organizationId: String(user['organizationId']),
        provider: String(entry['provider']),
        phoneNumber: String(entry['phoneNumber']),
        isInboundEnabled: entry['isInboundEnabled'] === true,
        isDefault: entry['isDefault'] === true,
        label: typeof entry['label'] === 'string' ? entry['label'] : undefined
      })
    }
  }
  return stored
}

// --- the checks (ownership-checks.ts), in this order -----------------------------------------
const { stored, claims } = await withDb(uri, async (db) => ({
  stored: await readStored(db),
  claims: await db.collection('phoneNumberClaims').find({}).toArray()
}))

const problems: string[] = []
const { byNumber, numbersInTwoOrganizations, numbersWithTwoInboundEntries } = checkFinalState(stored, problems)
const { byOperation, refusedInFlight, unexpected, fiveXx, noAnswer, lookups, ambiguousLookups, lookupFiveXx } = checkAnswers(samples, problems)
const opsByKey = keyOperations(samples)
const lostUpdates = lostUpdatesOf(opsByKey, stored)
const {
  presence, inboundWindows, twoOrganizationsDuringRun, twoRoutesDuringRun, notFoundWhilePresent, lookupsContradicted, removedTwice, removedUnwritten
} = checkHistory(opsByKey, samples, lookups, organizationOf, problems)
const changedOrganization = numbersThatChangedOrganization(samples)
const lookupsChecked = checkLookupAnswers(lookups, opsByKey, organizationOf, problems)

// --- quiet: every server's lookup of every hot number agrees with the users -------------
let finalLookups = 0
for (const phoneNumber of [...numbers, ...freshNumbers]) {
  const inbound = (byNumber.get(phoneNumber) ?? []).filter((entry) => entry.isInboundEnabled)
  for (const server of servers) {
    const answer = await call(server.base, 'GET', `/api/phone-numbers/${encodeURIComponent(phoneNumber)}/inbound-route`, { headers: { authorization } })
    finalLookups++
    const body = answer.body as { userId?: string, provider?: string }
    const holder = inbound[0]
    const agrees = holder === undefined
      ? answer.status === 404
      : inbound.length === 1 && answer.status === 200 && body.userId === holder.userId && body.provider === holder.provider
    if (!agrees) problems.push(`after the load, lookup of ${phoneNumber} on server ${servers.indexOf(server)} answered ${answer.status} ${JSON.stringify(answer.body)}; the users hold ${inbound.length === 0 ? 'no inbound entry' : inbound.map((e) => `${e.userId} (${e.provider})`).join(', ')}`)
  }
}

// Claims are bookkeeping (a stale one is repaired on the next access): reported, not judged.
const claimFigures = claimFiguresOf(claims, byNumber)

await mkdir(dirname(RECORD), { recursive: true })
await writeFile(RECORD, samples.map((s) => JSON.stringify(s)).join('\n') + '\n')

for (const server of servers) server.child.kill('SIGTERM')
const exits = await Promise.all(servers.map(async (server) => await exited(server.child)))
await mongo.stop()

if (fiveXx > 0) problems.push(`${fiveXx} responses with 5xx`)
for (const [i, winners] of freshWinners.entries()) if (winners > 1) problems.push(`first claim of ${freshNumbers[i]!}: assigns of ${winners} organizations answered 200`)
if (noAnswer > 0) problems.push(`${noAnswer} requests without an HTTP answer`)
if (ambiguousLookups > 0) problems.push(`${ambiguousLookups} lookups answered 409 Ambiguous inbound route during the run`)
problems.push(...lostUpdates.slice(0, 10).map((d) => `lost update: ${d}`))
for (const [i, { code }] of exits.entries()) if (code !== 0) problems.push(`server ${i} exited with ${String(code)}`)
const successfulWrites = samples.filter((s) => s.op !== 'lookup' && s.status === 200).length
if (successfulWrites < samples.length / 10) problems.push(`only ${successfulWrites} successful writes: the run exercised too little`)
for (const op of ['assign', 'remove', 'transfer', 'lookup'] as const) {
  if (!samples.some((s) => s.op === op && s.status === 200)) problems.push(`no ${op} succeeded: the run proves little about it`)
}
const latencies = samples.map((s) => s.end - s.start)
const successRates = successRatesOf(samples)
if ((successRates.transfer.ofAllowed ?? 0) < 1 / 3) problems.push(`only ${String(successRates.transfer.ofAllowed)} of the transfers the rules allowed succeeded (at least a third must)`)
if (refusedInFlight > 0) problems.push(`${refusedInFlight} writes refused on the claim alone ("right now"): the users must decide, never a claim`)
const perServer = servers.map((_, i) => samples.filter((s) => s.server === i).length)

finish('ownership', {
  backend: 'java',
  servers: serverCount,
  seconds: +loadSeconds.toFixed(1),
  connections,
  organizations: organizationCount,
  usersPerOrganization,
  hotNumbers: numberCount,
  firstClaims: { numbers: freshNumbers.length, assigns: freshNumbers.length * 9, succeeded: samples.filter((s) => s.id.startsWith('fresh-') && s.status === 200).length, organizationsWinningOneNumber: Math.max(0, ...freshWinners) },
  requests: samples.length,
  requestsPerServer: perServer,
  byOperation,
  successRates,
  refusedInFlight,
  latencyMs: { p50: Math.round(percentile(latencies, 50)), p99: Math.round(percentile(latencies, 99)), max: Math.round(Math.max(0, ...latencies)) },
  numbersInTwoOrganizations,
  numbersWithTwoInboundEntries,
  ambiguousLookups,
  lookupFiveXx,
  lostUpdates: lostUpdates.length,
  // From the answers and their times alone; each can miss a violation but never invent one.
  history: {
    twoOrganizations: twoOrganizationsDuringRun,
    twoInboundRoutes: twoRoutesDuringRun,
    removedTwice,
    removedUnwritten,
    notFoundWhilePresent,
    lookupsContradicted,
    presenceWindows: [...presence.values()].reduce((n, w) => n + w.length, 0),
    inboundWindows: [...inboundWindows.values()].reduce((n, w) => n + w.length, 0)
  },
  numbersThatChangedOrganization: changedOrganization,
  fiveXx,
  noAnswer,
  unexpectedAnswers: [...unexpected.values()].reduce((a, b) => a + b, 0),
  keysJudged: opsByKey.size,
  lookupsChecked: { duringRun: lookups.length, routedAndVerified: lookupsChecked, afterRun: finalLookups },
  finalState: { entries: stored.length, numbersHeld: byNumber.size, inboundRoutes: stored.filter((e) => e.isInboundEnabled).length },
  claims: claimFigures
}, problems)
