/**
 * Phone-number assignments on raw driver collections. No Fastify here: the
 * store can be used from a worker or a script with any `Db`.
 *
 * Concurrency. An assignment rewrites the user's whole array (it may have to
 * clear another default), and the operators that could do that in place
 * (array filters, pipeline updates, $elemMatch on plain fields) are missing
 * from FerretDB 1.24 or mongo-java-server. So every write is a
 * compare-and-swap on a revision counter kept next to the array: read the
 * array and its revision, compute the new array, then `updateOne` filtered by
 * _id, organizationId and that revision. On MongoDB a concurrent writer
 * (another process included) makes the filter miss; the store re-reads and
 * tries again after a short random pause, up to `maxWriteAttempts` times, and
 * reports `conflict` (nothing written) if it never wins.
 *
 * FerretDB 1.24 (SQLite) does not evaluate an update's filter atomically with
 * its write (measured: 30 parallel CAS updates on one revision, several
 * "win"), so within one process the writes to one user are also queued
 * (per-key-queue.ts). That makes a single server correct on every backend
 * and spares MongoDB the retry storms of a hot user; across several server
 * processes the CAS alone protects, which needs a backend with atomic
 * single-document updates (MongoDB, mongo-java-server).
 *
 * Because organizationId is part of every write filter, a user moved to
 * another organization after the read is never modified.
 */
import { ObjectId, type Db, type Document } from 'mongodb'
import { setTimeout as sleep } from 'node:timers/promises'
import { createPerKeyQueue } from './per-key-queue.js'
import {
  findEntry,
  isListable,
  readAssignments,
  removeAssignment,
  upsertAssignment,
  type AssignmentInput,
  type AssignmentKey,
  type Provider,
  type StoredAssignment
} from './assignments.js'

export interface PhoneNumberStoreOptions {
  /** Users collection; each user has `organizationId` (ObjectId) and the assignments array. Default `users`. */
  usersCollection?: string | undefined
  /** Organizations collection, looked up by `_id`. Default `organizations`. */
  organizationsCollection?: string | undefined
  /** Field of the user document holding the array. Default `phoneNumbers`. */
  phoneNumbersField?: string | undefined
  /** Compare-and-swap attempts before giving up with `conflict`. Default 10. */
  maxWriteAttempts?: number | undefined
  /**
   * Most entries one user may hold; assigning a new number beyond it is refused
   * (`limit-reached`). Keeps a user document far from MongoDB's 16 MB and every
   * rewrite of the array cheap. A user already above it keeps updating and
   * removing. Default 100.
   */
  maxNumbersPerUser?: number | undefined
}

export interface ListedAssignment extends StoredAssignment {
  userId: ObjectId
}

export interface AssignmentHolder {
  userId: ObjectId
  organizationId: unknown
  assignment: StoredAssignment
}

export type AssignResult =
  | { status: 'assigned', assignment: StoredAssignment }
  | { status: 'organization-not-found' }
  | { status: 'user-not-found' }
  | { status: 'conflict' }
  | { status: 'limit-reached', limit: number }
  | MalformedField

/** The user's assignments field holds something other than an array (other code wrote it): it is never overwritten. */
export interface MalformedField { status: 'malformed-field', field: string }

export type RemoveResult =
  | { status: 'removed' }
  | { status: 'organization-not-found' }
  | { status: 'user-not-found' }
  | { status: 'assignment-not-found' }
  | { status: 'conflict' }
  | MalformedField

export type ListResult =
  | { status: 'listed', assignments: ListedAssignment[] }
  | { status: 'organization-not-found' }

export interface ListFilter {
  userId?: ObjectId | undefined
  provider?: Provider | undefined
}

export interface PhoneNumberStore {
  assign (organizationId: ObjectId, userId: ObjectId, input: AssignmentInput, now?: Date): Promise<AssignResult>
  remove (organizationId: ObjectId, userId: ObjectId, key: AssignmentKey): Promise<RemoveResult>
  list (organizationId: ObjectId, filter?: ListFilter): Promise<ListResult>
  /** The user holding (provider, phoneNumber), for routing inbound calls. */
  findHolder (key: AssignmentKey): Promise<AssignmentHolder | undefined>
  /**
   * The stored fields of the user whose `_id` is the hex string `userId`
   * (role, roles, status flags...), without the numbers; `undefined` when no
   * such user exists or the id is not an ObjectId. Used to re-check a caller
   * on every request.
   */
  findCaller (userId: string): Promise<StoredCaller | undefined>
  /** Creates the indexes every lookup above relies on; safe to call repeatedly. */
  ensureIndexes (): Promise<void>
}

/** A user document as stored, without the numbers; other code may store any shape there. */
export type StoredCaller = Readonly<Record<string, unknown>>

export const DEFAULT_STORE_OPTIONS = {
  usersCollection: 'users',
  organizationsCollection: 'organizations',
  phoneNumbersField: 'phoneNumbers',
  maxWriteAttempts: 10,
  maxNumbersPerUser: 100
} as const

/** A usable collection or field name: non-empty, without '$', '.' or NUL (MongoDB reserves them). */
export function isValidName (value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && !/[$.\0]/.test(value)
}

/** User fields the store reads besides the assignments: the assignments field must not be one of them. */
export const RESERVED_USER_FIELDS: readonly string[] = Object.freeze(['_id', 'organizationId', 'role', 'roles'])

export function isReservedUserField (name: string): boolean {
  return RESERVED_USER_FIELDS.includes(name)
}

const ORGANIZATION_NOT_FOUND = { status: 'organization-not-found' } as const
const USER_NOT_FOUND = { status: 'user-not-found' } as const
const ASSIGNMENT_NOT_FOUND = { status: 'assignment-not-found' } as const
const CONFLICT = { status: 'conflict' } as const
const REMOVED = { status: 'removed' } as const
const ID_ONLY = { projection: { _id: 1 } } as const

/** Matches what the write filter matches: an ObjectId of that value (not its hex string). */
function isSameObjectId (id: ObjectId, value: unknown): boolean {
  return (value as { _bsontype?: unknown } | null)?._bsontype === 'ObjectId' && id.equals(value as ObjectId)
}

/** Random pause that grows with the attempt number, so colliding writers spread out. */
function backoffMs (attempt: number): number {
  return Math.random() * Math.min(50, 2 ** attempt)
}

export function createPhoneNumberStore (db: Db, options: PhoneNumberStoreOptions = {}): PhoneNumberStore {
  const field = options.phoneNumbersField ?? DEFAULT_STORE_OPTIONS.phoneNumbersField
  const revisionField = `${field}Revision`
  const maxWriteAttempts = options.maxWriteAttempts ?? DEFAULT_STORE_OPTIONS.maxWriteAttempts
  const maxNumbersPerUser = options.maxNumbersPerUser ?? DEFAULT_STORE_OPTIONS.maxNumbersPerUser
  const limitReached = { status: 'limit-reached', limit: maxNumbersPerUser } as const
  const malformedField: MalformedField = { status: 'malformed-field', field }
  const users = db.collection(options.usersCollection ?? DEFAULT_STORE_OPTIONS.usersCollection)
  const organizations = db.collection(options.organizationsCollection ?? DEFAULT_STORE_OPTIONS.organizationsCollection)
  const userProjection = { projection: { organizationId: 1, [field]: 1, [revisionField]: 1 } }
  const queueByUser = createPerKeyQueue()

  function findOrganization (organizationId: ObjectId): Promise<Document | null> {
    return organizations.findOne({ _id: organizationId }, ID_ONLY)
  }

  // Read by _id alone and compare organizationId here: FerretDB 1.24 pushes
  // only a bare {_id} filter down to SQLite and scans the collection for any
  // other. The write below still filters on organizationId.
  function findUser (userId: ObjectId): Promise<Document | null> {
    return users.findOne({ _id: userId }, userProjection)
  }

  /**
   * The read-modify-write loop shared by assign and remove: `change` gets the
   * current array and returns the array to store (`undefined`: nothing to
   * write) or a failure to report.
   */
  async function rewrite<Outcome> (
    organizationId: ObjectId,
    userId: ObjectId,
    change: (current: StoredAssignment[]) => { next: StoredAssignment[] | undefined, outcome: Outcome }
  ): Promise<Outcome | typeof ORGANIZATION_NOT_FOUND | typeof USER_NOT_FOUND | typeof CONFLICT | MalformedField> {
    return await queueByUser(userId.toHexString(), async () => {
      const userFilter = { _id: userId, organizationId }
      // Both reads are independent: one round trip of latency.
      const [organization, firstRead] = await Promise.all([
        findOrganization(organizationId),
        findUser(userId)
      ])
      if (organization === null) return ORGANIZATION_NOT_FOUND

      let user = firstRead
      for (let attempt = 1; ; attempt++) {
        if (user === null || !isSameObjectId(organizationId, user['organizationId'])) return USER_NOT_FOUND
        // Missing or null means no numbers yet; anything else that is not an array is other code's data.
        const stored: unknown = user[field]
        if (stored !== undefined && stored !== null && !Array.isArray(stored)) return malformedField
        const { next, outcome } = change(readAssignments(stored))
        if (next === undefined) return outcome

        // A missing revision is matched with null (missing or null), then starts
        // at 1. $eq compares literally: a stored value is never read as an operator.
        const revision: unknown = user[revisionField] ?? null
        const nextRevision = typeof revision === 'number' ? revision + 1 : 1
        const { matchedCount } = await users.updateOne(
          { ...userFilter, [revisionField]: { $eq: revision } },
          { $set: { [field]: next, [revisionField]: nextRevision } }
        )
        if (matchedCount === 1) return outcome
        if (attempt >= maxWriteAttempts) return CONFLICT

        await sleep(backoffMs(attempt))
        user = await findUser(userId)
      }
    })
  }

  async function assign (organizationId: ObjectId, userId: ObjectId, input: AssignmentInput, now = new Date()): Promise<AssignResult> {
    return await rewrite<AssignResult>(organizationId, userId, (current) => {
      if (current.length >= maxNumbersPerUser && findEntry(current, input) === undefined) return { next: undefined, outcome: limitReached }
      const { next, assignment } = upsertAssignment(current, input, now)
      return { next, outcome: { status: 'assigned', assignment } as const }
    })
  }

  async function remove (organizationId: ObjectId, userId: ObjectId, key: AssignmentKey): Promise<RemoveResult> {
    return await rewrite<RemoveResult>(organizationId, userId, (current) => {
      const next = removeAssignment(current, key)
      return next === undefined ? { next, outcome: ASSIGNMENT_NOT_FOUND } : { next, outcome: REMOVED }
    })
  }

  async function list (organizationId: ObjectId, filter: ListFilter = {}): Promise<ListResult> {
    const query: Document = { organizationId }
    if (filter.userId !== undefined) query['_id'] = filter.userId
    if (filter.provider !== undefined) query[`${field}.provider`] = filter.provider

    const [organization, holders] = await Promise.all([
      findOrganization(organizationId),
      users.find(query, { projection: { [field]: 1 } }).sort({ _id: 1 }).toArray()
    ])
    if (organization === null) return ORGANIZATION_NOT_FOUND

    const assignments: ListedAssignment[] = []
    for (const holder of holders) {
      for (const entry of readAssignments(holder[field])) {
        // Entries other code wrote in another shape are not ours to show (or to fail on).
        if (!isListable(entry)) continue
        if (filter.provider !== undefined && entry.provider !== filter.provider) continue
        assignments.push({ ...entry, userId: holder['_id'] as ObjectId })
      }
    }
    return { status: 'listed', assignments }
  }

  async function findHolder (key: AssignmentKey): Promise<AssignmentHolder | undefined> {
    // Dotted fields use the index; they may match the provider and the number
    // in two different entries, so the exact entry is picked here ($elemMatch
    // on plain fields is not available on FerretDB 1.24).
    const candidates = await users.find(
      { [`${field}.provider`]: key.provider, [`${field}.phoneNumber`]: key.phoneNumber },
      { projection: { organizationId: 1, [field]: 1 } }
    ).toArray()
    for (const candidate of candidates) {
      const assignment = findEntry(readAssignments(candidate[field]), key)
      if (assignment !== undefined) return { userId: candidate['_id'] as ObjectId, organizationId: candidate['organizationId'], assignment }
    }
    return undefined
  }

  // Everything but the (possibly large) numbers array and its revision.
  const callerProjection = { projection: { [field]: 0, [revisionField]: 0 } }

  async function findCaller (userId: string): Promise<StoredCaller | undefined> {
    if (!ObjectId.isValid(userId)) return undefined
    const caller = await users.findOne({ _id: new ObjectId(userId) }, callerProjection)
    return caller === null ? undefined : caller
  }

  async function ensureIndexes (): Promise<void> {
    await Promise.all([
      // Org-scoped listing and the organizationId part of every write filter.
      users.createIndex({ organizationId: 1 }, { name: 'organizationId_1' }),
      // Inbound routing: which user holds (provider, phoneNumber).
      users.createIndex({ [`${field}.provider`]: 1, [`${field}.phoneNumber`]: 1 }, { name: `${field}_provider_phoneNumber` })
    ])
  }

  return { assign, remove, list, findHolder, findCaller, ensureIndexes }
}
