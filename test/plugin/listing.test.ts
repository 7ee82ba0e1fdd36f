/**
 * The paged, filtered listing (GET /api/organizations/{id}/phone-numbers with
 * limit, cursor and filters) through the plugin on a real database. Every
 * answer is checked against the stored user documents: the expected listing is
 * computed here straight from the users collection through the driver, with
 * the documented order (user _id, phone number, provider) and filters applied
 * by this file's own code (nothing of src/domain/listing.ts is used for it).
 */
import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import { MongoClient, ObjectId, type Db, type Document } from 'mongodb'
import orgPhoneNumbers from '../../plugins/phone-numbers/index.js'
import { createListCursorCodec, cursorKey } from '../../plugins/phone-numbers/list-cursor.js'
import { listQuery } from '../../src/domain/listing.js'
import { build, phoneNumbersUrl, TEST_BACKEND, TEST_SECRET, type Built } from '../helper.js'
import { uriForDatabase } from '../helper-database.js'
import { seededRandom } from '../seeded-random.js'

const FERRETDB = TEST_BACKEND === 'ferretdb'
// FerretDB seeds and scans slowly (the sparse-filter walk reads 1,150 users a page), and
// the suite runs files in parallel on 2 cores: tap's 30 s default was seen to run out there.
// FerretDB 1.24 scans the users collection for every page (it serves only a bare _id from an index): slow on a loaded machine.
t.setTimeout(TEST_BACKEND === 'ferretdb' ? 900_000 : 300_000)
const PROVIDERS = ['twilio', 'sinch', 'textgrid'] as const
const PREFIXES = ['+1416', '+1905', '+4420', '+3314']
/** Labels with regex metacharacters among plain ones. */
const LABELS = ['Main Outbound', 'DOMAIN desk', 'Support line', 'a.*b', 'x(y', '[ops]', 'c++ team', 'back\\slash', '$cash^', 'sales|eu', 'Q?', '{1,2}', 'night-shift', '/path/', 'dot.only']
const FILTER_NAMES = ['targetUserId', 'provider', 'phoneNumberPrefix', 'label', 'isInboundEnabled', 'isDefault'] as const

type Filters = Partial<Record<typeof FILTER_NAMES[number], string>>

/** One entry as the API answers it. */
interface Listed {
  userId: string
  provider: string
  phoneNumber: string
  isDefault: boolean
  isInboundEnabled: boolean
  label?: string
  createdAt: string
  updatedAt: string
}

const random = seededRandom

function pick<T> (next: () => number, items: readonly T[]): T {
  return items[Math.floor(next() * items.length)]!
}

const keyOf = (entry: { userId: string, provider: string, phoneNumber: string }): string => `${entry.userId}|${entry.provider}|${entry.phoneNumber}`

// ---------------------------------------------------------------------------
// The expected listing, straight from the stored documents.

function isValidDate (value: unknown): value is Date {
  return value instanceof Date && !Number.isNaN(value.getTime())
}

/** An entry the contract can answer with: our provider and number, boolean flags, string or no label, real dates. */
function isListableEntry (entry: unknown): entry is Record<string, unknown> & { provider: string, phoneNumber: string, isDefault: boolean, isInboundEnabled: boolean, label?: string, createdAt: Date, updatedAt: Date } {
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) return false
  const e = entry as Record<string, unknown>
  return (PROVIDERS as readonly unknown[]).includes(e['provider']) &&
    typeof e['phoneNumber'] === 'string' &&
    typeof e['isDefault'] === 'boolean' &&
    typeof e['isInboundEnabled'] === 'boolean' &&
    (e['label'] === undefined || typeof e['label'] === 'string') &&
    isValidDate(e['createdAt']) && isValidDate(e['updatedAt'])
}

async function expectedListing (db: Db, organizationId: string, filters: Filters = {}): Promise<Listed[]> {
  const users = await db.collection('users').find({ organizationId: new ObjectId(organizationId) }).toArray()
  const result: Listed[] = []
  for (const user of users) {
    const userId = (user._id as ObjectId).toHexString()
    if (filters.targetUserId !== undefined && userId !== filters.targetUserId.toLowerCase()) continue
    const raw: unknown = user['phoneNumbers']
    for (const entry of Array.isArray(raw) ? raw : []) {
      if (!isListableEntry(entry)) continue
      if (filters.provider !== undefined && entry.provider !== filters.provider) continue
      if (filters.phoneNumberPrefix !== undefined && !entry.phoneNumber.startsWith(filters.phoneNumberPrefix)) continue
      if (filters.label !== undefined && (entry.label === undefined || !entry.label.toLowerCase().includes(filters.label.toLowerCase()))) continue
      if (filters.isInboundEnabled !== undefined && String(entry.isInboundEnabled) !== filters.isInboundEnabled) continue
      if (filters.isDefault !== undefined && String(entry.isDefault) !== filters.isDefault) continue
      result.push({
        userId,
        provider: entry.provider,
        phoneNumber: entry.phoneNumber,
        isDefault: entry.isDefault,
        isInboundEnabled: entry.isInboundEnabled,
        ...(entry.label === undefined ? {} : { label: entry.label }),
        createdAt: entry.createdAt.toISOString(),
        updatedAt: entry.updatedAt.toISOString()
      })
    }
  }
  const text = (a: string, b: string): number => a < b ? -1 : a > b ? 1 : 0
  return result.sort((a, b) => text(a.userId, b.userId) || text(a.phoneNumber, b.phoneNumber) || text(a.provider, b.provider))
}

// ---------------------------------------------------------------------------
// Requests.

function listUrl (organizationId: string, filters: Filters = {}, limit?: number | string, cursor?: string): string {
  const params = new URLSearchParams()
  for (const name of FILTER_NAMES) {
    const value = filters[name]
    if (value !== undefined) params.set(name, value)
  }
  if (limit !== undefined) params.set('limit', String(limit))
  if (cursor !== undefined) params.set('cursor', cursor)
  const query = params.toString()
  return `${phoneNumbersUrl(organizationId)}${query === '' ? '' : `?${query}`}`
}

interface Page { phoneNumbers: Listed[], nextCursor: string | null }

async function getPage (app: FastifyInstance, authorization: string, url: string): Promise<Page> {
  const response = await app.inject({ method: 'GET', url, headers: { authorization } })
  if (response.statusCode !== 200) throw new Error(`GET ${url} answered ${response.statusCode}: ${response.body}`)
  const body = response.json() as Page
  if (Object.keys(body).sort().join() !== 'nextCursor,phoneNumbers' || !Array.isArray(body.phoneNumbers)) throw new Error(`GET ${url}: unexpected body ${response.body}`)
  return body
}

interface Walk { entries: Listed[], pageSizes: number[] }

/**
 * Follows nextCursor to the end. `limits(i)` is the limit of page i
 * (undefined: the default). `between` runs at the same time as each page's
 * request, `beforePage` before it. Throws on a non-200 answer or a page over
 * its limit.
 */
async function walk (built: Built, organizationId: string, filters: Filters, limits: (page: number) => number | undefined, between?: (page: number) => Promise<unknown>, beforePage?: (page: number, last: Listed | undefined) => Promise<unknown>): Promise<Walk> {
  const entries: Listed[] = []
  const pageSizes: number[] = []
  let cursor: string | undefined
  for (let page = 0; ; page++) {
    if (page > 5000) throw new Error('more than 5000 pages: the walk does not end')
    const limit = limits(page)
    await beforePage?.(page, entries[entries.length - 1])
    const [body] = await Promise.all([
      getPage(built.app, built.authorization, listUrl(organizationId, filters, limit, cursor)),
      between?.(page)
    ])
    if (body.phoneNumbers.length > (limit ?? 100)) throw new Error(`page ${page} holds ${body.phoneNumbers.length} entries, over its limit ${limit ?? 'default 100'}`)
    entries.push(...body.phoneNumbers)
    pageSizes.push(body.phoneNumbers.length)
    if (body.nextCursor === null) return { entries, pageSizes }
    cursor = body.nextCursor
  }
}

// ---------------------------------------------------------------------------
// Seed data, written straight into the users collection (as other code or an
// import would), deterministic for a given seed.

interface Seeded {
  organizationId: string
  userIds: string[]
  /** A twilio +1416… (label Alpha desk, default, inbound) and a sinch +1905… (label Beta desk, neither). */
  crossUserId: string
  /** Holds one entry per label of LABELS. */
  labelsUserId: string
  /** Users of the other organization holding numbers with the same prefixes and labels. */
  foreignUserIds: string[]
  malformedUserIds: string[]
}

let numberCounter = 0
function nextNumber (prefix: string): string {
  numberCounter++
  return `${prefix}${String(5_000_000 + numberCounter)}`
}
function dates (): { createdAt: Date, updatedAt: Date } {
  const createdAt = new Date(Date.UTC(2024, 0, 1) + numberCounter * 60_000)
  return { createdAt, updatedAt: new Date(createdAt.getTime() + 1000) }
}

/** Entries other code wrote in shapes the listing must skip (several would pass the dotted prefilters). */
function oddEntry (next: () => number): unknown {
  const at = dates()
  const factories: Array<() => unknown> = [
    () => null,
    () => 'a string entry',
    () => 42,
    // FerretDB 1.24 refuses to store nested arrays ("nested arrays are not supported"): an object without our keys there.
    () => FERRETDB ? { an: 'object' } : ['an', 'array'],
    () => ({ provider: 'twilio' }),
    () => ({ provider: 'whatsapp', phoneNumber: nextNumber('+1416'), isDefault: true, isInboundEnabled: true, label: 'Main Outbound', ...at }),
    () => ({ provider: 'twilio', phoneNumber: nextNumber('+1416'), isDefault: 'yes', isInboundEnabled: true, ...at }),
    () => ({ provider: 'sinch', phoneNumber: nextNumber('+1905'), isDefault: false, isInboundEnabled: true, label: 7, ...at }),
    () => ({ provider: 'twilio', phoneNumber: nextNumber('+1905'), isDefault: true, isInboundEnabled: false, label: null, ...at }),
    () => ({ provider: 'textgrid', phoneNumber: nextNumber('+4420'), isDefault: false, isInboundEnabled: false, label: 'a.*b', createdAt: '2024-01-01', updatedAt: at.updatedAt }),
    () => ({ provider: 'twilio', phoneNumber: Number(nextNumber('+1416').slice(1)), isDefault: true, isInboundEnabled: true, ...at }),
    () => ({ provider: 'sinch', phoneNumber: nextNumber('+1416'), isDefault: true, isInboundEnabled: true, label: 'Support line' })
  ]
  return pick(next, factories)()
}

function randomEntries (next: () => number, count: number): unknown[] {
  const entries: Array<Record<string, unknown>> = []
  for (let j = 0; j < count; j++) {
    const previous = entries[entries.length - 1]
    let provider = pick(next, PROVIDERS)
    let phoneNumber: string
    let isInboundEnabled = next() < 0.7
    if (previous !== undefined && next() < 0.2) {
      // The same number under another provider, outbound only (one inbound route per number).
      const used = entries.filter((entry) => entry['phoneNumber'] === previous['phoneNumber']).map((entry) => entry['provider'])
      const free = PROVIDERS.filter((candidate) => !used.includes(candidate))
      if (free.length === 0) continue
      provider = pick(next, free)
      phoneNumber = previous['phoneNumber'] as string
      isInboundEnabled = false
    } else {
      phoneNumber = nextNumber(pick(next, PREFIXES))
    }
    entries.push({
      provider,
      phoneNumber,
      isDefault: next() < 0.4,
      isInboundEnabled,
      ...(next() < 0.5 ? { label: pick(next, LABELS) } : {}),
      ...dates()
    })
  }
  const withOdd: unknown[] = [...entries]
  if (next() < 0.35) {
    for (let k = 1 + Math.floor(next() * 2); k > 0; k--) withOdd.splice(Math.floor(next() * (withOdd.length + 1)), 0, oddEntry(next))
  }
  return withOdd
}

async function seedOrganization (built: Built, seed: number, userCount: number): Promise<Seeded> {
  const next = random(seed)
  const { fixture, db } = built
  const org = new ObjectId(fixture.organizationId)
  const otherOrg = new ObjectId(fixture.otherOrganizationId)
  const users: Document[] = []
  const userIds: string[] = []
  for (let i = 0; i < userCount; i++) {
    const _id = new ObjectId()
    userIds.push(_id.toHexString())
    users.push({ _id, organizationId: org, name: `Agent ${i}`, role: 'AGENT', phoneNumbers: randomEntries(next, Math.floor(next() * 7)) })
  }
  const crossUserId = new ObjectId()
  users.push({
    _id: crossUserId,
    organizationId: org,
    name: 'Cross',
    phoneNumbers: [
      { provider: 'twilio', phoneNumber: nextNumber('+1416'), isDefault: true, isInboundEnabled: true, label: 'Alpha desk', ...dates() },
      { provider: 'sinch', phoneNumber: nextNumber('+1905'), isDefault: false, isInboundEnabled: false, label: 'Beta desk', ...dates() }
    ]
  })
  const labelsUserId = new ObjectId()
  users.push({
    _id: labelsUserId,
    organizationId: org,
    name: 'Labels',
    phoneNumbers: LABELS.map((label, i) => ({ provider: PROVIDERS[i % 3], phoneNumber: nextNumber(PREFIXES[i % PREFIXES.length]!), isDefault: i % 2 === 0, isInboundEnabled: i % 3 !== 0, label, ...dates() }))
  })
  // Whole fields other code wrote in another shape: never listed, never an error.
  const malformed = [new ObjectId(), new ObjectId(), new ObjectId()]
  users.push(
    { _id: malformed[0], organizationId: org, phoneNumbers: 'not an array' },
    { _id: malformed[1], organizationId: org, phoneNumbers: null },
    { _id: malformed[2], organizationId: org, phoneNumbers: { provider: 'twilio', phoneNumber: nextNumber('+1416'), isDefault: true, isInboundEnabled: true, label: 'Main Outbound', ...dates() } }
  )
  const foreignUserIds = [fixture.foreignUserId]
  for (let i = 0; i < 4; i++) foreignUserIds.push(new ObjectId().toHexString())
  for (const [i, id] of foreignUserIds.entries()) {
    const phoneNumbers = [
      { provider: 'twilio', phoneNumber: nextNumber('+1416'), isDefault: true, isInboundEnabled: true, label: 'Main Outbound', ...dates() },
      { provider: PROVIDERS[i % 3], phoneNumber: nextNumber('+1905'), isDefault: false, isInboundEnabled: i % 2 === 0, label: 'a.*b', ...dates() }
    ]
    if (id === fixture.foreignUserId) {
      await db.collection('users').updateOne({ _id: new ObjectId(id) }, { $set: { phoneNumbers } })
    } else {
      users.push({ _id: new ObjectId(id), organizationId: otherOrg, name: `Foreign ${i}`, phoneNumbers })
    }
  }
  await db.collection('users').insertMany(users)
  return {
    organizationId: fixture.organizationId,
    userIds,
    crossUserId: crossUserId.toHexString(),
    labelsUserId: labelsUserId.toHexString(),
    foreignUserIds,
    malformedUserIds: malformed.map((id) => id.toHexString())
  }
}

/** Every document of the collections the plugin could write. */
async function snapshot (db: Db): Promise<Record<string, Document[]>> {
  const result: Record<string, Document[]> = {}
  for (const name of ['users', 'organizations', 'phoneNumberClaims']) {
    result[name] = await db.collection(name).find().sort({ _id: 1 }).toArray()
  }
  return result
}

/** No entry seen twice. */
function duplicates (entries: Listed[]): string[] {
  const seen = new Set<string>()
  const twice: string[] = []
  for (const entry of entries) {
    const key = keyOf(entry)
    if (seen.has(key)) twice.push(key)
    seen.add(key)
  }
  return twice
}

// ---------------------------------------------------------------------------

t.test('walking every page with limit 1, 7, 1000 and the default gives the stored entries, in order, once each', async (t) => {
  const built = await build(t)
  const seeded = await seedOrganization(built, 1, 40)
  const expected = await expectedListing(built.db, seeded.organizationId)
  const foreign = await expectedListing(built.db, built.fixture.otherOrganizationId)
  t.ok(expected.length > 100, `the organization holds ${expected.length} listable entries (more than one default page)`)
  t.ok(foreign.length >= 10, 'the other organization holds entries too')
  t.ok(expected.some((entry) => entry.label !== undefined) && expected.some((entry) => entry.label === undefined), 'with and without labels')

  for (const limit of [1, 7, 1000, undefined]) {
    const { entries, pageSizes } = await walk(built, seeded.organizationId, {}, () => limit)
    const size = limit ?? 100
    t.same(entries, expected, `limit ${limit ?? 'default'}: every stored entry, in the documented order, with every field`)
    t.same(duplicates(entries), [], `limit ${limit ?? 'default'}: nothing twice`)
    t.equal(pageSizes.length, Math.max(1, Math.ceil(expected.length / size)), `limit ${limit ?? 'default'}: ${pageSizes.length} pages`)
    t.ok(pageSizes.slice(0, -1).every((n) => n === size), `limit ${limit ?? 'default'}: every page but the last is full (a dense listing never ends a page short)`)
    const foreignIds = new Set(seeded.foreignUserIds)
    t.notOk(entries.some((entry) => foreignIds.has(entry.userId)), `limit ${limit ?? 'default'}: no user of another organization`)
    const malformed = new Set(seeded.malformedUserIds)
    t.notOk(entries.some((entry) => malformed.has(entry.userId)), `limit ${limit ?? 'default'}: nothing from a non-array phoneNumbers field`)
  }

  // The odd entries are really there and really skipped.
  const stored = await built.db.collection('users').find({ organizationId: new ObjectId(seeded.organizationId) }).toArray()
  const rawCount = stored.reduce((sum, user) => sum + (Array.isArray(user['phoneNumbers']) ? user['phoneNumbers'].length : 0), 0)
  t.ok(rawCount > expected.length, `${rawCount - expected.length} stored entries of other shapes were skipped`)

  // The other organization's own listing: exactly its users' entries.
  const other = await walk(built, built.fixture.otherOrganizationId, {}, () => 3)
  t.same(other.entries, foreign, 'the other organization lists its own entries only')
})

t.test('a walk with limit 3 stays complete while numbers are added and removed', async (t) => {
  const built = await build(t)
  const seeded = await seedOrganization(built, 2, 40)
  const next = random(22)
  const before = await expectedListing(built.db, seeded.organizationId)
  const beforeKeys = new Set(before.map(keyOf))

  // Writes: new numbers to random users, removals of random existing entries.
  const writesPerPage = FERRETDB ? 1 : 2
  const writePages = FERRETDB ? 16 : 30
  const removable = [...before]
  const removed = new Set<string>()
  const added = new Set<string>()
  const failures: string[] = []
  const url = phoneNumbersUrl(seeded.organizationId)
  let addCounter = 0

  async function write (index: number): Promise<void> {
    if (index % 2 === 0) {
      const userId = pick(next, seeded.userIds)
      const provider = pick(next, PROVIDERS)
      const phoneNumber = `+1777${String(5_000_000 + ++addCounter)}`
      added.add(keyOf({ userId, provider, phoneNumber }))
      const response = await built.app.inject({ method: 'POST', url, headers: built.headers, payload: { targetUserId: userId, provider, phoneNumber, isDefault: false, label: 'added mid-walk' } })
      if (response.statusCode !== 200) failures.push(`assign ${provider} ${phoneNumber} to ${userId}: ${response.statusCode} ${response.body}`)
    } else {
      const [victim] = removable.splice(Math.floor(next() * removable.length), 1)
      if (victim === undefined) return
      removed.add(keyOf(victim))
      const response = await built.app.inject({ method: 'DELETE', url, headers: built.headers, payload: { targetUserId: victim.userId, provider: victim.provider, phoneNumber: victim.phoneNumber } })
      if (response.statusCode !== 200) failures.push(`remove ${keyOf(victim)}: ${response.statusCode} ${response.body}`)
    }
  }

  let writeIndex = 0
  let positionsRemoved = 0
  const { entries } = await walk(built, seeded.organizationId, {}, () => 3, async (page) => {
    if (page >= writePages) return
    // The writes run at the same time as the page's read.
    await Promise.all(Array.from({ length: writesPerPage }, () => write(writeIndex++)))
  }, async (page, last) => {
    // Every fifth page: the entry the cursor points after is removed first.
    if (page === 0 || page % 5 !== 0 || page >= writePages || last === undefined || removed.has(keyOf(last))) return
    removed.add(keyOf(last))
    const index = removable.findIndex((entry) => keyOf(entry) === keyOf(last))
    if (index >= 0) removable.splice(index, 1)
    const response = await built.app.inject({ method: 'DELETE', url, headers: built.headers, payload: { targetUserId: last.userId, provider: last.provider, phoneNumber: last.phoneNumber } })
    if (response.statusCode !== 200) failures.push(`remove the cursor's entry ${keyOf(last)}: ${response.statusCode} ${response.body}`)
    positionsRemoved++
  })

  t.same(failures, [], 'every concurrent write succeeded')
  t.ok(added.size > 0 && removed.size > 0 && positionsRemoved > 0, `${added.size} numbers added and ${removed.size} removed during the walk (${positionsRemoved} of them the entry the next cursor points after)`)
  t.same(duplicates(entries), [], 'no entry seen twice')
  const seen = new Map<string, number>()
  for (const entry of entries) seen.set(keyOf(entry), (seen.get(keyOf(entry)) ?? 0) + 1)
  const stable = before.filter((entry) => !removed.has(keyOf(entry)))
  const missing = stable.filter((entry) => seen.get(keyOf(entry)) !== 1).map(keyOf)
  t.same(missing, [], `each of the ${stable.length} entries present for the whole walk seen exactly once`)
  const phantom = entries.filter((entry) => !beforeKeys.has(keyOf(entry)) && !added.has(keyOf(entry))).map(keyOf)
  t.same(phantom, [], 'nothing listed that was neither there before nor added')
  const order = entries.map(keyOf)
  const sortedOrder = [...entries].sort((a, b) => a.userId < b.userId ? -1 : a.userId > b.userId ? 1 : a.phoneNumber < b.phoneNumber ? -1 : a.phoneNumber > b.phoneNumber ? 1 : a.provider < b.provider ? -1 : a.provider > b.provider ? 1 : 0).map(keyOf)
  t.same(order, sortedOrder, 'the walk still follows the listing order')

  // The writes really happened, and a fresh walk lists the stored result.
  const after = await expectedListing(built.db, seeded.organizationId)
  const afterKeys = new Set(after.map(keyOf))
  t.ok([...removed].every((key) => !afterKeys.has(key)), 'every removed entry is gone from the users')
  t.ok([...added].every((key) => afterKeys.has(key)), 'every added entry is in the users')
  t.same((await walk(built, seeded.organizationId, {}, () => 7)).entries, after, 'a walk after the writes lists the stored entries')
})

/** Filter values that the given entry meets, for the named filters. */
function valuesFrom (entry: Listed, names: ReadonlyArray<typeof FILTER_NAMES[number]>, next: () => number): Filters {
  const filters: Filters = {}
  for (const name of names) {
    switch (name) {
      case 'targetUserId': filters.targetUserId = next() < 0.5 ? entry.userId : entry.userId.toUpperCase(); break
      case 'provider': filters.provider = entry.provider; break
      case 'phoneNumberPrefix': filters.phoneNumberPrefix = entry.phoneNumber.slice(0, 2 + Math.floor(next() * 5)); break
      case 'label': {
        const label = entry.label!
        const start = Math.floor(next() * label.length)
        const part = label.slice(start, start + 1 + Math.floor(next() * (label.length - start)))
        filters.label = next() < 0.3 ? part.toUpperCase() : next() < 0.5 ? part.toLowerCase() : part
        break
      }
      case 'isInboundEnabled': filters.isInboundEnabled = String(entry.isInboundEnabled); break
      case 'isDefault': filters.isDefault = String(entry.isDefault); break
    }
  }
  return filters
}

/** The same filters with one value changed so that this entry no longer meets it. */
function spoil (filters: Filters, name: typeof FILTER_NAMES[number], entry: Listed, otherUserId: string): Filters {
  const spoiled = { ...filters }
  switch (name) {
    case 'targetUserId': spoiled.targetUserId = otherUserId; break
    case 'provider': spoiled.provider = PROVIDERS.find((provider) => provider !== entry.provider)!; break
    case 'phoneNumberPrefix': spoiled.phoneNumberPrefix = entry.phoneNumber.startsWith('+9') ? '+8' : '+9'; break
    case 'label': spoiled.label = 'zz no such label'; break
    case 'isInboundEnabled': spoiled.isInboundEnabled = String(!entry.isInboundEnabled); break
    case 'isDefault': spoiled.isDefault = String(!entry.isDefault); break
  }
  return spoiled
}

t.test('every filter and every combination of filters (2^6) against the stored entries', async (t) => {
  const built = await build(t)
  const seeded = await seedOrganization(built, 3, 40)
  const next = random(33)
  const all = await expectedListing(built.db, seeded.organizationId)
  let empty = 0
  let combinations = 0
  for (let mask = 0; mask < 64; mask++) {
    const names = FILTER_NAMES.filter((_, i) => (mask & (1 << i)) !== 0)
    const candidates = names.includes('label') ? all.filter((entry) => entry.label !== undefined) : all
    const witness = pick(next, candidates)
    const filters = valuesFrom(witness, names, next)
    const expected = await expectedListing(built.db, seeded.organizationId, filters)
    t.ok(expected.some((entry) => keyOf(entry) === keyOf(witness)), `${JSON.stringify(filters)}: the stored data holds a match (${expected.length})`)
    const { entries } = await walk(built, seeded.organizationId, filters, () => 5)
    t.same(entries, expected, `${JSON.stringify(filters)}: the ${expected.length} matching entries, in order`)
    combinations++

    if (names.length === 0) continue
    // The same combination with one value the witness does not meet.
    const otherUser = pick(next, seeded.userIds.filter((id) => id !== witness.userId))
    const spoiled = spoil(filters, pick(next, names), witness, otherUser)
    const spoiledExpected = await expectedListing(built.db, seeded.organizationId, spoiled)
    t.notOk(spoiledExpected.some((entry) => keyOf(entry) === keyOf(witness)), `${JSON.stringify(spoiled)}: the witness does not match`)
    const spoiledWalk = await walk(built, seeded.organizationId, spoiled, () => 5)
    t.same(spoiledWalk.entries, spoiledExpected, `${JSON.stringify(spoiled)}: the ${spoiledExpected.length} matching entries, in order`)
    if (spoiledExpected.length === 0) empty++
    combinations++
  }
  t.ok(empty >= 5, `${empty} of the ${combinations} combinations match nothing, checked to list nothing`)

  // Hand-picked ones that match nothing.
  const nothing: Filters[] = [
    { label: 'no such label anywhere' },
    { phoneNumberPrefix: '+999' },
    { targetUserId: built.fixture.foreignUserId },
    { targetUserId: built.fixture.adminId },
    { targetUserId: seeded.malformedUserIds[0]! },
    { targetUserId: seeded.malformedUserIds[2]!, provider: 'twilio' },
    { targetUserId: new ObjectId().toHexString() }
  ]
  for (const filters of nothing) {
    t.same(await expectedListing(built.db, seeded.organizationId, filters), [], `${JSON.stringify(filters)}: nothing stored matches`)
    t.same(await getPage(built.app, built.authorization, listUrl(seeded.organizationId, filters)), { phoneNumbers: [], nextCursor: null }, `${JSON.stringify(filters)}: an empty page, no cursor`)
  }
})

t.test('the filters apply to the same entry', async (t) => {
  const built = await build(t)
  const seeded = await seedOrganization(built, 4, 40)
  const stored = await expectedListing(built.db, seeded.organizationId, { targetUserId: seeded.crossUserId })
  t.same(stored.map((entry) => [entry.provider, entry.phoneNumber.slice(0, 5), entry.label]), [['twilio', '+1416', 'Alpha desk'], ['sinch', '+1905', 'Beta desk']].sort((a, b) => a[1]! < b[1]! ? -1 : 1), 'the user holds a twilio +1416… and a sinch +1905…')

  const user = seeded.crossUserId
  const crossed: Filters[] = [
    { provider: 'twilio', phoneNumberPrefix: '+1905' },
    { provider: 'sinch', phoneNumberPrefix: '+1416' },
    { provider: 'sinch', label: 'alpha' },
    { provider: 'twilio', isInboundEnabled: 'false' },
    { phoneNumberPrefix: '+1905', isDefault: 'true' },
    { label: 'beta', isDefault: 'true' },
    { label: 'alpha', isInboundEnabled: 'false' }
  ]
  for (const filters of crossed) {
    const page = await getPage(built.app, built.authorization, listUrl(seeded.organizationId, { targetUserId: user, ...filters }))
    t.same(page, { phoneNumbers: [], nextCursor: null }, `${JSON.stringify(filters)} for that user: nothing, although each filter alone matches one of its entries`)
    // Organization-wide: the same filters list other users' matching entries, never this user's.
    const orgWide = await walk(built, seeded.organizationId, filters, () => 10)
    t.same(orgWide.entries, await expectedListing(built.db, seeded.organizationId, filters), `${JSON.stringify(filters)} organization-wide: as stored`)
    t.notOk(orgWide.entries.some((entry) => entry.userId === user), `${JSON.stringify(filters)} organization-wide: nothing of that user`)
  }
  for (const filters of [{ provider: 'twilio' }, { phoneNumberPrefix: '+1905' }, { label: 'ALPHA' }, { isDefault: 'false' }, { isInboundEnabled: 'true' }] satisfies Filters[]) {
    const page = await getPage(built.app, built.authorization, listUrl(seeded.organizationId, { targetUserId: user, ...filters }))
    t.equal(page.phoneNumbers.length, 1, `${JSON.stringify(filters)} alone for that user: one entry`)
  }
})

t.test('label is matched literally and ignoring case', async (t) => {
  const built = await build(t)
  const seeded = await seedOrganization(built, 5, 40)
  const all = await expectedListing(built.db, seeded.organizationId)
  const labelled = all.filter((entry) => entry.label !== undefined)

  for (const label of ['.*', '.', '(', 'x(y', '[', '[ops]', '+', 'c++', '\\', 'back\\slash', '$', '^', '|', '?', '{1,2}', '-', '/', 'MAIN', 'main outbound', 'Main Outbound']) {
    const expected = labelled.filter((entry) => entry.label!.toLowerCase().includes(label.toLowerCase()))
    t.ok(expected.some((entry) => entry.userId === seeded.labelsUserId), `${JSON.stringify(label)}: the labels user holds a match`)
    t.ok(expected.length < labelled.length, `${JSON.stringify(label)}: only ${expected.length} of the ${labelled.length} labelled entries contain it`)
    const { entries } = await walk(built, seeded.organizationId, { label }, () => 4)
    t.same(entries, await expectedListing(built.db, seeded.organizationId, { label }), `${JSON.stringify(label)}: the entries whose label contains the literal text`)
    t.same(entries.map(keyOf), expected.map(keyOf))
  }
  const main = await walk(built, seeded.organizationId, { label: 'MAIN' }, () => 100)
  t.ok(main.entries.some((entry) => entry.label === 'Main Outbound'), '"MAIN" finds "Main Outbound"')
  t.ok(main.entries.some((entry) => entry.label === 'DOMAIN desk'), '"MAIN" finds "DOMAIN desk" (a substring)')
  const dotStar = await walk(built, seeded.organizationId, { label: '.*' }, () => 100)
  t.ok(dotStar.entries.length > 0 && dotStar.entries.every((entry) => entry.label!.includes('.*')), '".*" lists only labels containing ".*"')
  t.notOk(dotStar.entries.some((entry) => entry.label === 'dot.only'), '".*" does not find "dot.only"')
  t.same((await walk(built, seeded.organizationId, { label: 'zz(' }, () => 100)).entries, [], '"zz(" (an unbalanced pattern) matches nothing and is no error')
})

t.test('tampered cursors and bad limits answer 400 with the error only, and nothing is read or written', async (t) => {
  const built = await build(t)
  const seeded = await seedOrganization(built, 6, 40)
  const org = seeded.organizationId
  const filters: Filters = { provider: 'twilio' }

  // A second app on the same database with command monitoring: shows which
  // requests reach the listing's queries.
  const monitored = new MongoClient(uriForDatabase(built.db.databaseName), { monitorCommands: true })
  await monitored.connect()
  t.teardown(() => monitored.close())
  const app = Fastify({ logger: false })
  await app.register(orgPhoneNumbers, { db: monitored.db(built.db.databaseName), auth: { secret: TEST_SECRET } })
  await app.ready()
  t.teardown(() => app.close())
  let listingQueries = 0
  monitored.on('commandStarted', (event) => {
    const command = event.command as Document
    if (event.commandName === 'find' && (command['find'] === 'organizations' || (command['find'] === 'users' && JSON.stringify(command['filter'] ?? {}).includes('organizationId')))) listingQueries++
  })

  const first = await getPage(app, built.authorization, listUrl(org, filters, 2))
  t.ok(listingQueries > 0, 'a genuine page reaches the database (the monitor sees it)')
  const cursor = first.nextCursor!
  t.type(cursor, 'string', 'the first page has a cursor')
  const [payload, signature] = cursor.split('.') as [string, string]

  // Genuine cursors of another organization (same filters) and of other filters (same organization).
  const foreignPage = await getPage(app, built.authorization, listUrl(built.fixture.otherOrganizationId, filters, 1))
  t.type(foreignPage.nextCursor, 'string', 'the other organization\'s first page has a cursor')
  const otherFilterCursors: Array<[string, Filters]> = []
  for (const [issued, used] of [
    [{ provider: 'sinch' }, filters],
    [{}, filters],
    [{ provider: 'twilio', isDefault: 'true' }, filters],
    [{ provider: 'twilio', label: 'main' }, { provider: 'twilio', label: 'mai' }],
    [filters, { ...filters, targetUserId: seeded.userIds[0]! }]
  ] satisfies Array<[Filters, Filters]>) {
    const page = await getPage(app, built.authorization, listUrl(org, issued, 1))
    t.type(page.nextCursor, 'string', `${JSON.stringify(issued)} has a cursor`)
    otherFilterCursors.push([page.nextCursor!, used])
  }
  const payloadFields = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>
  const editedPayload = Buffer.from(JSON.stringify({ ...payloadFields, u: seeded.crossUserId })).toString('base64url')
  const otherKeyCursor = createListCursorCodec(cursorKey(undefined, 'another-secret-that-is-at-least-32-characters')).encode({ organizationId: org, filters: { targetUserId: undefined, provider: 'twilio', phoneNumberPrefix: undefined, label: undefined, isInboundEnabled: undefined, isDefault: undefined } }, { userId: new ObjectId(seeded.crossUserId) })

  const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
  const flip = (text: string, i: number, bit: number): string => text.slice(0, i) + B64[B64.indexOf(text[i]!) ^ bit]! + text.slice(i + 1)
  const cases: Array<[string, string, Filters, string]> = []
  for (let i = 0; i < payload.length; i++) {
    for (const bit of [1, 32]) cases.push([`payload character ${i + 1} of ${payload.length}, bit ${bit}`, org, filters, `${flip(payload, i, bit)}.${signature}`])
  }
  for (let i = 0; i < signature.length; i++) {
    for (const bit of [1, 32]) cases.push([`signature character ${i + 1} of ${signature.length}, bit ${bit}`, org, filters, `${payload}.${flip(signature, i, bit)}`])
  }
  cases.push(
    ['a cursor of another organization, same filters', org, filters, foreignPage.nextCursor!],
    ...otherFilterCursors.map(([other, used], i): [string, string, Filters, string] => [`a cursor of other filters #${i + 1}`, org, used, other]),
    ['this cursor used on the other organization', built.fixture.otherOrganizationId, filters, cursor],
    ['payload edited to another user id, signature kept', org, filters, `${editedPayload}.${signature}`],
    ['signed with another key', org, filters, otherKeyCursor],
    ['garbage', org, filters, 'garbage'],
    ['garbage with a dot', org, filters, 'not-a.cursor'],
    ['characters outside base64url', org, filters, '%%%!!!'],
    ['three parts', org, filters, `${cursor}.${signature}`],
    ['an empty string', org, filters, ''],
    ['a too-long string', org, filters, 'A'.repeat(513)],
    ['a genuine cursor made too long', org, filters, `${payload}${'A'.repeat(512)}.${signature}`],
    ['base64url of JSON without a signature', org, filters, Buffer.from(JSON.stringify({ v: 1, u: seeded.userIds[0] })).toString('base64url')],
    ['base64 of JSON without a signature', org, filters, Buffer.from(JSON.stringify({ v: 1, u: seeded.userIds[0], n: '+14165550100', p: 'twilio' })).toString('base64')],
    ['the payload alone', org, filters, payload],
    ['the signature alone', org, filters, signature]
  )

  const before = await snapshot(built.db)
  const seededIds = [...seeded.userIds, seeded.crossUserId, seeded.labelsUserId, ...seeded.foreignUserIds]
  const problems: string[] = []
  const queried: string[] = []

  async function expectValidationError (what: string, url: string, detailsPattern: RegExp): Promise<void> {
    const queriesBefore = listingQueries
    const response = await app.inject({ method: 'GET', url, headers: { authorization: built.authorization } })
    if (response.statusCode === 400 && listingQueries !== queriesBefore) queried.push(`${what}: ${listingQueries - queriesBefore} listing queries before the 400`)
    if (response.statusCode !== 400) {
      problems.push(`${what}: ${response.statusCode} ${response.body.slice(0, 200)}`)
      return
    }
    const body = response.json() as Record<string, unknown>
    if (Object.keys(body).sort().join() !== 'details,error' || body['error'] !== 'Validation error' || typeof body['details'] !== 'string' || !detailsPattern.test(body['details'])) {
      problems.push(`${what}: unexpected body ${response.body}`)
    }
    if (/\+\d{6,}/.test(response.body) || seededIds.some((id) => response.body.includes(id))) problems.push(`${what}: the error names stored data: ${response.body}`)
  }

  for (const [what, organizationId, used, value] of cases) {
    await expectValidationError(what, listUrl(organizationId, used, 2, value), /cursor/)
  }
  for (const limit of ['0', '1001', '-1', '1.5', 'abc', '10abc']) {
    await expectValidationError(`limit ${limit}`, listUrl(org, filters, limit), /limit/)
    await expectValidationError(`limit ${limit} with a genuine cursor`, listUrl(org, filters, limit, cursor), /limit/)
  }
  t.same(problems, [], `each of ${cases.length} bad cursors and 12 bad limits answers 400 { error: 'Validation error', details } naming the parameter and no stored data`)
  t.same(queried, [], 'none of those refused ran a listing query (refused before any database work)')
  t.same(await snapshot(built.db), before, 'nothing was written')

  // The genuine cursor still works, with its filters, and continues where it left off.
  const expected = await expectedListing(built.db, org, filters)
  const second = await getPage(app, built.authorization, listUrl(org, filters, 2, cursor))
  t.same([...first.phoneNumbers, ...second.phoneNumbers], expected.slice(0, 4), 'the genuine cursor gives the next two entries')
})

t.test('a cursor stays valid when the limit changes between pages; label case does not change the scope', async (t) => {
  const built = await build(t)
  const seeded = await seedOrganization(built, 7, 40)
  const schedule = [3, 10, 1, 1000, 2, 50]
  for (const filters of [{}, { provider: 'twilio' }, { isDefault: 'false', phoneNumberPrefix: '+1' }] satisfies Filters[]) {
    const { entries, pageSizes } = await walk(built, seeded.organizationId, filters, (page) => schedule[page % schedule.length])
    const expected = await expectedListing(built.db, seeded.organizationId, filters)
    t.ok(pageSizes.length > 2, `${JSON.stringify(filters)}: ${pageSizes.length} pages of limits ${pageSizes.map((_, i) => schedule[i % schedule.length]).join(', ')}`)
    t.same(entries, expected, `${JSON.stringify(filters)}: limits changing page by page, every entry once, in order`)
  }

  // A cursor issued for label=main is the same listing's cursor for label=MAIN (documented: compared ignoring case).
  const expected = await expectedListing(built.db, seeded.organizationId, { label: 'main' })
  t.ok(expected.length >= 3, `${expected.length} entries contain "main"`)
  const first = await getPage(built.app, built.authorization, listUrl(seeded.organizationId, { label: 'main' }, 1))
  const rest = await walk(built, seeded.organizationId, { label: 'MAIN' }, () => 2).catch((error: Error) => error)
  t.notOk(rest instanceof Error, 'a fresh walk with MAIN works')
  const continued = await built.app.inject({ method: 'GET', url: listUrl(seeded.organizationId, { label: 'MAIN' }, 100, first.nextCursor!), headers: { authorization: built.authorization } })
  t.equal(continued.statusCode, 200, 'the cursor of label=main is accepted with label=MAIN')
  t.same([...first.phoneNumbers, ...(continued.json() as Page).phoneNumbers], expected, 'and continues where it left off')
})

t.test('a sparse filter: pages may be empty with a cursor, the walk reaches the one match far down and ends', async (t) => {
  const built = await build(t)
  const org = new ObjectId(built.fixture.organizationId)
  const count = 1150
  const needleIndex = 1120
  const ids = Array.from({ length: count }, () => new ObjectId()).sort((a, b) => a.toHexString() < b.toHexString() ? -1 : 1)
  const at = { createdAt: new Date('2024-05-01T00:00:00Z'), updatedAt: new Date('2024-05-01T00:00:00Z') }
  // Every user meets provider=twilio and label=needle, but through two different
  // entries; only one user holds a twilio entry labelled "needle".
  const users = ids.map((_id, i) => ({
    _id,
    organizationId: org,
    phoneNumbers: i === needleIndex
      ? [{ provider: 'twilio', phoneNumber: `+1416${String(5_000_000 + i)}`, isDefault: true, isInboundEnabled: true, label: 'The Needle', ...at }]
      : [
          { provider: 'twilio', phoneNumber: `+1416${String(5_000_000 + i)}`, isDefault: true, isInboundEnabled: true, label: 'hay', ...at },
          { provider: 'sinch', phoneNumber: `+1905${String(5_000_000 + i)}`, isDefault: true, isInboundEnabled: true, label: 'needle in the hay', ...at }
        ]
  }))
  for (let i = 0; i < users.length; i += 500) await built.db.collection('users').insertMany(users.slice(i, i + 500))
  const filters: Filters = { provider: 'twilio', label: 'needle' }
  const expected = await expectedListing(built.db, built.fixture.organizationId, filters)
  t.same(expected.map((entry) => entry.userId), [ids[needleIndex]!.toHexString()], 'one entry in the stored data matches, far down the organization')
  t.equal(await built.db.collection('users').countDocuments({ organizationId: org, 'phoneNumbers.provider': 'twilio', 'phoneNumbers.label': /needle/i }), count, `all ${count} users meet the dotted prefilters`)

  const firstPage = await getPage(built.app, built.authorization, listUrl(built.fixture.organizationId, filters, 1))
  t.same(firstPage.phoneNumbers, [], 'the first page (1001 users read) is empty')
  t.type(firstPage.nextCursor, 'string', 'and carries a cursor')
  const { entries, pageSizes } = await walk(built, built.fixture.organizationId, filters, () => 1)
  t.same(entries, expected, 'following the cursors reaches the match')
  t.ok(pageSizes.length >= 2, `in ${pageSizes.length} pages (${pageSizes.join(', ')}), the last one with nextCursor null`)
  t.equal(pageSizes[0], 0, 'the walk\'s first page is empty too')

  // A dense filter over the same users is not cut short: pages are full.
  const dense = await walk(built, built.fixture.organizationId, { provider: 'sinch' }, () => 500)
  t.same(dense.entries, await expectedListing(built.db, built.fixture.organizationId, { provider: 'sinch' }), 'provider=sinch with limit 500: every stored sinch entry')
  t.ok(dense.pageSizes.slice(0, -1).every((n) => n === 500), `full pages (${dense.pageSizes.join(', ')})`)
})

/** Every stage of an explain plan, depth first. */
function stagesOf (plan: unknown): Array<Record<string, unknown>> {
  if (typeof plan !== 'object' || plan === null) return []
  const node = plan as Record<string, unknown>
  const children = [node['inputStage'], ...(Array.isArray(node['inputStages']) ? node['inputStages'] : []), node['queryPlan']]
  return [...(typeof node['stage'] === 'string' ? [node] : []), ...children.flatMap(stagesOf)]
}

t.test('explain: a typical page query uses the organizationId_1__id_1 index', async (t: Test) => {
  const built = await build(t)
  const seeded = await seedOrganization(built, 8, 40)
  const indexes = await built.db.collection('users').indexes()
  t.ok(indexes.some((index) => index.name === 'organizationId_1__id_1'), 'the plugin created the index')
  const all = await expectedListing(built.db, seeded.organizationId)
  const middle = all[Math.floor(all.length / 2)]!
  const query = listQuery(new ObjectId(seeded.organizationId), 'phoneNumbers', { provider: 'twilio', isInboundEnabled: true }, { userId: new ObjectId(middle.userId), phoneNumber: middle.phoneNumber, provider: middle.provider as 'twilio' })
  const backend = TEST_BACKEND ?? 'this backend'
  let explained: Document | undefined
  let skip: string | false = false
  try {
    explained = await built.db.collection('users').find(query).sort({ _id: 1 }).explain()
  } catch (error) {
    skip = `${backend} does not run explain on find (${(error as Error).message}), so the index choice cannot be checked here`
  }
  const planner = explained?.['queryPlanner'] as Record<string, unknown> | undefined
  const stages = stagesOf(planner?.['winningPlan'])
  if (explained !== undefined && stages.length === 0) {
    skip = `${backend} answers explain without a MongoDB query plan (no winningPlan stages; top-level fields: ${Object.keys(explained).join(', ')}${planner === undefined ? '' : `; queryPlanner fields: ${Object.keys(planner).join(', ')}`}), so the index choice cannot be checked here`
  }
  t.test('the winning plan of a page query', { skip }, async (t) => {
    const scans = stages.filter((stage) => stage['stage'] === 'IXSCAN')
    t.ok(scans.some((stage) => stage['indexName'] === 'organizationId_1__id_1'), `scans organizationId_1__id_1 (stages: ${stages.map((stage) => `${String(stage['stage'])}${stage['indexName'] === undefined ? '' : `(${String(stage['indexName'])})`}`).join(' > ')})`)
    t.notOk(stages.some((stage) => stage['stage'] === 'COLLSCAN'), 'no collection scan')
  })
})
