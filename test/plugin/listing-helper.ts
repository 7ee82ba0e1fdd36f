/**
 * Shared by the listing-*.test.ts files (the paged, filtered listing through
 * the plugin on a real database): the expected listing computed straight from
 * the stored user documents through the driver, with the documented order
 * (user _id, phone number, provider) and filters applied by this file's own
 * code (nothing of src/domain/listing.ts is used for it); the requests and the
 * walk over every page; and deterministic seed data written straight into the
 * users collection.
 */
import type { FastifyInstance } from 'fastify'
import { ObjectId, type Db, type Document } from 'mongodb'
import { phoneNumbersUrl, TEST_BACKEND, type Built } from '../helper.js'
import { seededRandom } from '../seeded-random.js'

export const FERRETDB = TEST_BACKEND === 'ferretdb'
export const PROVIDERS = ['twilio', 'sinch', 'textgrid'] as const
const PREFIXES = ['+1416', '+1905', '+4420', '+3314']
/** Labels with regex metacharacters among plain ones. */
const LABELS = ['Main Outbound', 'DOMAIN desk', 'Support line', 'a.*b', 'x(y', '[ops]', 'c++ team', 'back\\slash', '$cash^', 'sales|eu', 'Q?', '{1,2}', 'night-shift', '/path/', 'dot.only']
export const FILTER_NAMES = ['targetUserId', 'provider', 'phoneNumberPrefix', 'label', 'isInboundEnabled', 'isDefault'] as const

export type Filters = Partial<Record<typeof FILTER_NAMES[number], string>>

/** One entry as the API answers it. */
export interface Listed {
  userId: string
  provider: string
  phoneNumber: string
  isDefault: boolean
  isInboundEnabled: boolean
  label?: string
  createdAt: string
  updatedAt: string
}

export const random = seededRandom

export function pick<T> (next: () => number, items: readonly T[]): T {
  return items[Math.floor(next() * items.length)]!
}

export const keyOf = (entry: { userId: string, provider: string, phoneNumber: string }): string => `${entry.userId}|${entry.provider}|${entry.phoneNumber}`

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

export async function expectedListing (db: Db, organizationId: string, filters: Filters = {}): Promise<Listed[]> {
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

export function listUrl (organizationId: string, filters: Filters = {}, limit?: number | string, cursor?: string): string {
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

export interface Page { phoneNumbers: Listed[], nextCursor: string | null }

export async function getPage (app: FastifyInstance, authorization: string, url: string): Promise<Page> {
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
export async function walk (built: Built, organizationId: string, filters: Filters, limits: (page: number) => number | undefined, between?: (page: number) => Promise<unknown>, beforePage?: (page: number, last: Listed | undefined) => Promise<unknown>): Promise<Walk> {
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

export async function seedOrganization (built: Built, seed: number, userCount: number): Promise<Seeded> {
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
export async function snapshot (db: Db): Promise<Record<string, Document[]>> {
  const result: Record<string, Document[]> = {}
  for (const name of ['users', 'organizations', 'phoneNumberClaims']) {
    result[name] = await db.collection(name).find().sort({ _id: 1 }).toArray()
  }
  return result
}

/** No entry seen twice. */
export function duplicates (entries: Listed[]): string[] {
  const seen = new Set<string>()
  const twice: string[] = []
  for (const entry of entries) {
    const key = keyOf(entry)
    if (seen.has(key)) twice.push(key)
    seen.add(key)
  }
  return twice
}
