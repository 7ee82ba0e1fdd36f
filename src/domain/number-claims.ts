/**
 * Claims: one small document per phone number (`_id` = the E.164 string)
 * naming the organization that holds it and the assignment that routes it
 * inbound. `_id` uniqueness is the one guarantee every MongoDB-wire backend
 * keeps, so two writers of one number always meet here, on one document.
 *
 * A claim is bookkeeping, never the truth: the user documents are. A claim is
 * taken before a user write and may outlive it (a crash, another holder's
 * removal), so a claim the users no longer back is replaced or removed on a
 * later access. That is only safe once no writer can still be on its way to
 * the users collection, which `touchedBy` and `touchedAt` tell:
 * - `touchedBy` is this store's instance id only while nobody else touched
 *   the claim within the lease (another instance's touch within it turns it
 *   into 'shared'), and a store queues its own work per number, so
 *   `touchedBy === instanceId` means no write of anyone is in flight;
 * - otherwise a claim untouched for `leaseMs` is free: every writer sends its
 *   user write within half the lease of its claim, or gives up.
 */
import { randomUUID } from 'node:crypto'
import type { Collection, ObjectId } from 'mongodb'
import type { Provider } from './assignments.js'
import type { StoredEvent } from './change-events.js'

export interface InboundHolder { userId: ObjectId, provider: Provider }

/** A transfer between two users, recorded so a crash midway is finished or undone later. */
export interface PendingTransfer {
  id: string
  by: string
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
  touchedAt: Date
  touchedBy: string
  transfer?: PendingTransfer
}

export interface NumberClaimsOptions {
  /** Identifies this store's process to the others; random by default. */
  instanceId?: string
  leaseMs: number
}

const SHARED = 'shared'

function isDuplicateKey (error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === 11000
}

export function createNumberClaims (claims: Collection<ClaimDocument>, options: NumberClaimsOptions) {
  const instanceId = options.instanceId ?? randomUUID()
  const { leaseMs } = options

  /**
   * The fast path, one command: touch the claim when it is this
   * organization's, leaves the inbound route to `inbound` (when asked) and was
   * last touched by this instance or before the lease; create it when there
   * is none. `undefined` when a claim exists that does not qualify (the
   * upsert then collides on `_id`): read it and decide.
   */
  async function touch (phoneNumber: string, organizationId: ObjectId, inbound: InboundHolder | undefined, now: Date): Promise<ClaimDocument | undefined> {
    const inboundFree = inbound === undefined
      ? {}
      : { $or: [{ inbound: null }, { 'inbound.userId': inbound.userId, 'inbound.provider': inbound.provider }] }
    try {
      const claim = await claims.findOneAndUpdate(
        {
          _id: phoneNumber,
          organizationId,
          $and: [inboundFree, { $or: [{ touchedBy: instanceId }, { touchedAt: { $lt: new Date(now.getTime() - leaseMs) } }] }]
        },
        {
          $set: { touchedBy: instanceId, touchedAt: now, ...(inbound === undefined ? {} : { inbound }) },
          $inc: { rev: 1 },
          ...(inbound === undefined ? { $setOnInsert: { inbound: null } } : {})
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

  /** No writer can be on its way to the users collection under this claim (see the module comment). */
  function isSettled (claim: ClaimDocument, startedAt: number): boolean {
    return claim.touchedBy === instanceId || claim.touchedAt.getTime() < startedAt - leaseMs
  }

  /**
   * Compare-and-swap on `rev`: the claim as read becomes this organization's
   * (and route). `exclusive` takes it over (only when it is settled);
   * otherwise the claim is marked shared, because another instance's write
   * may still be in flight.
   */
  async function replace (claim: ClaimDocument, organizationId: ObjectId, inbound: InboundHolder | null | undefined, now: Date, exclusive: boolean): Promise<ClaimDocument | undefined> {
    const updated = await claims.findOneAndUpdate(
      { _id: claim._id, rev: claim.rev },
      {
        $set: {
          organizationId,
          touchedBy: exclusive ? instanceId : SHARED,
          touchedAt: now,
          ...(inbound === undefined ? {} : { inbound })
        },
        $inc: { rev: 1 }
      },
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

  /** Records the transfer (and the source's route, which lookups follow until the commit) on the claim as read. */
  async function beginTransfer (claim: ClaimDocument, transfer: Omit<PendingTransfer, 'id' | 'by' | 'committed'>, routesInbound: boolean, touchedAt: Date): Promise<PendingTransfer | undefined> {
    const pending: PendingTransfer = { id: randomUUID(), by: instanceId, committed: false, ...transfer }
    const inbound = routesInbound ? { userId: transfer.fromUserId, provider: transfer.provider } : claim.inbound ?? null
    const { matchedCount } = await claims.updateOne(
      { _id: claim._id, rev: claim.rev },
      { $set: { transfer: pending, inbound, touchedAt }, $inc: { rev: 1 } }
    )
    return matchedCount === 1 ? pending : undefined
  }

  /** The commit point: the route moves to the target in the same single-document write. */
  async function commitTransfer (phoneNumber: string, transfer: PendingTransfer, routesInbound: boolean, event: StoredEvent): Promise<boolean> {
    const { matchedCount } = await claims.updateOne(
      { _id: phoneNumber, 'transfer.id': transfer.id },
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

  return { instanceId, leaseMs, touch, read, isSettled, replace, release, clearInbound, beginTransfer, commitTransfer, endTransfer }
}

export type NumberClaims = ReturnType<typeof createNumberClaims>
