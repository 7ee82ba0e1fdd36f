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
 *   npx tsx scripts/reliability/ownership.ts
 */
import { mkdir, writeFile } from 'node:fs/promises'
import type http from 'node:http'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ObjectId, type Db } from 'mongodb'
import { PROVIDERS, type Provider } from '../../src/domain/assignments.js'
import { mintToken } from '../../tools/tokens.js'
import { startMongo } from '../../dev-database/index.js'
import { uriForDatabase } from '../../test/helper-database.js'
import { exited } from './children.js'
import { withDb } from './consistency.js'
import { RequestFailure, call, newAgent } from './http-client.js'
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

type Op = 'assign' | 'remove' | 'transfer' | 'lookup'

/** One request and its answer. Times are performance.now() of this script, ms. */
interface Sample {
  id: string
  op: Op
  server: number
  start: number
  end: number
  status: number
  /** No HTTP answer (connection refused, reset, timeout). */
  failure?: string
  /** The `error` title of an error answer. */
  error?: string
  body: unknown
  organizationId: string
  phoneNumber: string
  provider?: Provider
  /** assign and remove: the user; transfer: the source. */
  userId?: string
  toUserId?: string
  isInboundEnabled?: boolean
  isDefault?: boolean
  label?: string
}

const rand = (n: number): number => Math.floor(Math.random() * n)
const pickOne = <T>(list: readonly T[]): T => list[rand(list.length)]!
const keyOf = (userId: string, provider: string, phoneNumber: string): string => `${userId}|${provider}|${phoneNumber}`

// --- the database, the organizations and the three servers -------------------------------
const mongo = await startMongo({ backend: 'java', log: (line) => log(`[java] ${line}`) })
const uri = uriForDatabase('ownership', mongo.uri)
const organizations: Array<{ id: string, userIds: string[] }> = []
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

// --- the load ----------------------------------------------------------------------------
/** What the driver believes is held, from the answers: only to aim removes and transfers at real entries. */
const believed = new Map<string, { userId: string, provider: Provider, phoneNumber: string }>()
/** The organization that last assigned each number, from the answers: most assigns go there, the rest try another organization. */
const believedOwner = new Map<string, string>()
const samples: Sample[] = []
let counter = 0

async function send (agent: http.Agent | false, sample: Sample, method: string, path: string, body?: unknown): Promise<void> {
  sample.start = performance.now()
  try {
    const answer = await call(servers[sample.server]!.base, method, path, {
      agent,
      headers: { authorization, 'x-request-id': sample.id },
      ...(body === undefined ? {} : { body })
    })
    sample.status = answer.status
    sample.body = answer.body
    const error = (answer.body as { error?: unknown } | null)?.error
    if (typeof error === 'string') sample.error = error
  } catch (error) {
    sample.failure = error instanceof RequestFailure ? error.code : String(error)
  }
  sample.end = performance.now()
}

async function sendAssign (agent: http.Agent | false, sample: Sample): Promise<void> {
  await send(agent, sample, 'POST', `/api/organizations/${sample.organizationId}/phone-numbers`, {
    targetUserId: sample.userId,
    provider: sample.provider,
    phoneNumber: sample.phoneNumber,
    isDefault: sample.isDefault,
    isInboundEnabled: sample.isInboundEnabled,
    ...(sample.label === undefined ? {} : { label: sample.label })
  })
}

/**
 * The first claim of a number: OWNERSHIP_FRESH_NUMBERS (default 30) numbers
 * nobody holds, each assigned by nine requests at once, three per server and
 * three per organization (random users, providers and isInboundEnabled), on
 * fresh connections. Rule 1 lets one organization win; rule 2 one inbound route.
 */
const freshNumbers = Array.from({ length: envNumber('OWNERSHIP_FRESH_NUMBERS', 30) }, (_, i) => `+1416557${String(i).padStart(4, '0')}`)
for (let batch = 0; batch < freshNumbers.length; batch += 5) {
  await Promise.all(freshNumbers.slice(batch, batch + 5).flatMap((phoneNumber) => Array.from({ length: 9 }, async (_, j) => {
    const organization = organizations[Math.floor(j / 3) % organizations.length]!
    const sample: Sample = {
      id: `fresh-${counter++}`,
      op: 'assign',
      server: j % serverCount,
      start: 0,
      end: 0,
      status: 0,
      body: undefined,
      organizationId: organization.id,
      phoneNumber,
      userId: pickOne(organization.userIds),
      provider: pickOne(PROVIDERS),
      isInboundEnabled: Math.random() < 0.5,
      isDefault: false
    }
    await sendAssign(false, sample)
    samples.push(sample)
  })))
}
const freshWinners = freshNumbers.map((phoneNumber) => new Set(samples.filter((s) => s.phoneNumber === phoneNumber && s.status === 200).map((s) => s.organizationId)).size)
log(`first claims: ${freshNumbers.length} fresh numbers x 9 concurrent assigns, ${samples.filter((s) => s.status === 200).length} succeeded`)
const started = performance.now()

/**
 * One keep-alive connection to one server, used back to back: a connection left idle past
 * the server's keep-alive timeout (5 s) can be closed just as a request is sent on it (a
 * client-side ECONNRESET), so a worker does not spread its requests over three idle sockets.
 */
async function worker (index: number): Promise<void> {
  const agent = newAgent()
  const server = index % serverCount
  while (performance.now() - started < seconds * 1000) {
    const roll = Math.random()
    const op: Op = roll < 0.4 ? 'assign' : roll < 0.55 ? 'remove' : roll < 0.72 ? 'transfer' : 'lookup'
    const sample: Sample = { id: `own-${index}-${counter++}`, op, server, start: 0, end: 0, status: 0, body: undefined, organizationId: '', phoneNumber: pickOne(numbers) }
    // Removes and transfers mostly aim at an entry believed held, else at a random one (mostly a 404).
    const held = [...believed.values()]
    const target = (op === 'remove' || op === 'transfer') && held.length > 0 && Math.random() < 0.85 ? pickOne(held) : undefined
    if (op === 'lookup') {
      const withProvider = Math.random() < 0.3
      if (withProvider) sample.provider = pickOne(PROVIDERS)
      await send(agent, sample, 'GET', `/api/phone-numbers/${encodeURIComponent(sample.phoneNumber)}/inbound-route${withProvider ? `?provider=${sample.provider!}` : ''}`)
    } else if (op === 'assign') {
      const owner = believedOwner.get(sample.phoneNumber)
      const organization = owner !== undefined && Math.random() < 0.75 ? organizations.find((o) => o.id === owner)! : pickOne(organizations)
      sample.organizationId = organization.id
      sample.userId = pickOne(organization.userIds)
      sample.provider = pickOne(PROVIDERS)
      sample.isInboundEnabled = Math.random() < 0.5
      sample.isDefault = Math.random() < 0.5
      if (Math.random() < 0.5) sample.label = `label ${rand(3)}`
      await sendAssign(agent, sample)
      if (sample.status === 200) {
        believed.set(keyOf(sample.userId, sample.provider, sample.phoneNumber), { userId: sample.userId, provider: sample.provider, phoneNumber: sample.phoneNumber })
        believedOwner.set(sample.phoneNumber, sample.organizationId)
      }
    } else {
      const userId = target?.userId ?? pickOne(pickOne(organizations).userIds)
      sample.organizationId = organizationOf.get(userId)!
      sample.userId = userId
      sample.provider = target?.provider ?? pickOne(PROVIDERS)
      sample.phoneNumber = target?.phoneNumber ?? sample.phoneNumber
      if (op === 'remove') {
        await send(agent, sample, 'DELETE', `/api/organizations/${sample.organizationId}/phone-numbers`, { targetUserId: userId, provider: sample.provider, phoneNumber: sample.phoneNumber })
        if (sample.status === 200 || sample.status === 404) believed.delete(keyOf(userId, sample.provider, sample.phoneNumber))
      } else {
        const others = organizations.find((o) => o.id === sample.organizationId)!.userIds.filter((id) => id !== userId)
        sample.toUserId = pickOne(others)
        if (Math.random() < 0.3) sample.label = `moved ${rand(2)}`
        await send(agent, sample, 'POST', `/api/organizations/${sample.organizationId}/phone-numbers/transfer`, {
          phoneNumber: sample.phoneNumber,
          provider: sample.provider,
          fromUserId: userId,
          toUserId: sample.toUserId,
          ...(sample.label === undefined ? {} : { label: sample.label })
        })
        if (sample.status === 200 || sample.status === 404) believed.delete(keyOf(userId, sample.provider, sample.phoneNumber))
        if (sample.status === 200) believed.set(keyOf(sample.toUserId, sample.provider, sample.phoneNumber), { userId: sample.toUserId, provider: sample.provider, phoneNumber: sample.phoneNumber })
      }
    }
    samples.push(sample)
  }
  agent.destroy()
}

await Promise.all(Array.from({ length: connections }, async (_, index) => { await worker(index) }))
const loadSeconds = (performance.now() - started) / 1000
log(`load done: ${samples.length} requests in ${loadSeconds.toFixed(1)} s`)

// --- the final state, read straight from the users collection ---------------------------
interface Stored { userId: string, organizationId: string, provider: string, phoneNumber: string, isInboundEnabled: boolean, isDefault: boolean, label: string | undefined }

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

const { stored, claims } = await withDb(uri, async (db) => ({
  stored: await readStored(db),
  claims: await db.collection('phoneNumberClaims').find({}).toArray()
}))

const problems: string[] = []

// The integrity view: who holds each number, by organization and by inbound route.
const byNumber = new Map<string, Stored[]>()
for (const entry of stored) byNumber.set(entry.phoneNumber, [...(byNumber.get(entry.phoneNumber) ?? []), entry])
let numbersInTwoOrganizations = 0
let numbersWithTwoInboundEntries = 0
for (const [phoneNumber, entries] of byNumber) {
  const organizationIds = new Set(entries.map((entry) => entry.organizationId))
  if (organizationIds.size > 1) {
    numbersInTwoOrganizations++
    problems.push(`${phoneNumber} is held by ${organizationIds.size} organizations: ${entries.map((e) => `${e.userId} (${e.provider}, org ${e.organizationId})`).join(', ')}`)
  }
  const inbound = entries.filter((entry) => entry.isInboundEnabled)
  if (inbound.length > 1) {
    numbersWithTwoInboundEntries++
    problems.push(`${phoneNumber} has ${inbound.length} inbound entries: ${inbound.map((e) => `${e.userId} (${e.provider})`).join(', ')}`)
  }
}
const duplicateKeys = stored.length - new Set(stored.map((e) => keyOf(e.userId, e.provider, e.phoneNumber))).size
if (duplicateKeys > 0) problems.push(`${duplicateKeys} (user, provider, number) entries stored twice`)

// --- answers outside the contract, 5xx, lookups -------------------------------------------
const expected: Record<Op, Record<number, readonly string[] | undefined>> = {
  assign: {
    200: undefined,
    409: ['Phone number belongs to another organization', 'Inbound route held by another assignment', 'Conflict']
  },
  remove: { 200: undefined, 404: ['Phone number not found'], 409: ['Conflict'] },
  transfer: {
    200: undefined,
    404: ['Phone number not found'],
    409: ['Target user already holds this phone number', 'Inbound route held by another assignment', 'Phone number belongs to another organization', 'Conflict']
  },
  lookup: { 200: undefined, 404: ['No inbound route'] }
}
const byOperation: Record<string, Record<string, number>> = {}
let refusedInFlight = 0
const unexpected = new Map<string, number>()
for (const s of samples) {
  const details = (s.body as { details?: unknown } | null)?.details
  // A refusal on the claim alone (another process is writing the number "right now") is told apart.
  const inFlight = typeof details === 'string' && details.includes('right now') ? ' (claim held by another process)' : ''
  const outcome = s.failure ?? (s.status === 200 || s.error === undefined ? String(s.status) : `${s.status} ${s.error}${inFlight}`)
  if (inFlight !== '') refusedInFlight++
  const counts = byOperation[s.op] ?? (byOperation[s.op] = {})
  counts[outcome] = (counts[outcome] ?? 0) + 1
  const allowed = expected[s.op][s.status]
  const fits = s.failure === undefined && s.status in expected[s.op] && (allowed === undefined || (s.error !== undefined && allowed.includes(s.error)))
  if (!fits) {
    const what = `${s.op} answered ${outcome}`
    if (!unexpected.has(what)) problems.push(`${what} (first: ${s.id} to server ${s.server}, ${JSON.stringify(s.body)?.slice(0, 300) ?? ''})`)
    unexpected.set(what, (unexpected.get(what) ?? 0) + 1)
  }
}
const fiveXx = samples.filter((s) => s.status >= 500).length
const noAnswer = samples.filter((s) => s.failure !== undefined).length
const lookups = samples.filter((s) => s.op === 'lookup')
const ambiguousLookups = lookups.filter((s) => s.status === 409 && s.error === 'Ambiguous inbound route').length
const lookupFiveXx = lookups.filter((s) => s.status >= 500 || s.failure !== undefined).length

// --- lost updates ---------------------------------------------------------------------------
/**
 * Per (user, provider, number) key, the operations that changed it: a writer
 * (assign 200, or transfer 200 into it) leaves the entry with its values, a
 * remover (remove 200, or transfer 200 out of it) leaves no entry; a 5xx or
 * unanswered request on the key may have done either (unknown).
 *
 * Each takes effect at one instant inside its request's [start, end], so of
 * two operations where one ended before the other started, the first took
 * effect first; overlapping ones may have taken effect in either order. The
 * operation that took effect last is therefore among the "maximal" ones (no
 * other operation on the key started after it ended), and the stored state at
 * the end must be what one maximal operation leaves. Anything else is a lost
 * (or a phantom) update. isDefault is not compared: assigning another number
 * of the provider as default clears it, by design.
 */
interface KeyOp { kind: 'writer' | 'remover' | 'unknown', op: Op, start: number, end: number, id: string, isInboundEnabled?: boolean, label?: string | undefined }
const opsByKey = new Map<string, KeyOp[]>()
const addOp = (key: string, op: KeyOp): void => { opsByKey.set(key, [...(opsByKey.get(key) ?? []), op]) }
for (const s of samples) {
  if (s.op === 'lookup' || s.userId === undefined || s.provider === undefined) continue
  const unknown = s.failure !== undefined || s.status >= 500
  if (!unknown && s.status !== 200) continue
  const base = { op: s.op, start: s.start, end: s.end, id: s.id }
  const key = keyOf(s.userId, s.provider, s.phoneNumber)
  if (unknown) {
    addOp(key, { ...base, kind: 'unknown' })
    if (s.op === 'transfer') addOp(keyOf(s.toUserId!, s.provider, s.phoneNumber), { ...base, kind: 'unknown' })
  } else if (s.op === 'assign') {
    addOp(key, { ...base, kind: 'writer', isInboundEnabled: s.isInboundEnabled!, label: s.label })
  } else if (s.op === 'remove') {
    addOp(key, { ...base, kind: 'remover' })
  } else {
    addOp(key, { ...base, kind: 'remover' })
    const moved = (s.body as { assignment?: { isInboundEnabled?: unknown, label?: unknown } }).assignment
    addOp(keyOf(s.toUserId!, s.provider, s.phoneNumber), {
      ...base,
      kind: 'writer',
      isInboundEnabled: moved?.isInboundEnabled === true,
      label: typeof moved?.label === 'string' ? moved.label : undefined
    })
  }
}
const storedByKey = new Map(stored.map((entry) => [keyOf(entry.userId, entry.provider, entry.phoneNumber), entry]))
const lostUpdates: string[] = []
for (const [key, ops] of opsByKey) {
  const maximal = ops.filter((op) => !ops.some((other) => other.start > op.end))
  if (maximal.some((op) => op.kind === 'unknown')) continue
  const entry = storedByKey.get(key)
  const explained = entry === undefined
    ? maximal.some((op) => op.kind === 'remover')
    : maximal.some((op) => op.kind === 'writer' && op.isInboundEnabled === entry.isInboundEnabled && op.label === entry.label)
  if (!explained) {
    const describe = (op: KeyOp): string => `${op.id} ${op.kind}${op.kind === 'writer' ? ` inbound=${String(op.isInboundEnabled)} label=${op.label ?? '-'}` : ''} [${op.start.toFixed(0)}-${op.end.toFixed(0)}]`
    lostUpdates.push(`${key}: stored ${entry === undefined ? 'nothing' : `inbound=${String(entry.isInboundEnabled)} label=${entry.label ?? '-'}`}, last operations ${maximal.map(describe).join('; ')}`)
  }
}
for (const [key, entry] of storedByKey) {
  if (!opsByKey.has(key)) lostUpdates.push(`${key}: stored inbound=${String(entry.isInboundEnabled)}, but no successful request wrote it`)
}

/**
 * The rules during the run, from the answers alone. A writer's entry provably
 * exists from the end of its request until the start of the first operation
 * on the key that may have taken effect after it (one that did not end before
 * the writer started): a remover or unknown for presence, any other operation
 * for its inbound flag. Two such windows that overlap, for one number, in two
 * organizations (rule 1) or as two inbound routes (rule 2), prove the rule
 * was broken at that moment. The windows only ever err short, so this can
 * miss a violation but never invent one.
 */
interface Window { key: string, organizationId: string, from: number, to: number }
const presence = new Map<string, Window[]>()
const inboundWindows = new Map<string, Window[]>()
for (const [key, ops] of opsByKey) {
  const [userId, , phoneNumber] = key.split('|') as [string, string, string]
  for (const writer of ops) {
    if (writer.kind !== 'writer') continue
    const later = ops.filter((op) => op !== writer && op.end > writer.start)
    const presentUntil = Math.min(Infinity, ...later.filter((op) => op.kind !== 'writer').map((op) => op.start))
    const routedUntil = Math.min(Infinity, ...later.map((op) => op.start))
    const window = { key, organizationId: organizationOf.get(userId)!, from: writer.end }
    if (writer.end < presentUntil) presence.set(phoneNumber, [...(presence.get(phoneNumber) ?? []), { ...window, to: presentUntil }])
    if (writer.isInboundEnabled === true && writer.end < routedUntil) inboundWindows.set(phoneNumber, [...(inboundWindows.get(phoneNumber) ?? []), { ...window, to: routedUntil }])
  }
}
const overlapping = (windows: readonly Window[], clash: (a: Window, b: Window) => boolean): Array<[Window, Window]> => {
  const pairs: Array<[Window, Window]> = []
  for (const [i, a] of windows.entries()) {
    for (const b of windows.slice(i + 1)) if (clash(a, b) && a.from < b.to && b.from < a.to) pairs.push([a, b])
  }
  return pairs
}
const describeWindow = (w: Window): string => `${w.key} (org ${w.organizationId}) ${w.from.toFixed(0)}-${w.to === Infinity ? 'end' : w.to.toFixed(0)} ms`
let twoOrganizationsDuringRun = 0
let twoRoutesDuringRun = 0
for (const [phoneNumber, windows] of presence) {
  const pairs = overlapping(windows, (a, b) => a.organizationId !== b.organizationId)
  if (pairs.length > 0) {
    twoOrganizationsDuringRun++
    problems.push(`during the run ${phoneNumber} was provably held by two organizations: ${describeWindow(pairs[0]![0])} and ${describeWindow(pairs[0]![1])}`)
  }
}
for (const [phoneNumber, windows] of inboundWindows) {
  const pairs = overlapping(windows, (a, b) => a.key !== b.key)
  if (pairs.length > 0) {
    twoRoutesDuringRun++
    problems.push(`during the run ${phoneNumber} provably had two inbound routes: ${describeWindow(pairs[0]![0])} and ${describeWindow(pairs[0]![1])}`)
  }
}
const covers = (w: Window, s: Sample): boolean => w.from <= s.start && s.end <= w.to
// A remove or transfer answering "Phone number not found" while its entry provably existed.
let notFoundWhilePresent = 0
for (const s of samples) {
  if ((s.op !== 'remove' && s.op !== 'transfer') || s.status !== 404 || s.userId === undefined || s.provider === undefined) continue
  const key = keyOf(s.userId, s.provider, s.phoneNumber)
  const window = (presence.get(s.phoneNumber) ?? []).find((w) => w.key === key && covers(w, s))
  if (window === undefined) continue
  notFoundWhilePresent++
  if (notFoundWhilePresent <= 3) problems.push(`${s.op} ${s.id} answered 404 at ${s.start.toFixed(0)}-${s.end.toFixed(0)} ms while ${describeWindow(window)} held it`)
}
// A lookup contradicted by an inbound route that provably existed throughout it: a 404, or a 200 naming another assignment.
let lookupsContradicted = 0
for (const s of lookups) {
  if (s.status !== 200 && s.status !== 404) continue
  const named = s.status === 200 ? keyOf(String((s.body as { userId?: unknown }).userId), String((s.body as { provider?: unknown }).provider), s.phoneNumber) : undefined
  const window = (inboundWindows.get(s.phoneNumber) ?? []).find((w) => covers(w, s) && w.key !== named && (s.provider === undefined || w.key.split('|')[1] === s.provider))
  if (window === undefined) continue
  lookupsContradicted++
  if (lookupsContradicted <= 3) problems.push(`lookup ${s.id} answered ${s.status} ${JSON.stringify(s.body)} at ${s.start.toFixed(0)}-${s.end.toFixed(0)} ms while ${describeWindow(window)} routed it`)
}
/**
 * An entry removed (or moved away) twice with no write of it that could have
 * taken effect in between, or removed before any write of it could have: a
 * transfer or remove that succeeded on an entry that was already gone.
 * R1 then W then R2 is possible only if W ended after R1 started and started
 * before R2 ended (either way round).
 */
const removedTwice: Record<string, number> = {}
let removedUnwritten = 0
for (const [key, ops] of opsByKey) {
  const removers = ops.filter((op) => op.kind === 'remover')
  const writers = ops.filter((op) => op.kind !== 'remover')
  for (const r of removers) {
    if (!writers.some((w) => w.start < r.end)) {
      removedUnwritten++
      if (removedUnwritten <= 3) problems.push(`${r.id} removed ${key}, which no write could have created before it`)
    }
  }
  for (const [i, a] of removers.entries()) {
    for (const b of removers.slice(i + 1)) {
      const between = (x: KeyOp, y: KeyOp): boolean => writers.some((w) => w.end > x.start && w.start < y.end)
      if (between(a, b) || between(b, a)) continue
      const pair = [a.op, b.op].sort().join('+')
      removedTwice[pair] = (removedTwice[pair] ?? 0) + 1
      if (removedTwice[pair] <= 2) problems.push(`${key} was removed or moved away twice (${pair}), by ${a.id} [${a.start.toFixed(0)}-${a.end.toFixed(0)}] and ${b.id} [${b.start.toFixed(0)}-${b.end.toFixed(0)}], with no write of it that could fit between`)
    }
  }
}

const removedTwiceTotal = Object.values(removedTwice).reduce((a, b) => a + b, 0)
if (removedTwiceTotal > 0) problems.push(`${removedTwiceTotal} entries removed or moved away twice: ${JSON.stringify(removedTwice)}; scripts/reliability/repro-transfer-race.ts reproduces the transfer races`)

// Numbers that went from one organization to another during the run (freed, then assigned elsewhere).
const assignedBy = new Map<string, Set<string>>()
for (const s of samples) if (s.op === 'assign' && s.status === 200) assignedBy.set(s.phoneNumber, (assignedBy.get(s.phoneNumber) ?? new Set()).add(s.organizationId))
const numbersThatChangedOrganization = [...assignedBy.values()].filter((set) => set.size > 1).length

// A lookup's 200 must name a (user, provider) of the right organization that an inbound write
// (or a transfer, which keeps the route) had started to create before the lookup ended.
let lookupsChecked = 0
for (const s of lookups) {
  if (s.status !== 200) continue
  lookupsChecked++
  const answer = s.body as { userId?: string, provider?: string, organizationId?: string, phoneNumber?: string }
  const key = keyOf(String(answer.userId), String(answer.provider), s.phoneNumber)
  const writes = (opsByKey.get(key) ?? []).filter((op) => op.kind !== 'remover' && op.start < s.end && op.isInboundEnabled !== false)
  if (answer.phoneNumber !== s.phoneNumber || (s.provider !== undefined && answer.provider !== s.provider)) problems.push(`lookup ${s.id} of ${s.phoneNumber}${s.provider === undefined ? '' : ` (${s.provider})`} answered ${JSON.stringify(answer)}`)
  else if (organizationOf.get(String(answer.userId)) !== answer.organizationId) problems.push(`lookup ${s.id} named user ${String(answer.userId)} with organization ${String(answer.organizationId)}`)
  else if (writes.length === 0) problems.push(`lookup ${s.id} routed ${s.phoneNumber} to ${key}, which no inbound write had created`)
}

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
const claimFigures = { count: claims.length, unheldNumber: 0, otherOrganization: 0, routeNotBacked: 0, routeMissing: 0, transferPending: 0 }
for (const claim of claims) {
  const entries = byNumber.get(String(claim._id)) ?? []
  const inbound = entries.find((entry) => entry.isInboundEnabled)
  const route = claim['inbound'] as { userId?: unknown, provider?: unknown } | null | undefined
  if (claim['transfer'] !== undefined) claimFigures.transferPending++
  if (entries.length === 0) claimFigures.unheldNumber++
  else if (entries.some((entry) => entry.organizationId !== String(claim['organizationId']))) claimFigures.otherOrganization++
  if (route != null && !(inbound !== undefined && String(route.userId) === inbound.userId && route.provider === inbound.provider)) claimFigures.routeNotBacked++
  if (route == null && inbound !== undefined) claimFigures.routeMissing++
}

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
/**
 * Of the writes the rules allowed (200, or refused only because concurrent
 * writes kept the store from finishing: 409 Conflict), the share that
 * succeeded. 404s and rule refusals (another organization, the route held,
 * already held) are what the rules answer, not a failure to make progress.
 */
const successRates = Object.fromEntries((['assign', 'remove', 'transfer'] as const).map((op) => {
  const ofOp = samples.filter((s) => s.op === op)
  const succeeded = ofOp.filter((s) => s.status === 200).length
  const lostToConcurrency = ofOp.filter((s) => s.status === 409 && s.error === 'Conflict').length
  const allowed = succeeded + lostToConcurrency
  return [op, { requests: ofOp.length, succeeded, lostToConcurrency, ofAllowed: allowed === 0 ? null : +(succeeded / allowed).toFixed(3) }]
})) as Record<'assign' | 'remove' | 'transfer', { requests: number, succeeded: number, lostToConcurrency: number, ofAllowed: number | null }>
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
  numbersThatChangedOrganization,
  fiveXx,
  noAnswer,
  unexpectedAnswers: [...unexpected.values()].reduce((a, b) => a + b, 0),
  keysJudged: opsByKey.size,
  lookupsChecked: { duringRun: lookups.length, routedAndVerified: lookupsChecked, afterRun: finalLookups },
  finalState: { entries: stored.length, numbersHeld: byNumber.size, inboundRoutes: stored.filter((e) => e.isInboundEnabled).length },
  claims: claimFigures
}, problems)
