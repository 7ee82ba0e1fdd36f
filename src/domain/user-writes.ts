/**
 * Writes to user documents: the revision compare-and-swap every change goes
 * through, and the fence that stops another writer's step for good.
 *
 * Compare-and-swap. An assignment rewrites the user's whole array (it may have
 * to clear another default), and the operators that could do that in place
 * (array filters, pipeline updates, $elemMatch on plain fields) are missing
 * from FerretDB 1.24 or mongo-java-server. So a write reads the array and its
 * revision, computes the new array, then `updateOne`s filtered by _id,
 * organizationId and that revision. A concurrent writer makes the filter
 * miss; the write re-reads and tries again after a short random pause.
 * Because organizationId is in every filter, a user moved to another
 * organization after the read is never modified.
 *
 * Fences. Every write also belongs to a step (number-claims.ts) and is
 * filtered on that step's id not being in the user's fence list. Pushing the
 * id there (one update, no read) therefore makes every later attempt of that
 * step miss, wherever it is in flight: that is how another process resolves a
 * step without waiting for it. The list keeps the newest `MAX_FENCES` ids.
 */
import type { Collection, Document, ObjectId } from 'mongodb'
import { setTimeout as sleep } from 'node:timers/promises'
import { readAssignments, type StoredAssignment } from './assignments.js'
import { readOutbox } from './event-outbox.js'
import { isSameObjectId } from './number-holders.js'
import type { ClaimWriter } from './number-claims.js'
import type { StoredEvent } from './change-events.js'
import type { MalformedField } from './store-api.js'

/** Fenced step ids a user keeps. A step fenced this many fences ago could land again; steps live milliseconds, fences are rare. */
export const MAX_FENCES = 32

export const USER_NOT_FOUND = { status: 'user-not-found' } as const
export const CONFLICT = { status: 'conflict' } as const
/** The step was fenced by another process: nothing of it lands any more; run the operation again. */
export const FENCED = { status: 'fenced' } as const

export type WriteFailure = typeof USER_NOT_FOUND | typeof CONFLICT | typeof FENCED | MalformedField

/** What a write computes from the user's current array: the array to store (`undefined`: nothing to write) and what to report. */
export type ArrayChange<Outcome> = (current: StoredAssignment[]) => { next: StoredAssignment[] | undefined, outcome: Outcome }
/** The events of one write, from the array before and after. */
export type DescribeChange = (current: StoredAssignment[], next: StoredAssignment[]) => StoredEvent[]

export interface UserWritesOptions {
  users: Collection
  field: string
  maxWriteAttempts: number
  onWriteRetry?: (() => void) | undefined
}

/** Random pause that grows with the attempt number, so colliding writers spread out. */
export function backoffMs (attempt: number): number {
  return Math.random() * Math.min(50, 2 ** attempt)
}

export function createUserWrites ({ users, field, maxWriteAttempts, onWriteRetry }: UserWritesOptions) {
  const revisionField = `${field}Revision`
  const outboxField = `${field}Outbox`
  const fencesField = `${field}Fences`
  const malformedField: MalformedField = { status: 'malformed-field', field }
  const projection = { projection: { organizationId: 1, [field]: 1, [revisionField]: 1, [outboxField]: 1, [fencesField]: 1 } }

  // Steps whose run is watched (number-operation.ts): true once one of their user writes was sent.
  const watchedSteps = new Map<string, boolean>()

  // Read by _id alone and compare organizationId here: FerretDB 1.24 pushes
  // only a bare {_id} filter down to SQLite and scans the collection for any
  // other. The write still filters on organizationId.
  function findUser (userId: ObjectId): Promise<Document | null> {
    return users.findOne({ _id: userId }, projection)
  }

  function isFenced (user: Document | null, stepId: string): boolean {
    const fences: unknown = user?.[fencesField]
    return Array.isArray(fences) && fences.includes(stepId)
  }

  /** The stored array of a user of that organization, or why there is none to write. */
  function readOwnArray (user: Document | null, organizationId: ObjectId): StoredAssignment[] | typeof USER_NOT_FOUND | MalformedField {
    if (user === null || !isSameObjectId(organizationId, user['organizationId'])) return USER_NOT_FOUND
    // Missing or null means no numbers yet; anything else that is not an array is other code's data.
    const stored: unknown = user[field]
    if (stored !== undefined && stored !== null && !Array.isArray(stored)) return malformedField
    return readAssignments(stored)
  }

  /**
   * The read-modify-write loop of one user for step `stepId`: `change` gets
   * the current array. `firstRead` may be stale: the compare-and-swap then
   * misses and the user is read again.
   *
   * Events: `describe` names the changes of the write (none for a write that
   * only undoes a change nobody was told about); they are pushed to the
   * user's outbox in the same update. Once stored, `written` gets the whole
   * outbox as this write left it (earlier pending events, then its own), in
   * order, for the caller to flush.
   */
  async function writeUser<Outcome> (
    organizationId: ObjectId,
    userId: ObjectId,
    firstRead: Document | null,
    stepId: string,
    change: ArrayChange<Outcome>,
    describe: DescribeChange | undefined,
    written: StoredEvent[] = []
  ): Promise<Outcome | WriteFailure> {
    let user = firstRead
    for (let attempt = 1; ; attempt++) {
      if (isFenced(user, stepId)) return FENCED
      const current = readOwnArray(user, organizationId)
      if (!Array.isArray(current)) return current
      const { next, outcome } = change(current)
      if (next === undefined) return outcome
      const events = describe?.(current, next) ?? []

      // A missing revision is matched with null (missing or null), then starts
      // at 1. $eq compares literally: a stored value is never read as an operator.
      const revision: unknown = user?.[revisionField] ?? null
      const set = { [field]: next, [revisionField]: typeof revision === 'number' ? revision + 1 : 1 }
      if (watchedSteps.has(stepId)) watchedSteps.set(stepId, true)
      const { matchedCount } = await users.updateOne(
        { _id: userId, organizationId, [revisionField]: { $eq: revision }, [fencesField]: { $ne: stepId } },
        events.length === 0 ? { $set: set } : { $set: set, $push: { [outboxField]: { $each: events } } } as Document
      )
      if (matchedCount === 1) {
        // Events still pending from earlier writes go first: whoever flushes this user keeps their order.
        written.push(...readOutbox(user?.[outboxField]), ...events)
        return outcome
      }
      if (attempt >= maxWriteAttempts) return CONFLICT
      onWriteRetry?.()
      await sleep(backoffMs(attempt))
      user = await findUser(userId)
    }
  }

  /** Makes every later write of the step miss, on each user it may write. */
  async function fence (writer: Pick<ClaimWriter, 'id' | 'userIds'>): Promise<void> {
    await Promise.all(writer.userIds.map(async (userId) => await users.updateOne(
      { _id: userId, [fencesField]: { $ne: writer.id } },
      { $push: { [fencesField]: { $each: [writer.id], $slice: -MAX_FENCES } } } as Document
    )))
  }

  /** Starts noting whether the step sends a user write; `endWatch` answers and stops. */
  function watchStep (stepId: string): void {
    watchedSteps.set(stepId, false)
  }

  function endWatch (stepId: string): { sentUserWrite: boolean } {
    const sentUserWrite = watchedSteps.get(stepId) === true
    watchedSteps.delete(stepId)
    return { sentUserWrite }
  }

  return { projection, fencesField, findUser, readOwnArray, writeUser, fence, watchStep, endWatch }
}

export type UserWrites = ReturnType<typeof createUserWrites>
