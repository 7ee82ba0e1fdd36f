/**
 * The data and the requests of the benchmark: one organization with N users,
 * each starting with a few numbers (every one inbound, each held by one user
 * only), and request bodies that always change something (no upsert collapses
 * into a no-op): half update an existing key (new label, sometimes becoming
 * the default), half add a number no request used before. Consecutive
 * requests go to consecutive users, so the requests in flight at one time
 * touch different users and per-user write queues (and Mongoose version
 * checks) rarely meet.
 *
 * The ownership rules hold for every body: a seeded number is only ever
 * assigned to the user who holds it, with the provider it is held under (its
 * own inbound route), and every added number is new, so no assign answers 409.
 * The lookups read the seeded numbers, each routed by exactly one user.
 */
import { ObjectId, type Db } from 'mongodb'
import type { ClaimDocument } from '../src/domain/number-claims.js'
import { DEFAULT_STORE_OPTIONS } from '../src/domain/store.js'

export const PROVIDERS = ['twilio', 'sinch'] as const
/** Numbers each user holds before every measured run. */
export const SEEDED_NUMBERS_PER_USER = 4

export interface Workload {
  organizationId: string
  adminId: string
  userIds: string[]
}

export interface AssignBody {
  targetUserId: string
  provider: 'twilio' | 'sinch'
  phoneNumber: string
  isDefault: boolean
  isInboundEnabled: boolean
  label: string
}

function seededNumber (userIndex: number, slot: number): string {
  return `+1${String(200 + userIndex).padStart(4, '0')}555${String(slot).padStart(4, '0')}`
}

export function createWorkload (users: number): Workload {
  return {
    organizationId: new ObjectId().toHexString(),
    adminId: new ObjectId().toHexString(),
    userIds: Array.from({ length: users }, () => new ObjectId().toHexString())
  }
}

const SEEDED_AT = new Date('2024-01-01T00:00:00.000Z')

function seededUsers (workload: Workload): Array<Record<string, unknown>> {
  const organizationId = new ObjectId(workload.organizationId)
  const created = SEEDED_AT
  return workload.userIds.map((id, userIndex) => ({
    _id: new ObjectId(id),
    organizationId,
    name: `Agent ${userIndex}`,
    role: 'AGENT',
    phoneNumbers: Array.from({ length: SEEDED_NUMBERS_PER_USER }, (_, slot) => ({
      provider: PROVIDERS[slot % PROVIDERS.length],
      phoneNumber: seededNumber(userIndex, slot),
      isDefault: slot < PROVIDERS.length,
      isInboundEnabled: true,
      label: `seed ${slot}`,
      createdAt: created,
      updatedAt: created
    })),
    // Mongoose's version key, so the peer's first save sees a versioned document.
    __v: 0
  }))
}

/** Creates the organization and the admin once. */
export async function seedOrganization (db: Db, workload: Workload): Promise<void> {
  const organizationId = new ObjectId(workload.organizationId)
  await db.collection('organizations').insertOne({ _id: organizationId, name: 'Benchmark organization' })
  await db.collection('users').insertOne({ _id: new ObjectId(workload.adminId), organizationId, name: 'Admin', role: 'SUPERADMIN' })
}

/**
 * The claims a settled deployment holds for the seeded numbers: this
 * organization's, routed to the holder, last touched long ago (free for any
 * store instance to touch, as after a restart).
 */
function seededClaims (workload: Workload): ClaimDocument[] {
  const organizationId = new ObjectId(workload.organizationId)
  return workload.userIds.flatMap((id, userIndex) => Array.from({ length: SEEDED_NUMBERS_PER_USER }, (_, slot) => ({
    _id: seededNumber(userIndex, slot),
    organizationId,
    inbound: { userId: new ObjectId(id), provider: PROVIDERS[slot % PROVIDERS.length]! },
    rev: 1,
    touchedAt: SEEDED_AT,
    touchedBy: 'bench-seed'
  })))
}

/**
 * Puts every user and the number claims back to the seeded state, so each
 * measured run starts from the same data. The claims matter: the servers under
 * test are separate store instances, and a claim another instance touched
 * within the lease (30 s) sends an assign down the slow path (read the claim,
 * share it), which would charge one scenario for the one run before it.
 */
export async function resetUsers (db: Db, workload: Workload): Promise<void> {
  const users = db.collection('users')
  const claims = db.collection<ClaimDocument>(DEFAULT_STORE_OPTIONS.claimsCollection)
  await Promise.all([
    users.deleteMany({ _id: { $in: workload.userIds.map((id) => new ObjectId(id)) } }),
    claims.deleteMany({})
  ])
  await Promise.all([
    users.insertMany(seededUsers(workload)),
    claims.insertMany(seededClaims(workload))
  ])
}

/** The numbers the lookups cycle over: every seeded number, slot by slot (consecutive lookups read different users). */
export function lookupNumbers (workload: Workload): string[] {
  return Array.from({ length: SEEDED_NUMBERS_PER_USER }, (_, slot) => workload.userIds.map((_id, userIndex) => seededNumber(userIndex, slot))).flat()
}

/**
 * Body number `n` of a run. Cycle c = floor(n / users) of user u = n % users:
 * even cycles update seeded slot (c/2) % 4 with a new label (default on every
 * other update), odd cycles add a fresh number (distinct for every n).
 */
export function assignBody (workload: Workload, n: number): AssignBody {
  const users = workload.userIds.length
  const userIndex = n % users
  const cycle = Math.floor(n / users)
  const targetUserId = workload.userIds[userIndex]!
  if (cycle % 2 === 0) {
    const slot = (cycle / 2) % SEEDED_NUMBERS_PER_USER
    return {
      targetUserId,
      provider: PROVIDERS[slot % PROVIDERS.length]!,
      phoneNumber: seededNumber(userIndex, slot),
      isDefault: cycle % 4 === 0,
      isInboundEnabled: true,
      label: `update ${n}`
    }
  }
  return {
    targetUserId,
    provider: PROVIDERS[cycle % PROVIDERS.length]!,
    phoneNumber: `+19${String(n).padStart(10, '0')}`,
    isDefault: cycle % 3 === 1,
    isInboundEnabled: cycle % 5 !== 0,
    label: `new ${n}`
  }
}

export function phoneNumbersPath (organizationId: string, prefix = ''): string {
  return `${prefix}/api/organizations/${organizationId}/phone-numbers`
}

/** GET path of the inbound-route lookup, the number URL-encoded (`%2B1...`). */
export function inboundRoutePath (phoneNumber: string): string {
  return `/api/phone-numbers/${encodeURIComponent(phoneNumber)}/inbound-route`
}

/*
 * The listing workload: an organization of its own per size (so the assign
 * scenarios' resets never touch it, and its numbers are never the assign
 * workload's), N users × 4 numbers. Entry k = userIndex * 4 + slot of the
 * organization: provider k % 3 (twilio, sinch, textgrid), inbound for
 * floor(k / 3) even, a label on even slots, the first entry of each provider
 * of a user its default. `provider=sinch&isInboundEnabled=true` then matches
 * exactly the entries with k % 6 === 1: one in six.
 */

/** The listing sizes measured: the scenario names' suffix. */
export const LISTING_SIZES = ['1k', '50k'] as const
export type ListingSize = typeof LISTING_SIZES[number]
export const DEFAULT_LISTING_USERS: Readonly<Record<ListingSize, number>> = { '1k': 1000, '50k': 50_000 }
export const LISTING_PROVIDERS = ['twilio', 'sinch', 'textgrid'] as const
/** Users inserted per insertMany while seeding a listing. */
export const LISTING_SEED_BATCH = 5000
/** The page size every listing request asks for. */
export const LISTING_PAGE_LIMIT = 100
/** The filtered page's query: one entry in six matches (see above). */
export const LISTING_FILTER: Readonly<Record<string, string>> = { provider: 'sinch', isInboundEnabled: 'true' }
export const LISTING_FILTER_SHARE = 1 / 6

export interface ListingWorkload {
  size: ListingSize
  organizationId: string
  /** The users in the listing's order (ascending `_id`); user i holds `listingEntries(size, i)`. */
  userIds: string[]
}

export interface ListingEntry {
  provider: typeof LISTING_PROVIDERS[number]
  phoneNumber: string
  isDefault: boolean
  isInboundEnabled: boolean
  label?: string
  createdAt: Date
  updatedAt: Date
}

/** The numbers of user `userIndex` of listing `size`: `+447<size tag><userIndex, 6 digits><slot>`, unlike any other workload's. */
function listingNumber (size: ListingSize, userIndex: number, slot: number): string {
  return `+447${LISTING_SIZES.indexOf(size) + 1}${String(userIndex).padStart(6, '0')}${slot}`
}

/** The seeded entries of one listing user. */
export function listingEntries (size: ListingSize, userIndex: number): ListingEntry[] {
  const defaults = new Set<string>()
  return Array.from({ length: SEEDED_NUMBERS_PER_USER }, (_, slot) => {
    const k = userIndex * SEEDED_NUMBERS_PER_USER + slot
    const provider = LISTING_PROVIDERS[k % LISTING_PROVIDERS.length]!
    const isDefault = !defaults.has(provider)
    defaults.add(provider)
    return {
      provider,
      phoneNumber: listingNumber(size, userIndex, slot),
      isDefault,
      isInboundEnabled: Math.floor(k / LISTING_PROVIDERS.length) % 2 === 0,
      ...(slot % 2 === 0 ? { label: `Desk ${userIndex}-${slot}` } : {}),
      createdAt: SEEDED_AT,
      updatedAt: SEEDED_AT
    }
  })
}

/** Whether a listed entry meets LISTING_FILTER. */
export function meetsListingFilter (entry: { provider?: unknown, isInboundEnabled?: unknown }): boolean {
  return entry.provider === LISTING_FILTER['provider'] && String(entry.isInboundEnabled) === LISTING_FILTER['isInboundEnabled']
}

/**
 * Creates a listing organization of `users` users with their numbers,
 * inserted LISTING_SEED_BATCH at a time. Written once: the listing scenarios
 * only read.
 */
export async function seedListing (db: Db, size: ListingSize, users: number): Promise<ListingWorkload> {
  const organizationId = new ObjectId()
  // Sorted: the listing's order, whatever the ObjectId counter did meanwhile.
  const userIds = Array.from({ length: users }, () => new ObjectId()).sort((a, b) => a.toHexString() < b.toHexString() ? -1 : 1)
  await db.collection('organizations').insertOne({ _id: organizationId, name: `Listing organization (${size}, ${users} users)` })
  const collection = db.collection('users')
  for (let start = 0; start < users; start += LISTING_SEED_BATCH) {
    const batch = userIds.slice(start, start + LISTING_SEED_BATCH).map((_id, offset) => ({
      _id,
      organizationId,
      name: `Listed agent ${start + offset}`,
      role: 'AGENT',
      phoneNumbers: listingEntries(size, start + offset)
    }))
    await collection.insertMany(batch, { ordered: false })
  }
  return { size, organizationId: organizationId.toHexString(), userIds: userIds.map((id) => id.toHexString()) }
}

/** GET path of one listing page: the query in the given order, values URL-encoded. */
export function listingPath (organizationId: string, query: Readonly<Record<string, string | number>>): string {
  const search = Object.entries(query).map(([name, value]) => `${name}=${encodeURIComponent(String(value))}`).join('&')
  return `${phoneNumbersPath(organizationId)}${search === '' ? '' : `?${search}`}`
}
