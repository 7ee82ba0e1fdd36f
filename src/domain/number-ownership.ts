/**
 * Ownership of one number across server processes: taking the number's claim
 * for a step, resolving another process's step without waiting out a lease,
 * settling a claim the users no longer back, and finishing or undoing a
 * transfer left half done. The rules themselves are judged on the user
 * documents (number-holders.ts); the claim is where two writers meet
 * (number-claims.ts); the users' writes and fences are user-writes.ts.
 */
import type { Collection, Document, ObjectId } from 'mongodb'
import { setTimeout as sleep } from 'node:timers/promises'
import { findEntry, removeAssignment, type StoredAssignment } from './assignments.js'
import type { ClaimDocument, ClaimWriter, InboundHolder, NumberClaims, TouchScope } from './number-claims.js'
import { holdersOf, inboundHolders, isAssignment, outsideOrganization, type NumberHolder } from './number-holders.js'
import type { StoredEvent } from './change-events.js'
import type { ClaimRepair, InboundHeld, OtherOrganization } from './store-api.js'
import { backoffMs, CONFLICT, type UserWrites } from './user-writes.js'

/** The operation must start again from its first read: the users may have changed behind it. */
export const RERUN = { status: 'rerun' } as const

/** A claim, or why the operation may not take it now. */
export type ClaimOutcome =
  | { status: 'claimed', claim: ClaimDocument }
  | { status: 'recover', claim: ClaimDocument }
  | typeof RERUN
  | OtherOrganization
  | InboundHeld
  | typeof CONFLICT

export interface OwnershipContext {
  users: Collection
  field: string
  claims: NumberClaims
  writes: UserWrites
  maxWriteAttempts: number
  /** How long another process's step is given to land before it is fenced, in ms. */
  inFlightGraceMs: number
  /** Queues the work on one user (this process's per-user queue). */
  onUser: <T>(userId: ObjectId, task: () => Promise<T>) => Promise<T>
  /** Hands the events a write left in a user's outbox to the flusher. */
  recorded: (userId: ObjectId, events: StoredEvent[]) => void
}

/** Rules 1 and 2 against the users as read; `undefined` when they allow the change. */
export function ruleViolation (holders: readonly NumberHolder[], organizationId: ObjectId | undefined, route: InboundHolder | undefined): OtherOrganization | InboundHeld | undefined {
  if (organizationId !== undefined) {
    const outside = outsideOrganization(holders, organizationId)
    if (outside.length > 0) return { status: 'other-organization', holders: outside }
  }
  if (route === undefined) return undefined
  const otherRoutes = inboundHolders(holders).filter((holder) => !isAssignment(holder, route.userId, route.provider))
  return otherRoutes.length > 0 ? { status: 'inbound-held', holders: otherRoutes } : undefined
}

export function createNumberOwnership (context: OwnershipContext) {
  const { users, field, claims, writes, maxWriteAttempts, inFlightGraceMs } = context
  const numberField = `${field}.phoneNumber`
  // Steps of this process that ended without a known outcome (a driver error mid-write): fenced before the number is used again.
  const lostSteps = new Map<string, ClaimWriter>()

  function holderDocuments (phoneNumber: string): Promise<Document[]> {
    return users.find({ [numberField]: phoneNumber }, { projection: { organizationId: 1, [field]: 1 } }).toArray()
  }

  function isForeign (claim: ClaimDocument): boolean {
    return claims.isForeign(claim.writer, lostSteps.get(claim._id)?.id === claim.writer?.id)
  }

  /**
   * Makes sure the step in the claim's slot can no longer write: after a
   * grace of at most `inFlightGraceMs` for a step that may really be in
   * flight (a few milliseconds is what a write takes), fence it.
   */
  async function fenceWriter (writer: ClaimWriter): Promise<void> {
    const ageMs = Date.now() - writer.at.getTime()
    if (ageMs < inFlightGraceMs) await sleep(Math.min(inFlightGraceMs, inFlightGraceMs - Math.max(0, ageMs)))
    await writes.fence(writer)
  }

  /** Remembers a step whose operation failed midway: its write may still be on its way. */
  function lost (phoneNumber: string, writer: ClaimWriter): void {
    lostSteps.set(phoneNumber, writer)
  }

  /** Fences this process's lost step of the number, if any, before anything else touches it. */
  async function fenceLostStep (phoneNumber: string): Promise<void> {
    const writer = lostSteps.get(phoneNumber)
    if (writer === undefined) return
    await writes.fence(writer)
    lostSteps.delete(phoneNumber)
  }

  /**
   * The claim for a step whose fast `touch` did not qualify. A foreign step
   * in the slot is fenced and the slot cleared, then the operation runs again
   * (its first read may predate that step's write). A stale claim (another
   * organization or route the users no longer back) is taken over once the
   * users, read now that no step can be on its way, allow it.
   */
  async function claimSlowly (phoneNumber: string, writer: ClaimWriter, scope: TouchScope): Promise<ClaimOutcome> {
    for (let attempt = 1; attempt <= maxWriteAttempts; attempt++) {
      const claim = await claims.read(phoneNumber)
      if (claim === null) {
        const created = await claims.touch(phoneNumber, writer, scope)
        if (created !== undefined) return { status: 'claimed', claim: created }
        continue
      }
      if (claim.transfer !== undefined) return { status: 'recover', claim }
      if (isForeign(claim)) {
        await fenceWriter(claim.writer!)
        await claims.replace(claim, null)
        return RERUN
      }
      // The slot is free or this process's: the claim's organization or route refused.
      const holders = holdersOf(await holderDocuments(phoneNumber), field, phoneNumber)
      const violation = ruleViolation(holders, scope.owning ? scope.organizationId : undefined, scope.inbound)
      if (violation !== undefined) return violation
      if (!scope.owning) {
        // A change that adds no holder (a removal, an update of one's own entry) only records its
        // step, with its route when it sets one: the users, read after every step was resolved, allow it.
        const recorded = await claims.replace(claim, writer, scope.inbound === undefined ? {} : { inbound: scope.inbound })
        if (recorded !== undefined) return { status: 'claimed', claim: recorded }
        await sleep(backoffMs(attempt))
        continue
      }
      // The users allow it: correct the claim to them, then run again on the fast path.
      const held = inboundHolders(holders)[0]
      const route = scope.inbound ?? (held === undefined ? null : { userId: held.userId, provider: held.assignment.provider })
      const replaced = await claims.replace(claim, null, { organizationId: scope.organizationId, inbound: route })
      if (replaced !== undefined) return RERUN
      await sleep(backoffMs(attempt))
    }
    return CONFLICT
  }

  /**
   * After a removal, a failed write or a route switched off: drop the claim
   * when no user holds the number any more, or its inbound route when no user
   * backs it, provided no step of another process may be on its way. Best
   * effort: a claim left stale is corrected by the next operation on the number.
   */
  async function settle (phoneNumber: string): Promise<ClaimRepair['claim']> {
    const [claim, documents] = await Promise.all([claims.read(phoneNumber), holderDocuments(phoneNumber)])
    if (claim === null) return 'none'
    if (claim.transfer !== undefined || isForeign(claim)) return 'in-flight'
    const holders = holdersOf(documents, field, phoneNumber)
    // No holder in the claim's organization (none at all, or only others wrote
    // it there): the claim stands for nothing; the next writer creates a fresh one.
    if (outsideOrganization(holders, claim.organizationId).length === holders.length) {
      return await claims.release(claim) ? 'released' : 'in-flight'
    }
    const route = claim.inbound
    if (route != null && !inboundHolders(holders).some((holder) => isAssignment(holder, route.userId, route.provider))) {
      return await claims.clearInbound(claim) ? 'route-cleared' : 'in-flight'
    }
    return 'kept'
  }

  /**
   * Finishes (past the commit point) or undoes (before it) a transfer another
   * process left half done, or a crash did. The slot is taken first, which
   * stops the transfer's commit; then its step is fenced, so neither of its
   * user writes can land afterwards; then its copies are put right.
   */
  async function recoverTransfer (found: ClaimDocument): Promise<'rolled-forward' | 'rolled-back' | 'none'> {
    const pending = found.transfer
    if (pending === undefined) return 'none'
    const writer = claims.newWriter([pending.fromUserId, pending.toUserId])
    const young = found.writer != null && isForeign(found) ? found.writer : undefined
    if (young !== undefined) await fenceWriter(young)
    const claim = await claims.replace(found, writer)
    const transfer = claim?.transfer
    if (claim === undefined || transfer === undefined) return 'none'
    await writes.fence({ id: transfer.writerId, userIds: [transfer.fromUserId, transfer.toUserId] })
    const key = { provider: transfer.provider, phoneNumber: claim._id }
    const [userId, shouldRemove] = transfer.committed
      // Rolled forward: the source's copy goes, as the transfer would have done.
      ? [transfer.fromUserId, (entry: StoredAssignment) => entry !== undefined]
      // Rolled back: the target's copy goes, unless someone changed it since.
      : [transfer.toUserId, (entry: StoredAssignment) => entry.updatedAt instanceof Date && entry.updatedAt.getTime() === transfer.at.getTime()]
    // Rolled forward, the source's removal carries the transfer's event (recorded at the commit); a roll-back undoes a change no event announced.
    const event = transfer.committed ? transfer.event : undefined
    const written: StoredEvent[] = []
    const outcome = await context.onUser(userId, async () =>
      await writes.writeUser(claim.organizationId, userId, await writes.findUser(userId), writer.id, (current) => {
        const entry = findEntry(current, key)
        const next = entry !== undefined && shouldRemove(entry) ? removeAssignment(current, key) : undefined
        return { next, outcome: { status: 'done' as const } }
      }, event === undefined ? undefined : () => [event], written))
    context.recorded(userId, written)
    // The copy is gone (or its user is, or holds no array any more); a conflict leaves the record for the next try.
    if (outcome.status === 'conflict' || outcome.status === 'fenced') return 'none'
    await claims.endTransfer(claim._id, transfer)
    return transfer.committed ? 'rolled-forward' : 'rolled-back'
  }

  /** Resolves whatever step holds the number's claim, then settles the claim (`repairClaim`). */
  async function repair (phoneNumber: string): Promise<ClaimRepair> {
    const claim = await claims.read(phoneNumber)
    let transfer: ClaimRepair['transfer'] = 'none'
    if (claim?.transfer !== undefined) {
      const outcome = await recoverTransfer(claim)
      if (outcome === 'none') return { transfer: 'in-flight', claim: 'in-flight' }
      transfer = outcome
    } else if (claim !== null && isForeign(claim)) {
      await fenceWriter(claim.writer!)
      await claims.replace(claim, null)
    }
    return { transfer, claim: await settle(phoneNumber) }
  }

  return { claimSlowly, settle, recoverTransfer, repair, lost, fenceLostStep }
}

export type NumberOwnership = ReturnType<typeof createNumberOwnership>
