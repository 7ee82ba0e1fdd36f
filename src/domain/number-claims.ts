/**
 * Claims: one small document per phone number (`_id` = the E.164 string)
 * naming the organization that holds it and the assignment that routes it
 * inbound. `_id` uniqueness is the one guarantee every MongoDB-wire backend
 * keeps, so two writers of one number always meet here, on one document.
 *
 * A claim is bookkeeping, never the truth: the user documents are. Its
 * invariant, whenever its writer slot is resolved: no user outside
 * `organizationId` holds the number, and no assignment but `inbound` routes
 * it. A writer keeps it by recording itself in the slot (`writer`: a step id,
 * its process and the users it may write) before it writes a user, and only
 * with an organization and route compatible with the claim's.
 *
 * No time lease. A writer that finds another process's step in the slot
 * resolves it: after a grace of a few milliseconds for a writer really in
 * flight, it fences the step on each of its users (store.ts: the step id is
 * pushed to the user's fence list, and every user write is filtered on its
 * own id not being there), so that step can never land afterwards; then it
 * clears the slot by compare-and-swap and reads the users, which are now the
 * whole truth for the number. A step of this process is resolved as soon as
 * its operation has returned: the store queues its own work per number.
 */
import { randomUUID } from 'node:crypto'
import type { Collection, ObjectId } from 'mongodb'
import type { Provider } from './assignments.js'
import type { StoredEvent } from './change-events.js'

export interface InboundHolder { userId: ObjectId, provider: Provider }

/** The last writer that recorded itself on the claim: until resolved, it may still write these users. */
export interface ClaimWriter {
  id: string
  /** The instance id of the store that recorded it. */
  by: string
  userIds: ObjectId[]
  at: Date
}

/** A transfer between two users, recorded so a crash midway is finished or undone later. */
export interface PendingTransfer {
  id: string
  by: string
  /** The transfer's writer step: its commit only lands while that step still holds the slot. */
  writerId: string
  at: Date
  provider: Provider
  fromUserId: ObjectId
  toUserId: ObjectId
  /** Past the commit point: the target holds the number (and its route); the source's copy goes next. */
  committed: boolean
  /** From the commit point: the `transferred` event the source's removal carries (whoever finishes the transfer). */
  event?: StoredEvent
}

export interface ClaimDocument {
  _id: string
  organizationId: ObjectId
  inbound?: InboundHolder | null
  rev: number
  writer?: ClaimWriter | null
  transfer?: PendingTransfer
}

/** What a touch asks of the claim besides the writer slot. */
export interface TouchScope {
  /** The organization the writer's change keeps or makes the holder; `undefined`: a change that adds no holder (a removal, an update of one's own entry). */
  organizationId: ObjectId
  owning: boolean
  /** The route the change sets; the claim must leave it free. */
  inbound?: InboundHolder | undefined
}

export interface NumberClaimsOptions {
  /** Identifies this store's process to the others; random by default. */
  instanceId?: string | undefined
}

function isDuplicateKey (error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === 11000
}

export function createNumberClaims (claims: Collection<ClaimDocument>, options: NumberClaimsOptions = {}) {
  const instanceId = options.instanceId ?? randomUUID()

  function newWriter (userIds: readonly ObjectId[]): ClaimWriter {
    return { id: randomUUID(), by: instanceId, userIds: [...userIds], at: new Date() }
  }

  /**
   * The fast path, one command: record `writer` in the slot when the slot is
   * free or this process's, and (for an owning change) the claim is this
   * organization's and leaves the route free; create the claim when there is
   * none. `undefined` when a claim exists that does not qualify (the upsert
   * then collides on `_id`): read it and decide.
   */
  async function touch (phoneNumber: string, writer: ClaimWriter, scope: TouchScope): Promise<ClaimDocument | undefined> {
    const { inbound } = scope
    const conditions: object[] = [{ $or: [{ writer: null }, { 'writer.by': instanceId }] }]
    if (inbound !== undefined) conditions.push({ $or: [{ inbound: null }, { 'inbound.userId': inbound.userId, 'inbound.provider': inbound.provider }] })
    const filter = scope.owning
      ? { _id: phoneNumber, organizationId: scope.organizationId, $and: conditions }
      : { _id: phoneNumber, $and: conditions }
    const onInsert = {
      ...(scope.owning ? {} : { organizationId: scope.organizationId }),
      ...(inbound === undefined ? { inbound: null } : {})
    }
    try {
      const claim = await claims.findOneAndUpdate(
        filter,
        {
          $set: { writer, ...(inbound === undefined ? {} : { inbound }) },
          $inc: { rev: 1 },
          ...(Object.keys(onInsert).length === 0 ? {} : { $setOnInsert: onInsert })
        },
        // No projection: FerretDB 1.24 refuses one on findAndModify (claims are small).
        { upsert: true, returnDocument: 'after' }
      )
      return claim ?? undefined
    } catch (error) {
      if (isDuplicateKey(error)) return undefined
      throw error
    }
  }

  function read (phoneNumber: string): Promise<ClaimDocument | null> {
    return claims.findOne({ _id: phoneNumber })
  }

  /**
   * Compare-and-swap on `rev`: the claim as read gets this writer in its slot
   * (`null`: the slot is cleared), and the organization and route when given.
   */
  async function replace (claim: ClaimDocument, writer: ClaimWriter | null, change: { organizationId?: ObjectId, inbound?: InboundHolder | null } = {}): Promise<ClaimDocument | undefined> {
    const updated = await claims.findOneAndUpdate(
      { _id: claim._id, rev: claim.rev },
      { $set: { writer, ...change }, $inc: { rev: 1 } },
      { returnDocument: 'after' }
    )
    return updated ?? undefined
  }

  /** Deletes the claim if nobody touched it since it was read. */
  async function release (claim: ClaimDocument): Promise<boolean> {
    const { deletedCount } = await claims.deleteOne({ _id: claim._id, rev: claim.rev })
    return deletedCount === 1
  }

  async function clearInbound (claim: ClaimDocument): Promise<boolean> {
    const { matchedCount } = await claims.updateOne({ _id: claim._id, rev: claim.rev }, { $set: { inbound: null }, $inc: { rev: 1 } })
    return matchedCount === 1
  }

  /** Records the transfer (and the source's route, which lookups follow until the commit) on the claim as read; its writer must be the transfer's. */
  async function beginTransfer (claim: ClaimDocument, transfer: Omit<PendingTransfer, 'id' | 'by' | 'committed' | 'writerId'>, routesInbound: boolean): Promise<PendingTransfer | undefined> {
    const writerId = claim.writer?.id
    if (writerId === undefined) return undefined
    const pending: PendingTransfer = { id: randomUUID(), by: instanceId, writerId, committed: false, ...transfer }
    const inbound = routesInbound ? { userId: transfer.fromUserId, provider: transfer.provider } : claim.inbound ?? null
    const { matchedCount } = await claims.updateOne(
      { _id: claim._id, rev: claim.rev },
      { $set: { transfer: pending, inbound }, $inc: { rev: 1 } }
    )
    return matchedCount === 1 ? pending : undefined
  }

  /**
   * The commit point: the route moves to the target in the same single-document
   * write. It lands only while the transfer's own step holds the slot, so a
   * process that took the slot over to undo the transfer is never overtaken.
   */
  async function commitTransfer (phoneNumber: string, transfer: PendingTransfer, routesInbound: boolean, event: StoredEvent): Promise<boolean> {
    const { matchedCount } = await claims.updateOne(
      { _id: phoneNumber, 'transfer.id': transfer.id, 'writer.id': transfer.writerId },
      {
        $set: { 'transfer.committed': true, 'transfer.event': event, ...(routesInbound ? { inbound: { userId: transfer.toUserId, provider: transfer.provider } } : {}) },
        $inc: { rev: 1 }
      }
    )
    return matchedCount === 1
  }

  async function endTransfer (phoneNumber: string, transfer: PendingTransfer): Promise<void> {
    await claims.updateOne({ _id: phoneNumber, 'transfer.id': transfer.id }, { $unset: { transfer: '' }, $inc: { rev: 1 } })
  }

  /** Whether the slot holds a step that may still write: another process's, or one this process lost track of. */
  function isForeign (writer: ClaimWriter | null | undefined, unresolved: boolean): writer is ClaimWriter {
    return writer !== undefined && writer !== null && (writer.by !== instanceId || unresolved)
  }

  return { instanceId, newWriter, touch, read, replace, release, clearInbound, beginTransfer, commitTransfer, endTransfer, isForeign }
}

export type NumberClaims = ReturnType<typeof createNumberClaims>
